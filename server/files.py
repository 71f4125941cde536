"""A file with its bytes, and the rules every file obeys: what its path may be, what its MIME type
is, and that its bytes are what a declared image, audio or PDF type says they are.

This module depends on nothing else of Atelier, so that every layer (the API, the domain and
the providers) shares one definition instead of each keeping its own.
"""

from __future__ import annotations

import io
import mimetypes
import posixpath
import re
from collections.abc import Callable
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
# A path component git refuses (fsck.c: `is_ntfs_dotgit`, `is_hfs_dotgit`), because checking the
# tree out would write into the repository's own `.git`: on NTFS, `.git` or its short name `git~1`
# followed by any dots and spaces (which NTFS drops); on HFS+, `.git` with any of the code points
# HFS+ ignores (`_HFS_IGNORED`) inside. Case never matters (both file systems fold ASCII case).
# The SDK's export (clients/python/atelier/_files.py) keeps the same rule; tests/test_git_paths.py
# pins the two together.
_NTFS_DOT_GIT = re.compile(r"(?:\.git|git~1)[. ]*", re.IGNORECASE | re.ASCII)
_HFS_DOT_GIT = re.compile(r"\.git", re.IGNORECASE | re.ASCII)
_HFS_IGNORED = dict.fromkeys([*range(0x200C, 0x2010), *range(0x202A, 0x202F), *range(0x206A, 0x2070), 0xFEFF])


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
    dot_git = next((part for part in parts if _is_dot_git(part)), None)
    if dot_git is not None:
        return f"has the segment {dot_git!r}, which is .git to some file system: git refuses it"
    return None


def _is_dot_git(name: str) -> bool:
    return bool(_NTFS_DOT_GIT.fullmatch(name) or _HFS_DOT_GIT.fullmatch(name.translate(_HFS_IGNORED)))


def content_problem(mime_type: str, data: bytes) -> str | None:
    """Why `data` is not what `mime_type` declares, or None if it is (or if the type is not one
    whose bytes can tell: only images, audio and PDF are checked, and every audio type must be one
    whose first bytes say what it is)."""
    kind = mime_type.partition(";")[0].strip().lower()
    signature = _SIGNATURES.get(kind)
    if signature is None:
        if kind.startswith("audio/"):
            return f"is declared {kind}, an audio type Atelier cannot check (it accepts {_AUDIO_TYPES})"
        return None
    expected, matches = signature
    return None if matches(data) else f"is declared {kind}, but its first bytes are not {expected}"


def _starts(*prefixes: bytes) -> Callable[[bytes], bool]:
    return lambda data: data.startswith(prefixes)


def _riff(form: bytes) -> Callable[[bytes], bool]:
    return lambda data: data[:4] == b"RIFF" and data[8:12] == form


def _iso_media(data: bytes) -> bool:
    return data[4:8] == b"ftyp"


def _mpeg_audio(data: bytes) -> bool:
    # An ID3 tag, or an MPEG audio frame's 11 sync bits.
    return data.startswith(b"ID3") or (len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0)


def _aac(data: bytes) -> bool:
    # An ID3 tag, an ADIF header, or an ADTS frame's 12 sync bits with layer 0.
    return data.startswith((b"ID3", b"ADIF")) or (
        len(data) > 1 and data[0] == 0xFF and data[1] & 0xF6 == 0xF0
    )


def _aiff(data: bytes) -> bool:
    return data[:4] == b"FORM" and data[8:12] in (b"AIFF", b"AIFC")


# The declared types whose first bytes are checked: what they must show, and the test.
_SIGNATURES: dict[str, tuple[str, Callable[[bytes], bool]]] = {
    "image/png": ("a PNG signature", _starts(b"\x89PNG\r\n\x1a\n")),
    "image/jpeg": ("a JPEG start-of-image marker", _starts(b"\xff\xd8\xff")),
    "image/gif": ("GIF87a or GIF89a", _starts(b"GIF87a", b"GIF89a")),
    "image/webp": ("a RIFF WEBP header", _riff(b"WEBP")),
    "image/heic": ("an ISO media ftyp box", _iso_media),
    "image/heif": ("an ISO media ftyp box", _iso_media),
    # Readers accept the header anywhere in the first 1,024 bytes (PDF 1.7, annex H).
    "application/pdf": ("a %PDF- header", lambda data: b"%PDF-" in data[:1024]),
    "audio/wav": ("a RIFF WAVE header", _riff(b"WAVE")),
    "audio/wave": ("a RIFF WAVE header", _riff(b"WAVE")),
    "audio/x-wav": ("a RIFF WAVE header", _riff(b"WAVE")),
    "audio/vnd.wave": ("a RIFF WAVE header", _riff(b"WAVE")),
    "audio/mpeg": ("an ID3 tag or an MPEG audio frame", _mpeg_audio),
    "audio/mp3": ("an ID3 tag or an MPEG audio frame", _mpeg_audio),
    "audio/aac": ("an ADTS or ADIF header", _aac),
    "audio/x-aac": ("an ADTS or ADIF header", _aac),
    "audio/aiff": ("a FORM AIFF header", _aiff),
    "audio/x-aiff": ("a FORM AIFF header", _aiff),
    "audio/ogg": ("an Ogg page (OggS)", _starts(b"OggS")),
    "audio/opus": ("an Ogg page (OggS)", _starts(b"OggS")),
    "audio/flac": ("fLaC", _starts(b"fLaC", b"ID3")),
    "audio/x-flac": ("fLaC", _starts(b"fLaC", b"ID3")),
    "audio/mp4": ("an ISO media ftyp box", _iso_media),
    "audio/m4a": ("an ISO media ftyp box", _iso_media),
    "audio/x-m4a": ("an ISO media ftyp box", _iso_media),
    "audio/webm": ("an EBML header", _starts(b"\x1a\x45\xdf\xa3")),
    "audio/midi": ("a MIDI header (MThd)", _starts(b"MThd")),
    "audio/x-midi": ("a MIDI header (MThd)", _starts(b"MThd")),
    "audio/basic": ("a .snd header", _starts(b".snd")),
    "audio/amr": ("#!AMR", _starts(b"#!AMR")),
}
_AUDIO_TYPES = ", ".join(kind for kind in _SIGNATURES if kind.startswith("audio/"))


# Image types whose size Pillow reads from the header (SVG has none in pixels).
_SIZED_IMAGES = ("image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "image/tiff")


def has_pixel_size(mime_type: str) -> bool:
    return mime_type in _SIZED_IMAGES


def image_size(data: bytes) -> tuple[int, int] | None:
    """An image's width and height in pixels, read from its header (the pixels are not decoded);
    None when the bytes are not an image Pillow knows."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None
    return int(width), int(height)
