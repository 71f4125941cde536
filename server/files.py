"""A file with its bytes, and the two rules every file obeys: what its path may be, what its MIME type is.

This module depends on nothing else of Atelier, so that every layer (the API, the domain and
the providers) shares one definition instead of each keeping its own.
"""

from __future__ import annotations

import mimetypes
import posixpath
from dataclasses import dataclass

MAX_PATH_BYTES = 1024

# Types that Python's table gets wrong for source code (`.ts` is MPEG transport stream there)
# or leaves to the machine's /etc/mime.types: the same answer on every machine for these.
_MIME_TYPES = {
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".py": "text/x-python",
    ".json": "application/json",
    ".toml": "application/toml",
    ".png": "image/png",
    ".html": "text/html",
    ".htm": "text/html",
    ".css": "text/css",
    ".js": "text/javascript",
    ".mjs": "text/javascript",
    ".ts": "text/x-typescript",
    ".go": "text/x-go",
    ".mod": "text/plain",
    ".rs": "text/x-rust",
    ".txt": "text/plain",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".svg": "image/svg+xml",
    ".sh": "text/x-shellscript",
}
# How much of a file decides whether it is text, when its name does not say.
_SNIFF_BYTES = 8192


@dataclass(frozen=True, slots=True)
class FileContent:
    """A file with its bytes: an attachment (`path` is then its display name), an upload, or
    a file a provider wrote."""

    path: str
    mime_type: str
    data: bytes


def guess_mime_type(path: str, data: bytes | None = None) -> str:
    """The MIME type of a file, from its name, else from its first bytes (when given): text/plain
    for UTF-8 text, application/octet-stream for anything else."""
    suffix = posixpath.splitext(path)[1].lower()
    known = _MIME_TYPES.get(suffix) or mimetypes.guess_type(path, strict=False)[0]
    if known:
        return known
    return "text/plain" if data is not None and _looks_like_text(data) else "application/octet-stream"


def _looks_like_text(data: bytes) -> bool:
    head = data[:_SNIFF_BYTES]
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the end of the sample is still text.
        return len(data) > _SNIFF_BYTES and exc.start >= len(head) - 3
    return True


def path_problem(path: str) -> str | None:
    """Why `path` cannot name a file of a tree, or None if it can.

    A tree path is relative, `/`-separated, with no empty, `.` or `..` segment.
    """
    if not path:
        return "is empty"
    if "\x00" in path:
        return "contains NUL"
    if "\\" in path:
        return "contains a backslash (use /)"
    if path.startswith("/"):
        return "is absolute"
    if len(path.encode()) > MAX_PATH_BYTES:
        return f"is longer than {MAX_PATH_BYTES} bytes"
    parts = path.split("/")
    if any(part in ("", ".", "..") for part in parts):
        return "has an empty, '.' or '..' segment"
    return None
