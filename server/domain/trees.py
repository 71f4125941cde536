"""Comparing and merging version trees (pure functions over path -> entry maps).

Merge follows lakeFS's per-path three-way rules: a path changed on one side only takes that
change; the same change on both sides is taken once; different changes on the two sides, or a
change on one side and a deletion on the other, are conflicts.
"""

from __future__ import annotations

import difflib
import enum
from collections.abc import Mapping
from dataclasses import dataclass

import storage

Tree = Mapping[str, storage.TreeEntry]


class Change(enum.StrEnum):
    ADDED = "ADDED"
    REMOVED = "REMOVED"
    MODIFIED = "MODIFIED"


class ConflictKind(enum.StrEnum):
    BOTH_CHANGED = "BOTH_CHANGED"
    CHANGED_AND_DELETED = "CHANGED_AND_DELETED"
    BOTH_ADDED = "BOTH_ADDED"


class Strategy(enum.StrEnum):
    NONE = "NONE"
    OURS = "OURS"
    THEIRS = "THEIRS"


@dataclass(frozen=True, slots=True)
class PathDiff:
    path: str
    change: Change
    base: storage.TreeEntry | None
    target: storage.TreeEntry | None


@dataclass(frozen=True, slots=True)
class Conflict:
    path: str
    kind: ConflictKind
    base: storage.TreeEntry | None
    ours: storage.TreeEntry | None
    theirs: storage.TreeEntry | None


def _same(a: storage.TreeEntry | None, b: storage.TreeEntry | None) -> bool:
    if a is None or b is None:
        return a is b
    return (a.blob_sha256, a.mime_type) == (b.blob_sha256, b.mime_type)


def diff(base: Tree, target: Tree) -> list[PathDiff]:
    """The paths that differ, in path (byte) order."""
    result = []
    for path in sorted(set(base) | set(target), key=str.encode):
        old, new = base.get(path), target.get(path)
        if _same(old, new):
            continue
        change = Change.ADDED if old is None else Change.REMOVED if new is None else Change.MODIFIED
        result.append(PathDiff(path, change, old, new))
    return result


def unified_diff(path: str, old: bytes | None, new: bytes | None) -> str:
    """A unified diff of two UTF-8 texts ("" when either side is not text)."""
    try:
        old_lines = (old or b"").decode().splitlines(keepends=True)
        new_lines = (new or b"").decode().splitlines(keepends=True)
    except UnicodeDecodeError:
        return ""
    before = f"a/{path}" if old is not None else "/dev/null"
    after = f"b/{path}" if new is not None else "/dev/null"
    return "".join(difflib.unified_diff(old_lines, new_lines, before, after))


def three_way(
    base: Tree, ours: Tree, theirs: Tree, strategy: Strategy = Strategy.NONE
) -> tuple[dict[str, storage.TreeEntry], list[Conflict]]:
    """The merged tree and the conflicts (resolved by `strategy`, when given, and still listed)."""
    merged: dict[str, storage.TreeEntry] = {}
    conflicts: list[Conflict] = []
    for path in sorted(set(base) | set(ours) | set(theirs), key=str.encode):
        b, o, t = base.get(path), ours.get(path), theirs.get(path)
        if _same(o, t) or _same(b, t):
            chosen = o  # the same on both sides, or only ours changed
        elif _same(b, o):
            chosen = t  # only theirs changed
        else:
            if b is None:
                kind = ConflictKind.BOTH_ADDED
            elif o is None or t is None:
                kind = ConflictKind.CHANGED_AND_DELETED
            else:
                kind = ConflictKind.BOTH_CHANGED
            conflicts.append(Conflict(path, kind, b, o, t))
            chosen = t if strategy is Strategy.THEIRS else o
        if chosen is not None:
            merged[path] = chosen
    return merged, conflicts
