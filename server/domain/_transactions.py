"""Running storage work in a transaction on a worker thread, so the event loop never blocks."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio

import storage
from server.domain.deadlines import NO_DEADLINE, Deadline

_T = TypeVar("_T")


async def read(db: storage.Database, work: Callable[[storage.Transaction], _T]) -> _T:
    """`work(tx)` in a read transaction."""

    def run() -> _T:
        with db.read() as tx:
            return work(tx)

    return await anyio.to_thread.run_sync(run)


async def write(
    db: storage.Database,
    work: Callable[[storage.Transaction], _T],
    *,
    deadline: Deadline = NO_DEADLINE,
    threads: anyio.CapacityLimiter | None = None,
) -> _T:
    """`work(tx)` in a write transaction, committed when it returns.

    Nothing is written for a caller who has gone (`deadline`): the transaction does not start,
    and it is rolled back instead of committed if the caller went while it waited or ran.
    `threads` runs it on threads of the caller's own instead of the pool every request shares.
    """

    def run() -> _T:
        with db.write() as tx:
            # Checked once the write lock is ours (waiting for it can outlast the caller), and
            # again last, so that a write that blocked on another's locks is not committed late.
            deadline.check()
            result = work(tx)
            deadline.check()
            return result

    deadline.check()

    # Shielded: once a write has started, its outcome must be known, even by a cancelled task.
    with anyio.CancelScope(shield=True):
        result = await anyio.to_thread.run_sync(run, limiter=threads)
    return result
