"""Where transactions run (server/domain/_transactions.py): on threads of their database's own, as
many as its pool holds connections, so that a burst of calls neither queues in anyio's shared
pool nor, on SQLite, opens and closes connections as it goes."""

from __future__ import annotations

import threading
from typing import Any

import anyio
import pytest
import sqlalchemy as sa

import storage
from server.domain import _transactions as transactions


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_a_burst_of_transactions_runs_on_as_many_threads_as_the_pool_has_connections(
    database_url: str,
) -> None:
    db = storage.Database(database_url)
    db.migrate()
    connects: list[object] = []
    sa.event.listen(db.engine, "connect", lambda *_: connects.append(None))
    running = 0
    most = 0
    threads: set[int] = set()
    lock = threading.Lock()
    both_ran = threading.Barrier(2, timeout=5)

    def work(tx: storage.Transaction) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            threads.add(threading.get_ident())
        try:
            if len(threads) <= 2:
                both_ran.wait()  # the first two overlap: transactions do run side by side
            tx.execute(sa.text("SELECT 1"))
            threading.Event().wait(0.002)
            return 1
        finally:
            with lock:
                running -= 1

    results: list[int] = []

    async def one() -> None:
        results.append(await transactions.read(db, work))

    async with anyio.create_task_group() as group:
        for _ in range(200):
            group.start_soon(one)
    db.engine.dispose()

    assert sum(results) == 200
    assert 2 <= most <= db.max_connections
    assert len(threads) <= db.max_connections
    if db.is_sqlite:
        # Every connection was opened once and kept, none closed and opened again (PostgreSQL's
        # pool keeps 10 of its 30 open between bursts: connections there are the server's).
        assert len(connects) <= db.max_connections


def test_a_sqlite_database_keeps_as_many_connections_as_it_runs_transactions(tmp_path: Any) -> None:
    db = storage.Database(f"sqlite:///{tmp_path / 'a.db'}")
    assert db.max_connections == 8
    assert db.engine.pool.size() == db.max_connections  # type: ignore[attr-defined]
