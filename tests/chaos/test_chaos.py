"""kill -9 chaos on SQLite and PostgreSQL (see _trials for what each trial does and checks).

`make test` runs a few trials per database; `make chaos` runs ATELIER_CHAOS_TRIALS (100) each
and prints the figures.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from support.databases import fresh_database
from tests._support import ServerProcess
from tests.chaos._trials import Chaos
from tests.conftest import BACKENDS, check_backend
from tests.integration.conftest import SERVER_ENV

TRIALS = int(os.environ.get("ATELIER_CHAOS_TRIALS", "2"))
# A fixed seed replays a run (the figures print the one used).
SEED = int(os.environ.get("ATELIER_CHAOS_SEED", str(random.randrange(1 << 32))))
CHAOS_ENV = {
    **SERVER_ENV,
    # Two crashes in one trial may stop a job twice: it must still be retried, not failed.
    "ATELIER_JOB_MAX_ATTEMPTS": "5",
}


@pytest.mark.parametrize("backend", BACKENDS)
def test_nothing_is_lost_stuck_or_changed_when_the_server_is_killed(backend: str, tmp_path: Path) -> None:
    check_backend(backend)
    with (
        fresh_database(backend, tmp_path) as url,
        ServerProcess(database_url=url, log_path=tmp_path / "server.log", env=CHAOS_ENV).start() as server,
    ):
        figures = Chaos(server, seed=SEED).run(TRIALS)
    print(f"\n{figures.line(backend)} (seed {SEED})")
    assert figures.kills >= TRIALS and figures.versions_checked > 0
    assert not figures.violations, "\n".join(figures.violations[:50])
