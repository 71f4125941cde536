"""In-process wake-ups for Progress subscribers.

The database is the source of truth for events; this hub only tells waiting
subscribers of a version that there may be something new to read. A subscriber
takes a ticket *before* reading, so a notification between its read and its wait
is never missed. Events written by other processes are found by polling.
"""

from __future__ import annotations

import anyio


class EventHub:
    def __init__(self) -> None:
        self._tickets: dict[int, anyio.Event] = {}

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
