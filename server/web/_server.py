"""The web port's HTTP server: uvicorn, on the process's own event loop, bound before the
database is opened and stopped with the gRPC server by the process's one shutdown."""

from __future__ import annotations

import contextlib
import math
import socket
import ssl
from collections.abc import Iterator

import anyio
import uvicorn
from anyio.abc import TaskStatus

from server.web._asgi import App


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = anyio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.listening.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # SIGTERM and SIGINT belong to the process's one shutdown (server.app), not to uvicorn.
        yield


class WebServer:
    """Binds `listen` at once (or exits with one clear line); serves an application from `run`,
    over TLS with `tls` (the server's: server.tls.ServerTls.web_context)."""

    def __init__(self, *, listen: str, grace_seconds: float, tls: ssl.SSLContext | None = None) -> None:
        self._socket = _bind(listen)
        self.host, self.port = self._socket.getsockname()[:2]
        self._grace_seconds = grace_seconds
        self._tls = tls
        self._server: _Server | None = None
        self.finished = anyio.Event()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'http' if self._tls is None else 'https'}://{host}:{self.port}"

    async def run(self, app: App, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Serves `app` until `stop`; reports started once it accepts connections."""
        config = uvicorn.Config(
            app,
            http="h11",
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=math.ceil(self._grace_seconds),
            ssl_context_factory=None if self._tls is None else self._context,
        )
        self._server = server = _Server(config)
        try:
            async with anyio.create_task_group() as group:
                group.start_soon(server.serve, [self._socket])
                await server.listening.wait()
                task_status.started()
        finally:
            self.finished.set()

    def _context(self, _config: uvicorn.Config, _default: object) -> ssl.SSLContext:
        assert self._tls is not None
        return self._tls

    def stop(self) -> None:
        """Refuses new connections, lets the calls in flight end within the grace period (then
        cancels them); `finished` is set once that is done."""
        if self._server is None:
            self.finished.set()
        else:
            self._server.should_exit = True


def _bind(listen: str) -> socket.socket:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        # The protocol too: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
        # without it every response waited 40 ms for the client's delayed ACK (headers and body
        # are written apart).
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise SystemExit(f"atelier-server: cannot serve the web port on {listen}: {reason}") from exc
    sock.setblocking(False)
    return sock
