"""In-process wake-ups for Progress subscribers, and the events this process just committed.

The database is the source of truth for events. This hub tells waiting subscribers of a
version that there may be something new, and keeps the latest events that writers of this
process committed, so that a subscriber who is up to date takes the next ones from memory
instead of reading them back from the database. A subscriber takes a ticket *before*
looking, so a notification between its look and its wait is never missed. Events written
by other processes are found by reading the database (after a PostgreSQL notification, or
by polling).
"""

from __future__ import annotations

from collections.abc import Sequence

import anyio

from server.domain._lru import LRU
from server.domain.resources import ProgressEvent

# Bounds on the events kept: enough for every running job's recent progress, small enough
# that memory never grows with the number of versions.
_KEPT_VERSIONS = 256
_KEPT_EVENTS_PER_VERSION = 64


class EventHub:
    def __init__(self) -> None:
        self._tickets: dict[int, anyio.Event] = {}
        # Per version, a run of committed events with consecutive seqs, the newest last.
        self._runs: LRU[int, list[ProgressEvent]] = LRU(max_entries=_KEPT_VERSIONS)

    def ticket(self, version_id: int) -> anyio.Event:
        """An event that is set at the next notification for the version."""
        ticket = self._tickets.get(version_id)
        if ticket is None or ticket.is_set():
            ticket = self._tickets[version_id] = anyio.Event()
        return ticket

    def notify(self, version_id: int) -> None:
        ticket = self._tickets.pop(version_id, None)
        if ticket is not None:
            ticket.set()

    def publish(self, version_id: int, events: Sequence[ProgressEvent]) -> None:
        """Keeps events that were just committed (consecutive seqs, in order), then notifies.

        Only committed events may be published: a subscriber takes them as stored.
        """
        if events:
            run = self._runs.get(version_id)
            if run is not None and run[-1].seq + 1 == events[0].seq:
                run.extend(events)
                del run[:-_KEPT_EVENTS_PER_VERSION]
            else:
                # Not a continuation (say another process wrote the events between): start again.
                self._runs.put(version_id, list(events[-_KEPT_EVENTS_PER_VERSION:]))
        self.notify(version_id)

    def events_after(self, version_id: int, after_seq: int) -> list[ProgressEvent]:
        """The kept events right after `after_seq`; empty when memory does not have the next one."""
        run = self._runs.get(version_id)
        if not run or not run[0].seq <= after_seq + 1 <= run[-1].seq:
            return []
        return run[after_seq + 1 - run[0].seq :]
