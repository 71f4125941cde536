"""`python -m server` refuses what it cannot serve with one clear line, at once: a port another
server holds, a PostgreSQL database that does not exist, a database URL of another kind."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from atelier.v1 import atelier_service_pb2 as pb
from sqlalchemy.engine import make_url

from support.databases import POSTGRES_URL
from tests._client_support import free_port
from tests._support import ROOT, Api, ServerProcess
from tests.conftest import check_backend


def _run_server(database_url: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Runs `python -m server` to its end (it must end by itself)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ATELIER_", "GEMINI_", "GOOGLE_"))}
    clean.update(
        {
            "ATELIER_LISTEN": "127.0.0.1:0",
            "ATELIER_WEB_LISTEN": "127.0.0.1:0",
            "ATELIER_DATABASE_URL": database_url,
            **env,
        }
    )
    return subprocess.run(
        [sys.executable, "-m", "server"],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _one_clear_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_second_server_on_a_busy_port_fails_at_once_and_the_first_goes_on(tmp_path: Path) -> None:
    listen = f"127.0.0.1:{free_port()}"
    first = ServerProcess(
        database_url=f"sqlite:///{tmp_path / 'first.db'}",
        log_path=tmp_path / "first.log",
        env={"ATELIER_LISTEN": listen},
    ).start()
    try:
        second = _run_server(f"sqlite:///{tmp_path / 'second.db'}", tmp_path, ATELIER_LISTEN=listen)
        assert second.returncode != 0
        assert "listening" not in second.stderr
        line = _one_clear_line(second)
        assert listen in line and "in use" in line, line
        with first.channel() as channel:
            models = Api(channel).stub.ListModels(pb.ListModelsRequest(), timeout=10)
            assert models.models
    finally:
        first.kill()


def test_a_busy_web_port_fails_at_once_with_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        result = _run_server(f"sqlite:///{tmp_path / 'web.db'}", tmp_path, ATELIER_WEB_LISTEN=listen)
    assert result.returncode != 0
    line = _one_clear_line(result)
    assert line.startswith("atelier-server: cannot serve the web port on " + listen) and "in use" in line, (
        line
    )
    assert not (tmp_path / "web.db").exists(), "it said so before it touched the database"


@pytest.mark.postgres
def test_a_missing_postgresql_database_is_one_line_with_the_createdb_hint(tmp_path: Path) -> None:
    check_backend("postgres")
    name = f"atelier_missing_{uuid.uuid4().hex[:8]}"
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    result = _run_server(url, tmp_path)
    assert result.returncode == 2
    line = _one_clear_line(result)
    assert "createdb" in line and name in line, line


@pytest.mark.parametrize(
    "url", ["mysql://root@127.0.0.1/atelier", "postgres://u@h/db", "oracle+cx://x", "not a url"]
)
def test_an_unsupported_database_url_is_one_line(tmp_path: Path, url: str) -> None:
    result = _run_server(url, tmp_path)
    assert result.returncode == 2
    line = _one_clear_line(result)
    assert "ATELIER_DATABASE_URL" in line and "sqlite" in line and "postgresql" in line, line
