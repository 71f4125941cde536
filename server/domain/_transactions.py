"""Running storage work in a transaction on a worker thread, so the event loop never blocks.

Transactions run on threads of their database's own, as many as its pool has connections, not
on anyio's shared pool of 40: on SQLite, threads beyond that only wait for a connection or the
writer and take the GIL from the one that holds it. With 40, a thousand Generate calls at once
kept the scheduler's claims waiting, and the many-jobs benchmark took 1.6-1.7x the model's
latency; with 8, 1.36x (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.lowlevel

import storage
from server.domain.deadlines import NO_DEADLINE, Deadline

_T = TypeVar("_T")

# Each database's threads, for the event loop they were made in (a limiter belongs to one loop).
_threads: weakref.WeakKeyDictionary[storage.Database, tuple[object, anyio.CapacityLimiter]] = (
    weakref.WeakKeyDictionary()
)


def _threads_of(db: storage.Database) -> anyio.CapacityLimiter:
    loop = anyio.lowlevel.current_token()
    found = _threads.get(db)
    if found is None or found[0] != loop:
        found = _threads[db] = (loop, anyio.CapacityLimiter(db.max_connections))
    return found[1]


async def read(db: storage.Database, work: Callable[[storage.Transaction], _T]) -> _T:
    """`work(tx)` in a read transaction."""

    def run() -> _T:
        with db.read() as tx:
            return work(tx)

    return await anyio.to_thread.run_sync(run, limiter=_threads_of(db))


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
    `threads` runs it on threads of the caller's own instead of those every request shares.
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
        result = await anyio.to_thread.run_sync(run, limiter=threads or _threads_of(db))
    return result
