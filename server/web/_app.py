"""The web port's one ASGI application: CORS by allowlist, `/healthz`, files by URL and
AtelierService over Connect and gRPC-Web, with a cap on what a request may send."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import anyio
from connectrpc.code import Code
from connectrpc.errors import ConnectError

from server.web._asgi import App, Message, Receive, Scope, Send, header, respond, respond_json
from server.web._connect import CALLER_GONE, REQUEST_BASE

CONNECT_PREFIX = "/atelier.v1.AtelierService/"
# What a browser may send and read across origins: Connect's and gRPC-Web's headers, the bearer
# token, and the file route's caching and Range headers.
_ALLOWED_HEADERS = (
    b"authorization, content-type, connect-protocol-version, connect-timeout-ms, connect-accept-encoding, "
    b"connect-content-encoding, x-grpc-web, x-user-agent, grpc-timeout, range, if-none-match"
)
_EXPOSED_HEADERS = (
    b"grpc-status, grpc-message, grpc-status-details-bin, content-encoding, connect-content-encoding, "
    b"etag, content-range, accept-ranges, content-length, content-disposition"
)
_PREFLIGHT_MAX_AGE = b"7200"


class WebApp:
    """Routes a request by its path; `routes` maps a path prefix to the application serving it."""

    def __init__(
        self,
        *,
        routes: Sequence[tuple[str, App]],
        cors_origins: Sequence[str],
        max_body_bytes: int,
        serving: Callable[[], bool],
    ) -> None:
        self._routes = sorted(routes, key=lambda route: -len(route[0]))
        self._origins = frozenset(cors_origins)
        self._max_body_bytes = max_body_bytes
        self._serving = serving

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        origin = header(scope, b"origin")
        allowed = origin is not None and ("*" in self._origins or origin in self._origins)
        if scope["method"] == "OPTIONS" and origin is not None:
            await self._preflight(scope, send, origin, allowed)
            return
        if allowed:
            send = _with_cors(send, origin or "")
        length = header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > self._max_body_bytes:
            await self._too_large(scope, send)
            return
        REQUEST_BASE.set(_base_of(scope))
        path: str = scope["path"]
        if path == "/healthz":
            serving = self._serving()
            await respond(send, 200 if serving else 503, b"SERVING\n" if serving else b"NOT_SERVING\n")
            return
        for prefix, app in self._routes:
            if path.startswith(prefix):
                await self._call(app, scope, receive, send)
                return
        await respond(send, 404, f"nothing is served at {path[:200]}\n".encode())

    async def _call(self, app: App, scope: Scope, receive: Receive, send: Send) -> None:
        # A caller that goes away ends its call here, as on the gRPC port (a Progress stream would
        # otherwise wait for its next event to notice), never the job; and the domain's writes,
        # which check the event from worker threads, write nothing for it.
        gone = threading.Event()
        CALLER_GONE.set(gone)
        with anyio.CancelScope() as call:

            def went() -> None:
                gone.set()
                call.cancel()

            await app(scope, _watched(receive, self._max_body_bytes, gone=went), send)

    async def _preflight(self, scope: Scope, send: Send, origin: str, allowed: bool) -> None:
        if not allowed:
            # A clear refusal, not an error status of some RPC: the origin is not on the list.
            await respond(
                send,
                403,
                f"CORS: the origin {origin[:200]} is not allowed; the server's ATELIER_CORS_ORIGINS "
                "lists the origins that are\n".encode(),
                headers=[(b"vary", b"Origin")],
            )
            return
        await respond(
            send,
            204,
            headers=[
                (b"access-control-allow-origin", origin.encode("latin-1")),
                (b"access-control-allow-methods", b"GET, HEAD, POST, OPTIONS"),
                (b"access-control-allow-headers", _ALLOWED_HEADERS),
                (b"access-control-max-age", _PREFLIGHT_MAX_AGE),
                (b"vary", b"Origin"),
            ],
        )

    async def _too_large(self, scope: Scope, send: Send) -> None:
        message = f"the request is over the server's limit of {self._max_body_bytes} bytes"
        if scope["path"].startswith(CONNECT_PREFIX):
            await respond_json(send, 413, {"code": "resource_exhausted", "message": message})
        else:
            await respond(send, 413, (message + "\n").encode())


def _with_cors(send: Send, origin: str) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [
                *message.get("headers", ()),
                (b"access-control-allow-origin", origin.encode("latin-1")),
                (b"access-control-expose-headers", _EXPOSED_HEADERS),
                (b"vary", b"Origin"),
            ]
        await send(message)

    return sending


def _watched(receive: Receive, limit: int, *, gone: Callable[[], object]) -> Receive:
    """`receive`, which calls `gone` when the client disconnects, and ends the request as gone
    once its body passes `limit` bytes (a body with no Content-Length is counted as it comes)."""
    received = 0

    async def receiving() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise ConnectError(
                    Code.RESOURCE_EXHAUSTED, f"the request is over the server's limit of {limit} bytes"
                )
        if message["type"] == "http.disconnect":
            gone()
        return message

    return receiving


def _base_of(scope: Scope) -> str:
    host = header(scope, b"host")
    if host is None:
        server = scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    return f"{scope.get('scheme', 'http')}://{host}"
