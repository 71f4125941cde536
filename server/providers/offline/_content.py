"""What the offline provider writes into a file: a request appended in the file's own syntax
(a comment in code, a "Changes" section in Markdown, a "changes" list in JSON), or plausible
first content for a new file."""

from __future__ import annotations

import html
import json
import keyword
import posixpath
import re

from server.providers._base import ProviderError
from server.providers.offline._png import prompt_picture
from server.providers.offline._text import ascii_fold, one_line

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
