"""Running storage work in a transaction on a worker thread, so the event loop never blocks."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio
from sqlmodel import Session

import storage

_T = TypeVar("_T")


async def read(db: storage.Database, work: Callable[[Session], _T]) -> _T:
    """`work(session)` in a read transaction."""

    def run() -> _T:
        with db.read() as session:
            return work(session)

    return await anyio.to_thread.run_sync(run)


async def write(db: storage.Database, work: Callable[[Session], _T]) -> _T:
    """`work(session)` in a write transaction, committed when it returns."""

    def run() -> _T:
        with db.write() as session:
            return work(session)

    # Shielded: once a write has started, its outcome must be known, even by a cancelled task.
    with anyio.CancelScope(shield=True):
        result = await anyio.to_thread.run_sync(run)
    return result
