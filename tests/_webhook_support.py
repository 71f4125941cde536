"""A webhook receiver for the tests: a tiny HTTP server in a thread that records what it gets."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests._client_support import client_server
from tests._support import ServerProcess

# A signing secret for the tests (Standard Webhooks form: whsec_ and the base64 of 32 bytes).
SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def payload(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


class Receiver:
    """Listens on 127.0.0.1 at a port chosen now; `start()` may come later (down at first).

    Until it starts, the port is bound but not listening, so connections are refused and no other
    program can take the port.
    """

    def __init__(self, status: int = 204) -> None:
        self.status = status
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._placeholder: socket.socket | None = socket.socket()
        self._placeholder.bind(("127.0.0.1", 0))
        self.port: int = self._placeholder.getsockname()[1]
        self._server: ThreadingHTTPServer | None = None

    def url(self, path: str = "/hooks") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver._lock:
                    receiver.received.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                self.send_response(receiver.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        assert self._placeholder is not None
        self._placeholder.close()
        self._placeholder = None
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._placeholder is not None:
            self._placeholder.close()

    def wait_for(self, check: Callable[[list[Received]], bool], timeout: float = 15.0) -> list[Received]:
        """What was received, once `check` holds for it."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                seen = list(self.received)
            if check(seen):
                return seen
            assert time.monotonic() < deadline, f"the receiver did not get what was expected: {seen}"
            time.sleep(0.02)

    def of(self, version: str) -> list[Received]:
        with self._lock:
            return [item for item in self.received if item.payload["data"]["name"] == version]


@contextmanager
def hooked_client_server(tmp: Path) -> Iterator[tuple[ServerProcess, Receiver]]:
    """A client suite's server (SQLite) with webhooks on: the test secret, only a running
    receiver's /hooks allowed, and a deliverer that looks often."""
    receiver = Receiver().start()
    env = {
        "ATELIER_WEBHOOK_SECRET": SECRET,
        "ATELIER_WEBHOOK_ALLOWED_URLS": receiver.url("/hooks"),
        "ATELIER_WEBHOOK_POLL_SECONDS": "0.1",
        "ATELIER_WEBHOOK_TIMEOUT_SECONDS": "2",
    }
    try:
        with client_server(tmp, **env) as server:
            yield server, receiver
    finally:
        receiver.stop()
