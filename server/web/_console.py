"""The web console at `/`: the static files of clients/web/console/public (index.html, its style
and its one bundled script), read once at start and served from memory."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from server.web._asgi import Receive, Scope, Send, header, respond

_log = logging.getLogger("atelier.web")

# The console's files in this checkout; `make console` rebuilds the bundle, which is committed.
CONSOLE_DIR = Path(__file__).resolve().parents[2] / "clients" / "web" / "console" / "public"
_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
}
# The page loads only its own script and style, and talks only to this origin (files by URL
# included); blob: and data: are for pictures and players made from bytes.
_POLICY = (
    b"default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
    b"object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True, slots=True)
class _Asset:
    body: bytes
    content_type: str
    etag: str


class ConsoleApp:
    """Serves the console's files by GET and HEAD; `/` is index.html. Anything else under `/` that
    no other route took is a 404."""

    def __init__(self, directory: Path = CONSOLE_DIR) -> None:
        self._assets: dict[str, _Asset] = {}
        if not (directory / "index.html").is_file():
            _log.warning("no web console at %s: / answers 404", directory)
            return
        for path in sorted(directory.iterdir()):
            if path.is_file() and path.suffix in _TYPES:
                body = path.read_bytes()
                etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
                self._assets[f"/{path.name}"] = _Asset(body, _TYPES[path.suffix], etag)
        self._assets["/"] = self._assets["/index.html"]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        asset = self._assets.get(scope["path"])
        if asset is None:
            await respond(send, 404, f"nothing is served at {scope['path'][:200]}\n".encode())
            return
        if method not in ("GET", "HEAD"):
            await respond(
                send, 405, b"the console's files answer GET and HEAD\n", headers=[(b"allow", b"GET, HEAD")]
            )
            return
        # The files change only with a new server version: cache them, but ask again each time.
        headers = [
            (b"etag", asset.etag.encode()),
            (b"cache-control", b"no-cache"),
            (b"x-content-type-options", b"nosniff"),
            (b"content-security-policy", _POLICY),
        ]
        if header(scope, b"if-none-match") == asset.etag:
            await send({"type": "http.response.start", "status": 304, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        await respond(
            send, 200, asset.body, content_type=asset.content_type, headers=headers, head=method == "HEAD"
        )
