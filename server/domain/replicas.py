"""What other server processes on the same database tell this one (PostgreSQL LISTEN/NOTIFY), and
the poll that finds what they did not tell.

A replica that records a version's events, queues a job or changes a model's cooldown notifies
the others once its transaction commits: this process then wakes its Progress streams of that
version, or its scheduler. A notification can be lost (a dropped connection) or never sent (SQLite
has none), so `poll_followed_versions` reads what is stored for every followed version, once per
interval: a lost notification costs only time.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable

import anyio
from anyio.abc import TaskStatus

import storage
from server.domain import _transactions as transactions
from server.domain.events import EventHub
from server.domain.jobs import JobRunner

_log = logging.getLogger("atelier.events")


def follow_other_replicas(
    db: storage.Database,
    hub: EventHub,
    runner: JobRunner,
    *,
    on_generation_gone: Callable[[str], None] = lambda generation_id: None,
) -> Callable[[], None]:
    """Starts listening; returns the function that stops it. Call from the event loop's thread.

    `on_generation_gone` hears of each generation another replica deleted or purged."""
    loop = asyncio.get_running_loop()

    def on_notification(channel: str, payload: str) -> None:
        subject, _, origin = payload.partition(" ")
        if origin == storage.PROCESS_TAG:
            return  # this process's own change: it woke its side already
        if channel == storage.EVENTS_CHANNEL and subject.isdigit():
            loop.call_soon_threadsafe(hub.notify, int(subject))
        elif channel in (storage.JOBS_CHANNEL, storage.MODELS_CHANNEL):
            # A job was queued, or a model's cooldown began or ended: look at the queue again.
            loop.call_soon_threadsafe(runner.wake)
        elif channel == storage.GENERATIONS_CHANNEL and subject:
            loop.call_soon_threadsafe(on_generation_gone, subject)

    channels = [
        storage.EVENTS_CHANNEL,
        storage.JOBS_CHANNEL,
        storage.MODELS_CHANNEL,
        storage.GENERATIONS_CHANNEL,
    ]
    return db.listen(channels, on_notification)


async def poll_followed_versions(
    db: storage.Database,
    hub: EventHub,
    *,
    interval: float,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Every `interval`, reads the latest stored seq of every version this process's Progress
    streams follow, in one transaction for all of them, and tells the hub: the streams of a
    version with events they were not told of wake. Nothing is read while nobody follows."""
    task_status.started()
    while True:
        await anyio.sleep(interval)
        followed = hub.followed()
        if not followed:
            continue
        try:
            stored = await transactions.read(
                db, functools.partial(storage.last_event_seqs, version_ids=followed)
            )
        except storage.StorageError:
            # An outage must not end the poll: the streams still wait, and the next round retries.
            _log.warning("could not read the followed versions' latest events; retrying", exc_info=True)
            continue
        for version_id, seq in stored.items():
            hub.advance(version_id, seq)
