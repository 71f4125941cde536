"""Support for the client tests (SDK, CLI, other languages): one real server on SQLite.

These suites exercise the clients, not the storage backends, which the server suites already
run on PostgreSQL too.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests._support import ServerProcess

TOKEN = "alice-token"
# The default model is the offline one (deterministic file trees from the prompt); the scripted
# one (model="scripted") runs what a JSON prompt says, for slow or failing jobs.
CLIENT_SERVER_ENV = {
    "ATELIER_PROVIDER": "scripted",
    "ATELIER_DEFAULT_MODEL": "offline",
    "ATELIER_TOKENS": f"{TOKEN}:alice",
    "ATELIER_JOB_LEASE_SECONDS": "2",
    "ATELIER_JOB_HEARTBEAT_SECONDS": "0.5",
    "ATELIER_PROGRESS_POLL_SECONDS": "0.5",
    "ATELIER_SHUTDOWN_GRACE_SECONDS": "1",
}
# Models with limits, for queued versions: the config file lists every model the server offers.
QUEUEING_CONFIG = """
[[models]]
name = "offline"
provider = "offline"

[[models]]
name = "scripted"
provider = "scripted"

[[models]]
name = "one-at-a-time"
provider = "scripted"
max_concurrent = 1
requests_per_minute = 600
tokens_per_minute = 250000
"""
WORKFLOW_PROMPT = "a python CLI that converts celsius to fahrenheit"
WORKFLOW_TWEAK = "add file docs/usage.md"
WORKFLOW_ITERATE = "add file app/schemas/project.py"


def free_port() -> int:
    """A port nobody listens on now, for a server that must come back on the same address."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def client_server(tmp: Path, **env: str) -> Iterator[ServerProcess]:
    """The real server in a subprocess, on SQLite, killed afterwards."""
    server = ServerProcess(
        database_url=f"sqlite:///{tmp / 'atelier.db'}",
        log_path=tmp / "server.log",
        env={**CLIENT_SERVER_ENV, **env},
    ).start()
    try:
        yield server
    finally:
        server.kill()


@contextmanager
def queueing_server(tmp: Path) -> Iterator[ServerProcess]:
    """The real server with QUEUEING_CONFIG's models: jobs on `one-at-a-time` queue behind each other."""
    config = tmp / "atelier.toml"
    config.write_text(QUEUEING_CONFIG)
    with client_server(tmp, ATELIER_CONFIG=str(config)) as server:
        yield server


def tree_of(directory: Path) -> dict[str, bytes]:
    """Every file under a directory, by relative `/` path."""
    return {
        path.relative_to(directory).as_posix(): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def npm_installed(directory: Path, marker: str) -> str:
    """npm, once `directory`'s pinned packages are installed (`make test` installs them; a bare
    pytest run may not have): `marker` is a path under its node_modules that only they provide."""
    npm = shutil.which("npm")
    assert npm is not None, "node is on PATH but npm is not"
    if not (directory / "node_modules" / marker).exists():
        # `npm ci` rejects lock files here (see the Makefile); install keeps the pinned versions.
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund"],
            cwd=directory,
            check=True,
            capture_output=True,
            timeout=600,
        )
    return npm
