"""A `Draft` applies refinement instructions in order to the tree being refined and reports only
what changed, as an `Outcome`."""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass

from server.files import FileContent, guess_mime_type, path_problem
from server.providers._base import ProviderError
from server.providers.offline._content import append_request, stub_content
from server.providers.offline._instructions import (
    AddFile,
    ChangeFile,
    DeleteFiles,
    Instruction,
    Note,
    RenameFiles,
    ReplaceText,
)
from server.providers.offline._text import one_line


class Draft:
    """The tree being refined, as instructions change it, remembering where each file came from."""

    def __init__(self, source_files: Sequence[FileContent]) -> None:
        self._source = {file.path: file for file in source_files}
        self._files = {
            file.path: _Entry(file.data, file.mime_type, file.path, file.data) for file in source_files
        }

    def apply(self, instruction: Instruction) -> str:
        """Applies one instruction and returns a one-line note of what it did."""
        match instruction:
            case AddFile():
                return self._add(instruction)
            case ChangeFile(path=path, say=say, text=text):
                target = self._resolve_file(path)
                self._edit(target, say if say is not None else text, verbatim=say is not None)
                return f"changed {target}"
            case ReplaceText():
                return self._replace(instruction)
            case DeleteFiles(path=path):
                _, doomed = self._resolve_files(path)
                for doomed_path in doomed:
                    del self._files[doomed_path]
                return f"deleted {', '.join(doomed)}"
            case RenameFiles():
                return self._rename(instruction)
            case Note(text=text):
                readme = next((name for name in _README_NAMES if name in self._files), "README.md")
                if readme not in self._files:
                    heading = b"# README\n"
                    self._files[readme] = _Entry(heading, guess_mime_type(readme, heading), None, None)
                self._edit(readme, text, verbatim=False)
                return f"noted \u201c{one_line(text)}\u201d under Changes in {readme}"

    def outcome(self) -> Outcome:
        """The change set that turns the source tree into this draft.

        Every path appears once at most, and a rename's old path nowhere else, so the
        result does not depend on the order in which a runner applies its parts.
        """
        upserts: list[FileContent] = []
        renames: list[tuple[str, str]] = []
        baselines: dict[str, bytes | None] = {}
        counts = {"added": 0, "changed": 0, "renamed": 0, "deleted": 0}
        for path in sorted(self._files):
            entry = self._files[path]
            moved = entry.origin is not None and path != entry.origin
            edited = entry.origin is None or entry.data != self._source[entry.origin].data
            counts["added"] += entry.origin is None and path not in self._source
            counts["changed"] += edited and (entry.origin is not None or path in self._source)
            counts["renamed"] += moved
            if moved and not edited and path not in self._source and entry.origin not in self._files:
                renames.append((str(entry.origin), path))
            elif moved or edited:
                upserts.append(FileContent(path=path, mime_type=entry.mime_type, data=entry.data))
                baselines[path] = entry.baseline
        origins = {entry.origin for entry in self._files.values()}
        counts["deleted"] = sum(1 for path in self._source if path not in self._files and path not in origins)
        moved_away = {old for old, _ in renames}
        deletions = sorted(
            path for path in self._source if path not in self._files and path not in moved_away
        )
        summary = ", ".join(f"{verb} {n} file{'s' if n != 1 else ''}" for verb, n in counts.items() if n)
        return Outcome(tuple(upserts), tuple(deletions), tuple(renames), baselines, summary or "no changes")

    def _add(self, instruction: AddFile) -> str:
        path = _checked_path(instruction.path)
        if instruction.content is None:
            if path in self._files:
                raise ProviderError(
                    f"{path} already exists; say what it should contain, or change it",
                    reason="OFFLINE_PATH_EXISTS",
                    code="INVALID_ARGUMENT",
                )
            stub = stub_content(path, instruction.about)
            self._files[path] = _Entry(stub, guess_mime_type(path, stub), None, None)
            return f"added {path}"
        data = instruction.content.encode("utf-8")
        existing = self._files.get(path)
        if existing is not None:
            existing.data = existing.baseline = data
            return f"replaced the content of {path}"
        self._files[path] = _Entry(data, guess_mime_type(path, data), None, data)
        return f"added {path}"

    def _replace(self, instruction: ReplaceText) -> str:
        path = self._resolve_file(instruction.path)
        text = self._text(path)
        count = text.count(instruction.old) if instruction.old else 0
        if count == 0:
            raise ProviderError(
                f"{path} does not contain {instruction.old!r}",
                reason="OFFLINE_TEXT_NOT_FOUND",
                code="INVALID_ARGUMENT",
            )
        entry = self._files[path]
        # The user chose this text, so Check judges it as given rather than as ours.
        entry.data = entry.baseline = text.replace(instruction.old, instruction.new).encode("utf-8")
        return f"replaced {count} occurrence{'s' if count != 1 else ''} in {path}"

    def _rename(self, instruction: RenameFiles) -> str:
        old, sources = self._resolve_files(instruction.old)
        new = instruction.new.removeprefix("./")
        target = _checked_path(new.rstrip("/"))
        # "move a.py to lib/", or into a folder that exists, keeps the name.
        into = new.endswith("/") or any(path.startswith(target + "/") for path in self._files)
        base = posixpath.join(target, posixpath.basename(old)) if into else target
        if "/" not in new and "/" not in instruction.old.strip("/") and "/" in old:
            # "rename main.py to app.py" found src/app/main.py by its name: it stays in its folder.
            base = posixpath.join(posixpath.dirname(old), base)
        moves = {path: base + path[len(old) :] for path in sources}
        for moved in moves.values():
            if moved in self._files and moved not in moves:
                raise ProviderError(
                    f"{moved} already exists", reason="OFFLINE_PATH_EXISTS", code="INVALID_ARGUMENT"
                )
        entries = {path: self._files.pop(path) for path in moves}
        for path, moved in moves.items():
            entry = entries[path]
            if posixpath.splitext(path)[1] != posixpath.splitext(moved)[1]:
                entry.mime_type = guess_mime_type(moved, entry.data)
            self._files[moved] = entry
        return f"renamed {old} to {base}"

    def _edit(self, path: str, request: str, *, verbatim: bool) -> None:
        entry = self._files[path]
        entry.data = append_request(path, self._text(path), request, verbatim=verbatim).encode("utf-8")

    def _text(self, path: str) -> str:
        try:
            return self._files[path].data.decode("utf-8")
        except UnicodeDecodeError:
            raise ProviderError(
                f"{path} is not a text file, so it cannot be edited offline",
                reason="OFFLINE_CANNOT_EDIT",
                code="INVALID_ARGUMENT",
            ) from None

    def _resolve_file(self, path: str) -> str:
        cleaned = path.removeprefix("./")
        if cleaned in self._files:
            return cleaned
        # Forgive case and a missing folder ("main.py" for src/app/main.py) when that is unambiguous.
        for matches in (
            [p for p in self._files if p.lower() == cleaned.lower()],
            [p for p in self._files if posixpath.basename(p) == cleaned],
            [p for p in self._files if posixpath.basename(p).lower() == cleaned.lower()],
        ):
            if len(matches) == 1:
                return matches[0]
            if matches:
                raise ProviderError(
                    f"{path} could mean {', '.join(sorted(matches))}; give the full path",
                    reason="OFFLINE_AMBIGUOUS_PATH",
                    code="INVALID_ARGUMENT",
                )
        raise ProviderError(
            f"there is no file {path} in this version", reason="OFFLINE_UNKNOWN_PATH", code="INVALID_ARGUMENT"
        )

    def _resolve_files(self, path: str) -> tuple[str, list[str]]:
        """A file or a folder: its resolved path and the files it covers."""
        cleaned = path.removeprefix("./")
        if cleaned not in self._files:
            folder = cleaned.rstrip("/")
            inside = sorted(p for p in self._files if p.startswith(folder + "/"))
            if inside:
                return folder, inside
        resolved = self._resolve_file(path)
        return resolved, [resolved]


@dataclass(frozen=True, slots=True)
class Outcome:
    upserts: tuple[FileContent, ...]
    deletions: tuple[str, ...]
    renames: tuple[tuple[str, str], ...]
    # Per upserted path: the content the user gave or the tree held before we appended to
    # it, or None when the provider wrote all of it. Check holds only our own writing to account.
    baselines: dict[str, bytes | None]
    summary: str


@dataclass(slots=True)
class _Entry:
    data: bytes
    mime_type: str
    # The path this file had in the source tree, None for a file added here.
    origin: str | None
    baseline: bytes | None


_README_NAMES = ("README.md", "readme.md", "Readme.md", "README.markdown", "README", "README.txt")


def _checked_path(path: str) -> str:
    problem = path_problem(path)
    if problem is not None:
        raise ProviderError(
            f"{path!r} is not the path of a file inside the project: it {problem}",
            reason="OFFLINE_BAD_PATH",
            code="INVALID_ARGUMENT",
        )
    return path
