"""The garbage collector: retention, then purges, then blobs nothing refers to.

One pass, run by `atelier-server gc` or every `gc_interval_seconds` by `serve`:

1. Retention (when `retention_seconds` is set): generations not updated for that long are
   deleted, as DeleteGeneration would (their jobs stop; they can be undeleted until they expire).
2. Purge: soft-deleted generations whose expiry passed, and any named for an immediate purge,
   are removed for good, one generation per transaction.
3. Blobs: those nothing refers to (no version's tree, attachment or turn), stored before the
   grace period, are deleted, in small batches, never one a writer is about to refer to (see
   storage._blobs for how the collector and writers meet).
4. Draft reservations: a DraftPrompt with a request id reserves it before asking the model, and
   frees it if the call fails; one whose server stopped mid-call leaves it behind. Those older
   than the longest a drafting call can take are deleted (nothing reads them).

Every step is safe to run in several processes at once: two passes never both act on one row.
"""

from __future__ import annotations

import functools
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import anyio
from anyio.abc import TaskStatus

import storage
from server.config import Settings
from server.domain import _transactions as transactions
from server.domain import deletion
from server.domain.generations import drafting_seconds, log_event

_log = logging.getLogger("atelier.gc")
# Generations handled per read, and blobs looked at per window.
_GENERATION_BATCH = 100
_BLOB_WINDOW = 1000


@dataclass(frozen=True, slots=True)
class GcReport:
    """What one pass did."""

    # Generations retention deleted, and generations purged.
    deleted: tuple[str, ...] = ()
    purged: tuple[str, ...] = ()
    blobs_deleted: int = 0
    reservations_deleted: int = 0

    @property
    def gone(self) -> tuple[str, ...]:
        """Every generation that disappeared in the pass."""
        return (*self.deleted, *self.purged)


async def collect_garbage(
    db: storage.Database,
    settings: Settings,
    *,
    purge_now: Sequence[str] = (),
    grace_seconds: float | None = None,
    on_gone: Callable[[Sequence[str], Sequence[int]], None] = lambda generations, stopped: None,
) -> GcReport:
    """One pass. `purge_now` names generations (by id, of any owner, deleted or not) to purge at
    once; `grace_seconds` overrides `settings.gc_grace_seconds`. `on_gone` hears of each
    generation deleted or purged (and the versions whose jobs stopped) as soon as that commits,
    not at the end of the pass: until this process forgets a generation, it could still serve its
    versions from a cache while ListGenerations already leaves it out."""
    deleted = await _retire(db, settings, on_gone) if settings.retention_seconds > 0 else []
    purged = [generation_id for generation_id in purge_now if await _purge(db, generation_id, on_gone)]
    purged.extend(await _purge_expired(db, on_gone))
    grace = settings.gc_grace_seconds if grace_seconds is None else grace_seconds
    blobs = await _collect_blobs(db, created_before=storage.utcnow() - timedelta(seconds=grace))
    abandoned_before = storage.utcnow() - timedelta(seconds=drafting_seconds(settings))
    reservations = await transactions.write(
        db, functools.partial(storage.delete_abandoned_reservations, created_before=abandoned_before)
    )
    report = GcReport(tuple(deleted), tuple(purged), blobs, reservations)
    if report.gone or blobs or reservations:
        log_event(
            "garbage_collected",
            deleted=len(report.deleted),
            purged=len(report.purged),
            blobs_deleted=blobs,
            reservations_deleted=reservations,
        )
    return report


async def collect_periodically(
    db: storage.Database,
    settings: Settings,
    *,
    on_gone: Callable[[Sequence[str], Sequence[int]], None],
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """A pass every `settings.gc_interval_seconds`, for ever; `on_gone` hears of each generation
    a pass deletes or purges (see `collect_garbage`). A failed pass is logged, and the next one
    tries again.

    The first pass comes at a random point of the first interval: replicas started together do
    not all collect at once, and a server restarted more often than the interval still collects.
    """
    task_status.started()
    delay = random.uniform(0, settings.gc_interval_seconds)
    while True:
        await anyio.sleep(delay)
        delay = settings.gc_interval_seconds
        try:
            await collect_garbage(db, settings, on_gone=on_gone)
        except Exception:
            _log.exception("garbage collection failed; the next pass will try again")


async def _retire(
    db: storage.Database, settings: Settings, on_gone: Callable[[Sequence[str], Sequence[int]], None]
) -> list[str]:
    now = storage.utcnow()
    updated_before = now - timedelta(seconds=settings.retention_seconds)
    kept_for = timedelta(seconds=settings.deleted_retention_seconds)
    deleted: list[str] = []
    while True:
        due = await transactions.read(
            db,
            functools.partial(
                storage.generations_updated_before, before=updated_before, limit=_GENERATION_BATCH
            ),
        )
        for generation_id in due:
            done = await transactions.write(
                db,
                functools.partial(
                    deletion.delete_generation, generation_id=generation_id, now=now, kept_for=kept_for
                ),
            )
            if done is not None:
                on_gone([generation_id], done.stopped_version_ids)
                deleted.append(generation_id)
        if len(due) < _GENERATION_BATCH:
            return deleted


async def _purge_expired(
    db: storage.Database, on_gone: Callable[[Sequence[str], Sequence[int]], None]
) -> list[str]:
    now = storage.utcnow()
    purged: list[str] = []
    while True:
        due = await transactions.read(
            db, functools.partial(storage.expired_generations, now=now, limit=_GENERATION_BATCH)
        )
        purged.extend([generation_id for generation_id in due if await _purge(db, generation_id, on_gone)])
        if len(due) < _GENERATION_BATCH:
            return purged


async def _purge(
    db: storage.Database, generation_id: str, on_gone: Callable[[Sequence[str], Sequence[int]], None]
) -> bool:
    purged = await transactions.write(
        db, functools.partial(storage.purge_generation, generation_id=generation_id)
    )
    if purged:
        on_gone([generation_id], ())
    return purged


async def _collect_blobs(db: storage.Database, *, created_before: datetime) -> int:
    deleted = 0
    after = ""
    while True:
        scan = await transactions.read(
            db, functools.partial(storage.scan_blobs, after=after, limit=_BLOB_WINDOW)
        )
        if scan.unused:
            deleted += await transactions.write(
                db,
                functools.partial(
                    storage.delete_unused_blobs, sha256s=scan.unused, created_before=created_before
                ),
            )
        if scan.last is None:
            return deleted
        after = scan.last
