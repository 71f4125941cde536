"""The servers under test, each in its own subprocess, always stopped on the way out."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from bench._echo import READY_PREFIX
from support.databases import fresh_database

ROOT = Path(__file__).resolve().parent.parent
_ECHO_READY = re.compile(re.escape(READY_PREFIX) + r"(\S+:\d+)")
_START_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Server:
    """A running server under test: where to call it, and its process (for CPU figures)."""

    target: str
    pid: int
    # Its Prometheus metrics (http://host:port/metrics), if it serves them.
    metrics_url: str = ""


class ServerFailed(RuntimeError):
    """A server under test did not start; the message carries its log."""


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _tail(path: Path, lines: int = 40) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


@contextmanager
def echo_server(workdir: Path, *, timeout: float = 20.0) -> Iterator[Server]:
    log_path = workdir / "echo.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench._echo"],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            match = _ECHO_READY.search(log_path.read_text(errors="replace"))
            if match:
                break
            if process.poll() is not None or time.monotonic() > deadline:
                raise ServerFailed(f"the echo server did not start:\n{_tail(log_path)}")
            time.sleep(0.02)
        yield Server(target=match.group(1), pid=process.pid)
    finally:
        _stop(process)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _atelier_env(database_url: str, listen: str, extra: Mapping[str, str]) -> dict[str, str]:
    # Like tests._support.ServerProcess: nothing from the caller's ATELIER_*/Gemini settings leaks
    # in, so the offline provider serves and no tokens are needed.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ATELIER_", "GEMINI_", "GOOGLE_"))
    }
    env.update(
        ATELIER_LISTEN=listen,
        ATELIER_WEB_LISTEN="127.0.0.1:0",
        ATELIER_DATABASE_URL=database_url,
        # Keeps logging out of the figures. It also hides the "listening on" line, which is why
        # the port is chosen here and readiness is read from the health service instead.
        ATELIER_LOG_LEVEL="WARNING",
    )
    env.update(extra)
    return env


def _wait_serving(target: str, process: subprocess.Popen[bytes], timeout: float) -> bool:
    """True once the health service says SERVING; False if the process exits first."""
    deadline = time.monotonic() + timeout
    request = health_pb2.HealthCheckRequest(service="")
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if process.poll() is not None:
                return False
            try:
                if stub.Check(request, timeout=1).status == health_pb2.HealthCheckResponse.SERVING:
                    return True
            except grpc.RpcError:
                pass
            time.sleep(0.05)
    return False


def _start_atelier(
    database_url: str, log_path: Path, timeout: float, extra_env: Mapping[str, str], *, metrics: bool
) -> tuple[subprocess.Popen[bytes], Server]:
    # The chosen ports can be taken by someone else before the server binds them; then the
    # server exits and other ports are tried.
    for _ in range(_START_ATTEMPTS):
        target = f"127.0.0.1:{_free_port()}"
        env = dict(extra_env)
        metrics_url = ""
        if metrics:
            env["ATELIER_METRICS_LISTEN"] = metrics_listen = f"127.0.0.1:{_free_port()}"
            metrics_url = f"http://{metrics_listen}/metrics"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "server"],
                cwd=ROOT,
                env=_atelier_env(database_url, target, env),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if _wait_serving(target, process, timeout):
            return process, Server(target=target, pid=process.pid, metrics_url=metrics_url)
        _stop(process)
    raise ServerFailed(f"the Atelier server did not start ({database_url}):\n{_tail(log_path)}")


@contextmanager
def atelier_server(
    backend: str,
    workdir: Path,
    *,
    timeout: float = 60.0,
    label: str = "",
    env: Mapping[str, str] | None = None,
    prepare: Callable[[str], None] | None = None,
    metrics: bool = False,
) -> Iterator[Server]:
    """An Atelier server on a fresh database of `backend`.

    `label` names the server's directory under `workdir` (the backend's name by default), `env`
    adds to (or overrides) its environment, `prepare(database_url)` runs before it starts, and
    `metrics` has it serve Prometheus metrics (`Server.metrics_url`).
    The server is stopped before its database is dropped (PostgreSQL) or deleted with `workdir`.
    """
    backend_dir = workdir / (label or backend)
    backend_dir.mkdir()
    with fresh_database(backend, backend_dir) as database_url:
        if prepare is not None:
            prepare(database_url)
        log_path = backend_dir / "server.log"
        process, server = _start_atelier(database_url, log_path, timeout, env or {}, metrics=metrics)
        try:
            yield server
        finally:
            _stop(process)
