"""A real server for the CLI tests (SQLite), and the `atelier` command run against it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests._client_support import TOKEN, client_server
from tests._support import ServerProcess

ATELIER = [sys.executable, "-m", "atelier"]
RunCli = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with client_server(tmp_path_factory.mktemp("cli-server")) as process:
        yield process


def cli_env(server: ServerProcess) -> dict[str, str]:
    """The caller's environment with the server's address and token, and nothing else of Atelier's.
    The command remembers its current generation next to the server's files, never in $HOME."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ATELIER_")}
    env.update(
        ATELIER_TARGET=server.target,
        ATELIER_TOKEN=TOKEN,
        ATELIER_STATE_FILE=str(server.log_path.with_name("cli-state.json")),
    )
    return env


@pytest.fixture
def run_cli(server: ServerProcess, tmp_path: Path) -> RunCli:
    def run(
        *args: str, timeout: float = 60, input: str | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*ATELIER, *args],
            cwd=tmp_path,
            env={**cli_env(server), **(env or {})},
            capture_output=True,
            text=True,
            input=input,
            timeout=timeout,
        )

    return run
