"""Refinement instructions: the small language the offline provider understands.

A prompt holds one or more instructions, separated by newlines, ";", " and then " or
", then " (never inside double quotes). Each becomes one of:

    add|create [file] PATH [with content "TEXT" | containing TEXT | ...]
    change|update|modify|edit [file] PATH [to say TEXT | anything else]
    in PATH, <anything>                     (a change of PATH; "say TEXT" adds TEXT)
    replace "OLD" with "NEW" in PATH        (also: in PATH, replace "OLD" with "NEW")
    delete|remove [file|folder] PATH
    rename|move [file|folder] PATH to PATH  (a target ending in "/" is a folder)

A PATH is one word, or any text in double quotes or backticks. A word counts as a path
when it has a "/" or an extension, follows "file", or names a file or folder of the tree.
A clause that fits none of these but mentions exactly one file of the tree changes that
file; any other becomes a `Note`, recorded under "Changes" in the README. Inside double
quotes, \\n, \\t, \\" and \\\\ are escapes. Changes are appended in the file's own
syntax (a comment in code, a "Changes" section in Markdown, a "changes" list in JSON).

A `Draft` applies the instructions in order to the tree being refined and reports only
what changed.
"""

from __future__ import annotations

import html
import json
import keyword
import posixpath
import re
import unicodedata
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from server.files import guess_mime_type, path_problem
from server.providers._base import FileUpsert, ProviderError, SourceFile
from server.providers._png import prompt_picture


@dataclass(frozen=True, slots=True)
class AddFile:
    text: str
    path: str
    content: str | None
    # Words after the path that are not content, used to describe a generated file.
    about: str = ""

    @property
    def summary(self) -> str:
        return f"add {self.path}"


@dataclass(frozen=True, slots=True)
class ChangeFile:
    text: str
    path: str
    # What the file should say ("change X to say Y"); None records the instruction itself.
    say: str | None = None

    @property
    def summary(self) -> str:
        return f"change {self.path}"


@dataclass(frozen=True, slots=True)
class ReplaceText:
    text: str
    path: str
    old: str
    new: str

    @property
    def summary(self) -> str:
        return f"replace text in {self.path}"


@dataclass(frozen=True, slots=True)
class DeleteFiles:
    text: str
    # A file, or a folder whose files all go.
    path: str

    @property
    def summary(self) -> str:
        return f"delete {self.path}"


@dataclass(frozen=True, slots=True)
class RenameFiles:
    text: str
    old: str
    new: str

    @property
    def summary(self) -> str:
        return f"rename {self.old} to {self.new}"


@dataclass(frozen=True, slots=True)
class Note:
    text: str

    @property
    def summary(self) -> str:
        return "note the request in the README"


Instruction = AddFile | ChangeFile | ReplaceText | DeleteFiles | RenameFiles | Note

_SEPARATOR = re.compile(r"\s+and\s+then\s+|,\s*then\s+", re.IGNORECASE)
_LEAD = re.compile(r"^(?:[-*\u2022]\s+|\d+[.)]\s+)?(?:(?:please|also|then|and|now)\s+)*", re.IGNORECASE)
_QUOTED = r'"(?:[^"\\]|\\.)*"'
# A path is one word, or any text in double quotes or backticks.
_PATH = r'(?:"[^"]+"|`[^`]+`|\S+)'
_FLAGS = re.IGNORECASE | re.DOTALL
_ADD = re.compile(
    r"^(?:add|create)\s+(?:(?:a|an|the|new)\s+)*(?P<file>(?:file|module|document|page|script)\s+)?"
    rf"(?:(?:called|named)\s+)?(?P<path>{_PATH})(?P<file_after>\s+file\b)?(?:\s+(?P<rest>.+))?$",
    _FLAGS,
)
_CONTENT = re.compile(
    r"^(?:with\s+(?:the\s+)?(?:content|contents|text|body)|containing|that\s+(?:says|contains|reads)"
    r"|saying|reading)\s*:?\s*(?P<content>.*)$",
    _FLAGS,
)
_CHANGE = re.compile(
    r"^(?:change|update|modify|edit|rewrite|tweak|adjust|amend)\s+(?:the\s+)?(?P<file>file\s+)?"
    rf"(?P<path>{_PATH})(?P<file_after>\s+file\b)?(?:\s+(?P<rest>.+))?$",
    _FLAGS,
)
_IN_FILE = re.compile(
    r'^in\s+(?:the\s+)?(?P<file>file\s+)?(?P<path>"[^"]+"|`[^`]+`|[^\s,]+),?\s+(?P<rest>.+)$', _FLAGS
)
_SAY = re.compile(
    r"^(?:(?:to|so\s+(?:that\s+)?it)\s+(?:says?|reads?|contains?|includes?|mentions?)|says?)"
    r"\s*:?\s*(?P<say>.+)$",
    _FLAGS,
)
_REPLACE = re.compile(
    rf"^replace\s+(?P<old>{_QUOTED})\s+(?:with|by)\s+(?P<new>{_QUOTED})"
    rf"(?:\s+in\s+(?:the\s+)?(?P<file>file\s+)?(?P<path>{_PATH}))?$",
    _FLAGS,
)
_FOLDER = r"file|folder|directory|dir"
_DELETE = re.compile(
    rf"^(?:delete|remove|drop|rm)\s+(?:the\s+)?(?P<file>(?:{_FOLDER})\s+)?(?P<path>{_PATH})"
    rf"(?P<file_after>\s+(?:{_FOLDER}))?$",
    _FLAGS,
)
_RENAME = re.compile(
    rf"^(?:rename|move|mv)\s+(?:the\s+)?(?:(?:{_FOLDER})\s+)?(?P<old>{_PATH})(?:\s+(?:{_FOLDER}))?"
    rf"\s+(?:to|as|into|->)\s+(?P<new>{_PATH})$",
    _FLAGS,
)
_EXTENSION = re.compile(r"\.[A-Za-z][A-Za-z0-9]*$")


def parse_instructions(prompt: str, known_paths: Collection[str]) -> list[Instruction]:
    """Parses a refinement prompt.

    `known_paths` (the tree's files) lets bare names such as "Makefile" or a folder "docs"
    count as paths, and turns a free-form clause that mentions exactly one of the tree's
    files ("make main.py handle errors") into a change of that file.
    """
    known = _Known.of(known_paths)
    return [_parse_clause(clause, known) for clause in split_clauses(prompt)]


def split_clauses(prompt: str) -> list[str]:
    """Splits a prompt into instruction clauses, never inside double quotes."""
    text = prompt.replace("\r\n", "\n").replace("\r", "\n")
    clauses: list[str] = []
    current: list[str] = []
    in_quote = False
    index = 0
    while index < len(text):
        char = text[index]
        separator = None if in_quote else _SEPARATOR.match(text, index)
        if in_quote and char == "\\":
            # An escaped character, even a quote, never ends the quoted text.
            current.append(text[index : index + 2])
            index += 2
        elif not in_quote and (char in "\n;" or separator):
            clauses.append("".join(current))
            current = []
            index = separator.end() if separator else index + 1
        else:
            in_quote = in_quote != (char == '"')
            current.append(char)
            index += 1
    clauses.append("".join(current))
    cleaned = (_LEAD.sub("", clause.strip()).strip() for clause in clauses)
    return [re.sub(r"[.!]+$", "", clause).strip() for clause in cleaned if clause]


class Draft:
    """The tree being refined, as instructions change it, remembering where each file came from."""

    def __init__(self, source_files: Sequence[SourceFile]) -> None:
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
        upserts: list[FileUpsert] = []
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
                upserts.append(FileUpsert(path=path, mime_type=entry.mime_type, data=entry.data))
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
    upserts: tuple[FileUpsert, ...]
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
# Comment syntax by file suffix, or by whole name for files such as Makefile.
_COMMENT_SYNTAX = {
    "# {}": ".py .sh .bash .zsh .toml .yaml .yml .cfg .ini .conf .rb .pl "
    "makefile dockerfile procfile .gitignore .dockerignore .env",
    "// {}": ".js .mjs .cjs .jsx .ts .tsx .go .rs .c .h .cc .cpp .hpp .java .kt .swift .cs .scala .dart "
    ".scss .less .proto",
    "/* {} */": ".css",
    "-- {}": ".sql .lua .hs",
}
_COMMENTS = {key: syntax for syntax, keys in _COMMENT_SYNTAX.items() for key in keys.split()}
_MARKUP = {".html", ".htm", ".xml", ".svg"}
# Files whose content cannot be made up from words.
_BINARY_SUFFIXES = (
    ".jpg .jpeg .gif .webp .bmp .ico .pdf .zip .gz .tar .mp3 .mp4 .wav .woff .woff2 .ttf .otf .exe .bin "
    ".so .dll .jar .whl .sqlite"
)
_BINARY = set(_BINARY_SUFFIXES.split())


def append_request(path: str, text: str, request: str, *, verbatim: bool) -> str:
    """`text` with `request` added at the end in the file's own syntax, so the file stays valid.

    `verbatim` adds the request's words as content; otherwise it is recorded as a requested change.
    """
    body = text if not text or text.endswith("\n") else text + "\n"
    name = posixpath.basename(path).lower()
    suffix = posixpath.splitext(name)[1]
    line = one_line(request)
    if suffix in (".md", ".markdown"):
        if verbatim:
            return f"{body}\n{request.strip()}\n" if body else f"{request.strip()}\n"
        if re.search(r"^## Changes[ \t]*$", body, re.MULTILINE):
            return f"{body}- {line}\n"
        return f"{body}\n## Changes\n\n- {line}\n" if body else f"## Changes\n\n- {line}\n"
    if suffix == ".json":
        return _append_to_json(path, body, request.strip() if verbatim else line)
    lines = (
        [one_line(part) for part in request.strip().splitlines()]
        if verbatim
        else [f"Requested change: {line}"]
    )
    syntax = _COMMENTS.get(suffix) or _COMMENTS.get(name)
    if syntax is not None:
        if syntax.endswith("*/"):
            # The comment must not end early.
            lines = [part.replace("*/", "* /") for part in lines]
        return body + "".join(syntax.format(part) + "\n" for part in lines)
    if suffix in _MARKUP:
        if verbatim and suffix in (".html", ".htm"):
            added = "".join(f"<p>{html.escape(part)}</p>\n" for part in lines)
        else:
            added = "".join(f"<!-- {part.replace('--', '- -')} -->\n" for part in lines)
        closing = body.lower().rfind("</body>")
        return body[:closing] + added + body[closing:] if closing >= 0 else body + added
    return body + "".join(f"{part}\n" for part in lines)


def stub_content(path: str, about: str) -> bytes:
    """Plausible first content for a new file, from its name and the words that asked for it."""
    name = posixpath.basename(path)
    stem, suffix = posixpath.splitext(name.lower())
    # A package's __init__.py is named after its folder.
    named = posixpath.basename(posixpath.dirname(path)) if stem == "__init__" else stem
    words = re.findall(r"[a-z0-9]+", ascii_fold(named.lower())) or ["file"]
    title = " ".join(word.capitalize() for word in words)
    purpose = one_line(about).rstrip(".") or "added by Atelier"
    if suffix == ".png":
        return prompt_picture(f"{path}\n{about}")
    if suffix in _BINARY:
        raise ProviderError(
            f"cannot make up the content of {path} offline; give it with content",
            reason="OFFLINE_CANNOT_EDIT",
            code="INVALID_ARGUMENT",
        )
    if suffix == ".py":
        return _python_stub(stem, words, title, purpose).encode("utf-8")
    if suffix in (".md", ".markdown"):
        return f"# {title}\n\n{purpose[0].upper()}{purpose[1:]}.\n".encode()
    if suffix == ".json":
        return (
            json.dumps({"name": stem, "description": purpose}, indent=2, ensure_ascii=False) + "\n"
        ).encode()
    if suffix in (".html", ".htm"):
        return (
            f'<!doctype html>\n<html lang="en">\n  <head>\n    <meta charset="utf-8">\n'
            f"    <title>{html.escape(title)}</title>\n  </head>\n"
            f"  <body>\n    <h1>{html.escape(title)}</h1>\n"
            f"    <p>{html.escape(purpose)}</p>\n  </body>\n</html>\n"
        ).encode()
    if suffix == ".go":
        folder = re.sub(r"[^a-z0-9]", "", posixpath.basename(posixpath.dirname(path)).lower())
        package = folder if folder and folder[0].isalpha() else "main"
        return f"// {title}: {purpose}.\npackage {package}\n".encode()
    if suffix in (".js", ".mjs", ".ts"):
        return f"// {title}: {purpose}.\n\nexport {{}};\n".encode()
    if suffix == ".rs":
        return f"//! {title}: {purpose}.\n".encode()
    if suffix == ".sh":
        return f"#!/usr/bin/env sh\n# {title}: {purpose}.\n".encode()
    return append_request(path, "", f"{title}: {purpose}.", verbatim=True).encode("utf-8")


def _python_stub(stem: str, words: list[str], title: str, purpose: str) -> str:
    docstring = purpose.replace("\\", "/").replace('"', "'")
    if stem == "__init__":
        return f'"""{title} package: {docstring}."""\n'
    if stem.startswith("test_"):
        name = "_".join(words[1:]) or "module"
        return (
            f'"""Tests for {name}: {docstring}."""\n\n\n'
            f"def test_{name}_is_pending() -> None:\n"
            f'    """A placeholder: replace it with the first real check of {name}."""\n'
        )
    class_name = "".join(word.capitalize() for word in words)
    if not class_name[0].isalpha() or keyword.iskeyword(class_name):
        class_name = f"Item{class_name}"
    return (
        f'"""{title}: {docstring}."""\n\nfrom __future__ import annotations\n\n\n'
        f'class {class_name}:\n    """{title}, ready to be filled in."""\n'
    )


def _append_to_json(path: str, body: str, request: str) -> str:
    try:
        document = json.loads(body)
    except json.JSONDecodeError:
        document = None
    if not isinstance(document, dict) or not isinstance(document.get("changes", []), list):
        raise ProviderError(
            f"{path} is not a JSON object with room for a changes list, so it cannot be edited offline",
            reason="OFFLINE_CANNOT_EDIT",
            code="INVALID_ARGUMENT",
        )
    document["changes"] = [*document.get("changes", []), request]
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def _parse_clause(clause: str, known: _Known) -> Instruction:
    if (match := _IN_FILE.match(clause)) and _is_path(match["path"], known, match["file"]):
        path, rest = _clean_path(match["path"]), match["rest"].strip()
        if replace := _REPLACE.match(rest):
            if not replace["path"]:
                return ReplaceText(clause, path, _unquote(replace["old"]), _unquote(replace["new"]))
        else:
            return ChangeFile(clause, path, _say(rest))
    if (match := _REPLACE.match(clause)) and match["path"] and _is_path(match["path"], known, "file"):
        return ReplaceText(clause, _clean_path(match["path"]), _unquote(match["old"]), _unquote(match["new"]))
    if (match := _ADD.match(clause)) and _is_path(match["path"], known, match["file"] or match["file_after"]):
        rest = (match["rest"] or "").strip()
        content = _CONTENT.match(rest)
        if content is None:
            return AddFile(clause, _clean_path(match["path"]), None, rest)
        value = content["content"].strip()
        text = _unquote(value) if len(value) >= 2 and value[0] == value[-1] == '"' else value
        return AddFile(
            clause, _clean_path(match["path"]), text if text.endswith("\n") or not text else text + "\n"
        )
    if (match := _CHANGE.match(clause)) and _is_path(
        match["path"], known, match["file"] or match["file_after"]
    ):
        return ChangeFile(clause, _clean_path(match["path"]), _say((match["rest"] or "").strip()))
    if (match := _DELETE.match(clause)) and _is_path(
        match["path"], known, match["file"] or match["file_after"]
    ):
        return DeleteFiles(clause, _clean_path(match["path"]))
    if (match := _RENAME.match(clause)) and _is_path(match["old"], known, None):
        return RenameFiles(clause, _clean_path(match["old"]), _clean_path(match["new"]))
    mentioned = {known.files[token] for token in _tokens(clause) if token in known.files}
    if len(mentioned) == 1:
        return ChangeFile(clause, mentioned.pop())
    return Note(clause)


def _say(rest: str) -> str | None:
    match = _SAY.match(rest)
    if match is None:
        return None
    value = match["say"].strip()
    return _unquote(value) if len(value) >= 2 and value[0] == value[-1] == '"' else value


def _unquote(quoted: str) -> str:
    escapes = {"n": "\n", "t": "\t"}
    return re.sub(r"\\(.)", lambda m: escapes.get(m[1], m[1]), quoted[1:-1], flags=re.DOTALL)


@dataclass(frozen=True, slots=True)
class _Known:
    # Files, folders and file names of the tree: what counts as a path without a "/" or an extension.
    names: frozenset[str]
    # A file's path, or its name when no other file has that name, to the file's path.
    files: dict[str, str]

    @classmethod
    def of(cls, paths: Collection[str]) -> _Known:
        names: set[str] = set()
        by_name: dict[str, list[str]] = {}
        for path in paths:
            parts = path.split("/")
            names.update("/".join(parts[:end]) for end in range(1, len(parts) + 1))
            names.add(parts[-1])
            by_name.setdefault(parts[-1], []).append(path)
        files = {name: found[0] for name, found in by_name.items() if len(found) == 1}
        files.update((path, path) for path in paths)
        return cls(frozenset(names), files)


def _tokens(clause: str) -> list[str]:
    return [_clean_path(token).rstrip(".") for token in clause.split()]


def _is_path(token: str, known: _Known, explicit: str | None) -> bool:
    path = _clean_path(token)
    if not path or not re.fullmatch(r"[\w.\-/@+~ ]+", path):
        return False
    return bool(explicit) or "/" in path or bool(_EXTENSION.search(path)) or path.rstrip("/") in known.names


def _clean_path(token: str) -> str:
    return token.strip("`'\"").rstrip(",:;").strip("`'\"").removeprefix("./")


def _checked_path(path: str) -> str:
    problem = path_problem(path)
    if problem is not None:
        raise ProviderError(
            f"{path!r} is not the path of a file inside the project: it {problem}",
            reason="OFFLINE_BAD_PATH",
            code="INVALID_ARGUMENT",
        )
    return path


def one_line(text: str) -> str:
    """Text on one line with no control characters, safe inside any comment syntax and string literal."""
    # U+FEFF too: Go rejects a byte order mark anywhere but at the start of a file.
    printable = "".join(
        " " if unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp") or char == "\ufeff" else char
        for char in text
    )
    return " ".join(printable.split())


def ascii_fold(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
