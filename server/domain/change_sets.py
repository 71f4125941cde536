"""Applying a provider's change set to a version's tree, with the checks that keep trees sane.

New tree = parent tree - deletions, with renames applied, + upserts. Files the change set does
not mention are carried forward untouched: a refinement never loses a user's files.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

import storage
from server.config import Settings
from server.files import FileContent, guess_mime_type, path_problem
from server.providers import ChangeSet, ProviderError, Turn

_DELETION_WORDS = re.compile(
    r"\b(delete|deletes|deleting|remove|removes|removing|drop|rm|prune|clean\s*up|get rid)\b", re.I
)


@dataclass(frozen=True, slots=True)
class Limits:
    max_file_bytes: int
    max_tree_bytes: int
    max_tree_files: int

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        return cls(settings.max_file_bytes, settings.max_tree_bytes, settings.max_tree_files)


def asks_for_deletion(prompt: str) -> bool:
    """Whether a prompt asks for files to go (so that deleting many of them is expected)."""
    return _DELETION_WORDS.search(prompt) is not None


@dataclass(frozen=True, slots=True)
class AppliedChanges:
    """The new tree: entries carried from the parent, and new contents still to be stored."""

    carried: list[storage.TreeEntry]
    written: list[FileContent]
    # Against the parent: carried entries now at another path (renamed), and paths gone.
    moved: list[storage.TreeEntry]
    removed: list[str]
    added: int
    modified: int
    deleted: int
    # Carried over from the change set: the provider's summary and its turns of the conversation.
    summary: str = ""
    turns: Sequence[Turn] = ()

    @property
    def file_count(self) -> int:
        return len(self.carried) + len(self.written)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.modified or self.deleted)


def apply_changes(
    parent: Mapping[str, storage.TreeEntry], changes: ChangeSet, limits: Limits | None = None
) -> AppliedChanges:
    """Applies `changes` to `parent`'s tree. Raises ProviderError (INVALID_CHANGES) listing every bad path."""
    problems: list[str] = []
    tree: dict[str, storage.TreeEntry | FileContent] = dict(parent)
    touched: set[str] = set()

    def check(path: str, role: str) -> bool:
        problem = path_problem(path)
        if problem is not None:
            problems.append(f"{role} {path!r} {problem}")
        elif path in touched:
            problems.append(f"{role} {path!r} is named twice in one change set")
        else:
            touched.add(path)
            return True
        return False

    deleted = 0
    for path in changes.deletions:
        if not check(path, "deletion"):
            continue
        if tree.pop(path, None) is None:
            problems.append(f"deletion {path!r} names no file of the tree")
        else:
            deleted += 1
    added = modified = 0
    for old, new in changes.renames:
        # Both checked, so that every bad path is reported.
        if not (check(old, "rename source") & check(new, "rename target")):
            continue
        moved = tree.pop(old, None)
        if moved is None:
            problems.append(f"rename source {old!r} names no file of the tree")
        elif new in tree:
            problems.append(f"rename target {new!r} already exists")
        else:
            tree[new] = _moved(moved, new)
            deleted += 1
            added += 1
    for upsert in changes.upserts:
        if not check(upsert.path, "file"):
            continue
        mime_type = upsert.mime_type or guess_mime_type(upsert.path, upsert.data)
        previous = tree.get(upsert.path)
        if isinstance(previous, storage.TreeEntry) and previous.blob_sha256 == storage.sha256_hex(
            upsert.data
        ):
            continue  # the same contents again: not a change
        if previous is None:
            added += 1
        else:
            modified += 1
        tree[upsert.path] = FileContent(upsert.path, mime_type, upsert.data)
    folded: dict[str, str] = {}
    for path in tree:
        clash = folded.setdefault(path.casefold(), path)
        if clash != path:
            problems.append(f"{path!r} and {clash!r} differ only in case")
        for folder in PurePosixPath(path).parents:
            if str(folder) != "." and str(folder) in tree:
                problems.append(f"{path!r} is inside {str(folder)!r}, which is a file")
    if limits is not None:
        _check_limits(tree, limits)
    if problems:
        raise ProviderError(
            "the model's changes cannot be applied: " + "; ".join(problems),
            reason="INVALID_CHANGES",
            code="INVALID_ARGUMENT",
        )
    carried = [entry for entry in tree.values() if isinstance(entry, storage.TreeEntry)]
    written = [entry for entry in tree.values() if isinstance(entry, FileContent)]
    return AppliedChanges(
        carried=carried,
        written=written,
        moved=[entry for entry in carried if parent.get(entry.path) is not entry],
        removed=[path for path in parent if path not in tree],
        added=added,
        modified=modified,
        deleted=deleted,
        summary=changes.summary,
        turns=changes.turns,
    )


def _check_limits(tree: Mapping[str, storage.TreeEntry | FileContent], limits: Limits) -> None:
    sizes = {
        path: entry.size if isinstance(entry, storage.TreeEntry) else len(entry.data)
        for path, entry in tree.items()
    }
    too_big = sorted(path for path, size in sizes.items() if size > limits.max_file_bytes)
    if too_big:
        raise ProviderError(
            f"files over the limit of {limits.max_file_bytes} bytes: {', '.join(too_big[:20])}",
            reason="FILE_TOO_LARGE",
            code="RESOURCE_EXHAUSTED",
        )
    total = sum(sizes.values())
    if total > limits.max_tree_bytes or len(sizes) > limits.max_tree_files:
        raise ProviderError(
            f"the tree would hold {len(sizes)} files and {total} bytes; the limits are "
            f"{limits.max_tree_files} files and {limits.max_tree_bytes} bytes",
            reason="TREE_TOO_LARGE",
            code="RESOURCE_EXHAUSTED",
        )


def _moved(entry: storage.TreeEntry | FileContent, path: str) -> storage.TreeEntry | FileContent:
    if isinstance(entry, storage.TreeEntry):
        return storage.TreeEntry(path, entry.blob_sha256, entry.size, entry.mime_type)
    return FileContent(path, entry.mime_type, entry.data)
