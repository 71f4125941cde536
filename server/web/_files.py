"""Files by URL: `GET|HEAD /files/generations/{g}/versions/{n}/{path}?exp=..&sig=..` serves any
file of any version, whatever its type, from this one route: its Content-Type, an ETag that is its
SHA-256, immutable caching until the URL expires, Range requests (so audio and video seek) and
If-None-Match. `&width=N` asks an image for a thumbnail N pixels wide (Pillow, kept in memory)."""

from __future__ import annotations

import io
import re
import time
import urllib.parse

import anyio

from server.api import FileUrls
from server.domain import (
    ADMIN,
    LRU,
    READ,
    AtelierError,
    GenerationService,
    InvalidArgument,
    Principal,
    VersionRef,
)
from server.files import has_pixel_size
from server.web._asgi import Receive, Scope, Send, header, respond, respond_json

_LOCATION = re.compile(r"^/files/generations/([^/]+)/versions/([0-9]{1,9})/(.+)$")
# Whoever holds a URL this server signed reads that one file, whoever owns it: the signature is
# the permission (the URL was only given to a caller who could read the file).
_URL_HOLDER = Principal("signed-url", frozenset({READ, ADMIN}))
_MAX_THUMBNAIL_WIDTH = 4096
_THUMBNAIL_CACHE_BYTES = 64 * 1024 * 1024
# Browsers must not run a served file as a page of this origin (it could reach the API as the
# console's user): HTML and SVG files are shown sandboxed, and no type is sniffed.
_SAFETY = [(b"content-security-policy", b"sandbox"), (b"x-content-type-options", b"nosniff")]
_STATUS = {"PERMISSION_DENIED": 403, "NOT_FOUND": 404, "INVALID_ARGUMENT": 400, "UNAUTHENTICATED": 401}


class FileRoute:
    def __init__(self, service: GenerationService, urls: FileUrls) -> None:
        self._service = service
        self._urls = urls
        self._thumbnails: LRU[tuple[str, int], bytes] = LRU(
            max_entries=10_000, max_bytes=_THUMBNAIL_CACHE_BYTES, max_item_bytes=_THUMBNAIL_CACHE_BYTES // 8
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            await respond(send, 405, b"files are read with GET or HEAD\n", headers=[(b"allow", b"GET, HEAD")])
            return
        try:
            await self._serve(scope, send, head=method == "HEAD")
        except AtelierError as error:
            await respond_json(
                send,
                _STATUS.get(error.code, 500),
                {"code": error.code.lower(), "reason": error.reason, "message": error.message},
            )

    async def _serve(self, scope: Scope, send: Send, *, head: bool) -> None:
        found = _LOCATION.match(scope["path"])
        if found is None:
            raise _bad(
                "a file URL is /files/generations/{generation}/versions/{number}/{path}", "INVALID_NAME"
            )
        ref, path = VersionRef(found.group(1), int(found.group(2))), found.group(3)
        query = urllib.parse.parse_qs(scope.get("query_string", b"").decode("latin-1"))
        expires = query.get("exp", [""])[0]
        self._urls.check(ref, path, expires, query.get("sig", [""])[0])
        entry, data = await self._service.read_file(caller=_URL_HOLDER, ref=ref, path=path)
        mime_type, etag = entry.mime_type, f'"{entry.blob_sha256}"'
        width = query.get("width", [""])[0]
        if width:
            data, mime_type = await self._thumbnail(entry.blob_sha256, entry.mime_type, data, width)
            etag = f'"{entry.blob_sha256}-w{width}"'
        max_age = max(int(expires) - int(time.time()), 0)
        headers = [
            (b"etag", etag.encode()),
            (b"cache-control", f"private, max-age={max_age}, immutable".encode()),
            (b"accept-ranges", b"bytes"),
            *_SAFETY,
        ]
        if _matches(header(scope, b"if-none-match"), etag):
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        wanted = _byte_range(header(scope, b"range"), len(data))
        if wanted == _UNSATISFIABLE:
            await respond(
                send,
                416,
                f"the range is outside the file's {len(data)} bytes\n".encode(),
                headers=[(b"content-range", f"bytes */{len(data)}".encode()), *headers],
            )
            return
        status = 200
        if wanted is not None:
            start, end = wanted
            headers.append((b"content-range", f"bytes {start}-{end}/{len(data)}".encode()))
            data, status = data[start : end + 1], 206
        await respond(send, status, data, content_type=mime_type, headers=headers, head=head)

    async def _thumbnail(self, sha256: str, mime_type: str, data: bytes, width: str) -> tuple[bytes, str]:
        if not has_pixel_size(mime_type):
            raise _bad(f"width= makes thumbnails of images; this file is {mime_type}", "NOT_AN_IMAGE")
        if not width.isdigit() or not 1 <= int(width) <= _MAX_THUMBNAIL_WIDTH:
            raise _bad(f"width must be a number of pixels from 1 to {_MAX_THUMBNAIL_WIDTH}", "INVALID_WIDTH")
        key = (sha256, int(width))
        made = self._thumbnails.get(key)
        if made is None:
            made = await anyio.to_thread.run_sync(_scaled, data, int(width))
            self._thumbnails.put(key, made, len(made))
        return made, "image/png"


def _bad(message: str, reason: str) -> AtelierError:
    return InvalidArgument(message, reason=reason)


def _scaled(data: bytes, width: int) -> bytes:
    """A PNG of the image `width` pixels wide (never wider than the image), its proportions kept."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.thumbnail((min(width, image.width), image.height * width // max(image.width, 1) or 1))
            out = io.BytesIO()
            image.save(out, format="PNG")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise _bad("this image cannot be read to make a thumbnail", "UNREADABLE_IMAGE") from exc
    return out.getvalue()


def _matches(if_none_match: str | None, etag: str) -> bool:
    if if_none_match is None:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag in tags


_UNSATISFIABLE = (-1, -1)


def _byte_range(value: str | None, size: int) -> tuple[int, int] | None:
    """The one range of `Range: bytes=...` as (first, last) byte; None: the whole file (no range,
    one the server ignores, or several: the whole file answers them all); _UNSATISFIABLE."""
    if value is None or not value.startswith("bytes=") or "," in value:
        return None
    first, dash, last = value[len("bytes=") :].strip().partition("-")
    if not dash or not (first.isdigit() or last.isdigit()) or (first and not first.isdigit()):
        return None
    if last and not last.isdigit():
        return None
    if not first:  # the last N bytes
        suffix = int(last)
        return (max(size - suffix, 0), size - 1) if suffix and size else _UNSATISFIABLE
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        return _UNSATISFIABLE
    return start, end
