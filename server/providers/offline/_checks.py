"""Whether a file the offline provider wrote is valid: syntax, encoding and structure, by suffix."""

from __future__ import annotations

import json
import posixpath
import tomllib
from html.parser import HTMLParser

from server.providers.offline._png import read_png_header
from server.providers.offline._text import word_set

# Files that must be UTF-8 text, checked further where the suffix has a parser.
_TEXT_SUFFIXES = word_set(".md .py .json .toml .html .htm .css .js .ts .go .mod .rs .txt .yaml .yml")
_VOID_ELEMENTS = word_set("area base br col embed hr img input link meta source track wbr")


def file_problems(path: str, data: bytes) -> list[str]:
    """What is wrong with a file of a type we know how to check: syntax, encoding, structure."""
    suffix = posixpath.splitext(path)[1].lower()
    if suffix == ".png":
        try:
            read_png_header(data)
        except ValueError as exc:
            return [f"{path} is not a valid PNG: {exc}"]
        return []
    if suffix not in _TEXT_SUFFIXES:
        return []
    try:
        text = data.decode("utf-8")
        if suffix == ".py":
            compile(data, path, "exec", dont_inherit=True)
        elif suffix == ".json":
            json.loads(text)
        elif suffix == ".toml":
            tomllib.loads(text)
        elif suffix in (".html", ".htm"):
            _check_tags(text)
    except (SyntaxError, ValueError) as exc:
        return [f"{path}: {exc}"]
    return []


class _TagBalance(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _VOID_ELEMENTS:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pass

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID_ELEMENTS:
            return
        if not self.open or self.open[-1] != tag:
            raise ValueError(f"</{tag}> closes {'<' + self.open[-1] + '>' if self.open else 'nothing'}")
        self.open.pop()


def _check_tags(text: str) -> None:
    parser = _TagBalance()
    parser.feed(text)
    parser.close()
    if parser.open:
        raise ValueError(f"<{parser.open[-1]}> is never closed")
