"""Processes that open a new SQLite database at once (replicas, or `serve` and `migrate`,
starting together) all get in: the switch to WAL mode that each connection makes does not refuse
one of them with "database is locked"."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import sqlalchemy as sa

import storage


def _open(path: str) -> str:
    db = storage.Database(f"sqlite:///{path}")
    try:
        with db.read() as tx:
            tx.execute(sa.text("SELECT 1"))
        return "ok"
    except Exception as exc:
        return repr(exc)
    finally:
        db.dispose()


def test_processes_opening_a_new_sqlite_database_at_once_all_get_in(tmp_path: Path) -> None:
    # Before the fix, 4 processes opening a new file failed about one time in eleven.
    with multiprocessing.get_context("fork").Pool(4) as pool:
        for attempt in range(40):
            path = str(tmp_path / f"{attempt}.db")
            assert pool.map(_open, [path] * 4) == ["ok"] * 4
            db = storage.Database(f"sqlite:///{path}")
            with db.engine.connect() as connection:
                assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            db.dispose()
