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

`_draft.Draft` applies the parsed instructions to the tree.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass


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
