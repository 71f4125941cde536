"""Running storage work in a transaction on a worker thread, so the event loop never blocks."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio

import storage

_T = TypeVar("_T")


async def read(db: storage.Database, work: Callable[[storage.Transaction], _T]) -> _T:
    """`work(tx)` in a read transaction."""

    def run() -> _T:
        with db.read() as tx:
            return work(tx)

    return await anyio.to_thread.run_sync(run)


async def write(db: storage.Database, work: Callable[[storage.Transaction], _T]) -> _T:
    """`work(tx)` in a write transaction, committed when it returns."""

    def run() -> _T:
        with db.write() as tx:
            return work(tx)

    # Shielded: once a write has started, its outcome must be known, even by a cancelled task.
    with anyio.CancelScope(shield=True):
        result = await anyio.to_thread.run_sync(run)
    return result
