"""Fixtures: every storage and server test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.databases import fresh_database, postgres_unavailable_reason
from support.processes import answer_ctrl_c
from tests._tls_support import Pki


def pytest_configure(config: pytest.Config) -> None:
    # The servers, tools and CLIs the tests start then answer Ctrl-C as from a terminal, even
    # when `make test` runs as a background job (see support.processes).
    answer_ctrl_c()


_postgres_reason: list[str | None] = []


def _postgres_skip_reason() -> str | None:
    if not _postgres_reason:
        _postgres_reason.append(postgres_unavailable_reason())
    return _postgres_reason[0]


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def check_backend(name: str) -> str:
    """Skips (stating why) when PostgreSQL is missing, unless CI requires it."""
    if name == "postgres":
        reason = _postgres_skip_reason()
        if reason is not None:
            if os.environ.get("ATELIER_REQUIRE_POSTGRES") == "1":
                pytest.fail(f"ATELIER_REQUIRE_POSTGRES=1 but {reason}")
            pytest.skip(reason)
    return name


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return check_backend(request.param)


@pytest.fixture
def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    with fresh_database(backend, tmp_path) as url:
        yield url


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA made for the test, with a server certificate for 127.0.0.1 and a client certificate."""
    return Pki.create(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Another CA, which the servers know nothing of."""
    return Pki.create(tmp_path_factory.mktemp("stranger"))
