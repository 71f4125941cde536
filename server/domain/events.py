"""In-process wake-ups for Progress streams, and the events this process just committed.

The database is the source of truth for events. This hub tells the streams that follow a
version when there is something new, and keeps the latest events that writers of this process
committed, so that a stream that is up to date takes the next ones from memory instead of
reading them back from the database.

A stream that has everything the hub knows of waits, and costs nothing until it is woken:
by a writer of this process (`publish`), by a change that carries no seq (`notify`: look in
the database), or by `advance` when someone finds a seq the hub did not know of (a stream's
own read, or `poll_followed_versions`, which reads the stored seq of every followed version
once per interval for all streams, and so catches another process's writes when their
notification was lost). A stream takes its ticket *before* looking, so a wake-up between its
look and its wait is never missed.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import anyio

from server.domain._lru import LRU
from server.domain.resources import ProgressEvent

# Bounds on the events kept: enough for every running job's recent progress, small enough
# that memory never grows with the number of versions.
_KEPT_VERSIONS = 256
_KEPT_EVENTS_PER_VERSION = 64

# Reads the stored events after a seq, in order, at most a page of them.
ReadEvents = Callable[[int], Awaitable[Sequence[ProgressEvent]]]


@dataclass(slots=True)
class _Followed:
    """What the hub keeps about a version while Progress streams of this process follow it."""

    streams: int = 0
    # The highest seq known to be stored: a stream whose cursor is here has all there is, as
    # far as this process knows. Raised by `publish`, by streams' reads and by the poll.
    known_seq: int = 0
    # Bumped by a notification without a seq: every stream must look in the database again.
    epoch: int = 0


class EventHub:
    def __init__(self) -> None:
        self._tickets: dict[int, anyio.Event] = {}
        # Per version, a run of committed events with consecutive seqs, the newest last.
        self._runs: LRU[int, list[ProgressEvent]] = LRU(max_entries=_KEPT_VERSIONS)
        # Only versions that some stream follows: an entry goes with its last stream.
        self._followed: dict[int, _Followed] = {}
        # Told of every batch `publish` gets (the webhook deliverer: a delivery may be due).
        self._listeners: list[Callable[[Sequence[ProgressEvent]], None]] = []

    def add_listener(self, listener: Callable[[Sequence[ProgressEvent]], None]) -> None:
        """Calls `listener(events)` with each batch of committed events this process publishes."""
        self._listeners.append(listener)

    def ticket(self, version_id: int) -> anyio.Event:
        """An event that is set at the next wake-up for the version."""
        ticket = self._tickets.get(version_id)
        if ticket is None or ticket.is_set():
            ticket = self._tickets[version_id] = anyio.Event()
        return ticket

    def notify(self, version_id: int) -> None:
        """Something about the version changed, without its seq: its streams look in the database."""
        followed = self._followed.get(version_id)
        if followed is not None:
            followed.epoch += 1
        self._wake(version_id)

    def publish(self, version_id: int, events: Sequence[ProgressEvent]) -> None:
        """Keeps events that were just committed (consecutive seqs, in order), then wakes their streams.

        Only committed events may be published: a stream takes them as stored.
        """
        if events:
            run = self._runs.get(version_id)
            if run is not None and run[-1].seq + 1 == events[0].seq:
                run.extend(events)
                del run[:-_KEPT_EVENTS_PER_VERSION]
            else:
                # Not a continuation (say another process wrote the events between): start again.
                self._runs.put(version_id, list(events[-_KEPT_EVENTS_PER_VERSION:]))
            self._raise_known(version_id, events[-1].seq)
            for listener in self._listeners:
                listener(events)
        self._wake(version_id)

    def advance(self, version_id: int, stored_seq: int) -> None:
        """The version has events up to `stored_seq` in the database: wakes its streams if that is news."""
        if self._raise_known(version_id, stored_seq):
            self._wake(version_id)

    def followed(self) -> list[int]:
        """The versions that Progress streams of this process follow."""
        return list(self._followed)

    def events_after(self, version_id: int, after_seq: int) -> list[ProgressEvent]:
        """The kept events right after `after_seq`; empty when memory does not have the next one."""
        run = self._runs.get(version_id)
        if not run or not run[0].seq <= after_seq + 1 <= run[-1].seq:
            return []
        return run[after_seq + 1 - run[0].seq :]

    async def follow(
        self, version_id: int, *, after_seq: int, stored_seq: int, read: ReadEvents, page_size: int
    ) -> AsyncGenerator[ProgressEvent, None]:
        """The version's events after `after_seq`, then live ones, until its terminal event.

        `stored_seq` is a seq the caller read as stored; `read` reads the database, and a page
        shorter than `page_size` means it reached the end. While the stream has everything the
        hub knows of, it only waits: it reads the database again only when woken with news.
        """
        with self._following(version_id) as followed:
            self.advance(version_id, stored_seq)
            cursor = after_seq
            ticket = self.ticket(version_id)
            # The epoch of the last read that reached the end of what was stored (at first, the
            # caller's read of `stored_seq`): a `notify` since then means that the database may
            # hold more than the hub knows of.
            read_epoch: int | None = followed.epoch
            while True:
                if ticket.is_set():
                    ticket = self.ticket(version_id)
                # What this process's writers just committed comes from memory, the rest from
                # the database.
                events: Sequence[ProgressEvent] = self.events_after(version_id, cursor)
                if not events:
                    if read_epoch == followed.epoch and cursor >= followed.known_seq:
                        await ticket.wait()
                        continue
                    epoch = followed.epoch
                    events = await read(cursor)
                    read_epoch = epoch if len(events) < page_size else None
                    if events:
                        # Tells the other streams too; this one wakes, finds nothing new, waits.
                        self.advance(version_id, events[-1].seq)
                for event in events:
                    yield event
                    cursor = event.seq
                # A version's terminal event is its last: nothing is recorded after it.
                if events and events[-1].state.is_terminal:
                    return

    @contextmanager
    def _following(self, version_id: int) -> Iterator[_Followed]:
        followed = self._followed.get(version_id)
        if followed is None:
            run = self._runs.get(version_id)
            followed = self._followed[version_id] = _Followed(known_seq=run[-1].seq if run else 0)
        followed.streams += 1
        try:
            yield followed
        finally:
            followed.streams -= 1
            if not followed.streams:
                del self._followed[version_id]
                # Nobody waits on the version's ticket any more: it goes too (set, so that a
                # holder who does not follow the version looks again rather than wait forever).
                self._wake(version_id)

    def _raise_known(self, version_id: int, seq: int) -> bool:
        followed = self._followed.get(version_id)
        if followed is None or seq <= followed.known_seq:
            return False
        followed.known_seq = seq
        return True

    def _wake(self, version_id: int) -> None:
        ticket = self._tickets.pop(version_id, None)
        if ticket is not None:
            ticket.set()
