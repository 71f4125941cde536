"""Every RPC of AtelierService, fuzzed from the proto descriptors, on SQLite and PostgreSQL: never
UNKNOWN or INTERNAL, and the server stays up (see _fuzzer and _strategies).

`make test` runs a few hundred cases; `make fuzz` runs ATELIER_FUZZ_CASES (10,000) per database
and prints the figures.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from support.databases import fresh_database
from tests._support import ServerProcess
from tests.conftest import BACKENDS, check_backend
from tests.fuzz._fuzzer import Fuzzer
from tests.integration.conftest import SERVER_ENV

CASES = int(os.environ.get("ATELIER_FUZZ_CASES", "150"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_request_gets_unknown_or_internal_and_the_server_stays_up(backend: str, tmp_path: Path) -> None:
    check_backend(backend)
    with (
        fresh_database(backend, tmp_path) as url,
        ServerProcess(database_url=url, log_path=tmp_path / "server.log", env=SERVER_ENV).start() as server,
    ):
        figures = Fuzzer(server).run(CASES)
    print(f"\n{figures.line(backend)}")
    for timeout in figures.timeouts:
        print(f"  ran out of time: {timeout}")
    assert figures.cases >= CASES
