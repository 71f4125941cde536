"""What other server processes on the same database tell this one (PostgreSQL LISTEN/NOTIFY).

A replica that records a version's events, queues a job or changes a model's cooldown notifies
the others once its transaction commits: this process then wakes its Progress subscribers of
that version, or its scheduler. (Polling finds the same changes later, so a lost notification
costs only time.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import storage
from server.domain.events import EventHub
from server.domain.jobs import JobRunner


def follow_other_replicas(db: storage.Database, hub: EventHub, runner: JobRunner) -> Callable[[], None]:
    """Starts listening; returns the function that stops it. Call from the event loop's thread."""
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

    channels = [storage.EVENTS_CHANNEL, storage.JOBS_CHANNEL, storage.MODELS_CHANNEL]
    return db.listen(channels, on_notification)
