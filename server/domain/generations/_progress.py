"""Following a version's job (Progress) and stopping it (CancelVersion).

Closing a Progress stream never affects the job: only CancelVersion stops it.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator

import storage
from server.domain import _transactions as transactions
from server.domain.deadlines import NO_DEADLINE, Deadline
from server.domain.errors import FailedPrecondition
from server.domain.generations._base import ServiceBase, version_name, version_row
from server.domain.generations._read import ReadVerbs
from server.domain.jobs import cancel_job
from server.domain.principals import Principal
from server.domain.resources import ProgressEvent, Version, VersionRef, event_of, version_of

# Progress reads stored events in pages of this many.
_EVENTS_PAGE = 500


class ProgressVerbs(ReadVerbs, ServiceBase):
    async def cancel(
        self, *, caller: Principal, ref: VersionRef, deadline: Deadline = NO_DEADLINE
    ) -> Version:
        def work(tx: storage.Transaction) -> storage.Version:
            version = version_row(tx, caller, ref)
            assert version.id is not None
            if storage.VersionState(version.state).is_terminal:
                raise FailedPrecondition(
                    f"version {version_name(ref)} already ended {version.state}",
                    reason="VERSION_ALREADY_ENDED",
                    metadata={"state": version.state},
                )
            cancel_job(tx, version)
            return storage.get_version_by_id(tx, version.id)

        row = await transactions.write(self._db, work, deadline=deadline)
        assert row.id is not None
        self._runner.cancel_local(row.id)
        self._hub.notify(row.id)
        return version_of(row)

    async def progress(
        self, *, caller: Principal, ref: VersionRef, after_seq: int
    ) -> AsyncIterator[ProgressEvent]:
        """The version's events after `after_seq`, then live ones, until its terminal event."""
        version_id, version = await self.version_with_id(caller, ref)
        if version.state.is_terminal and after_seq >= version.last_event_seq:
            return

        async def read(cursor: int) -> list[ProgressEvent]:
            return await transactions.read(self._db, functools.partial(_events_after, version_id, cursor))

        # Nobody has seen an event past the last one stored: a larger `after_seq` is followed
        # from that last event, so that the stream still ends with the version (its terminal
        # event is read, though not sent) and no query asks for a seq no column can hold.
        cursor = min(after_seq, version.last_event_seq)
        # Closed here, not when collected, so that the hub forgets this stream as soon as it ends.
        async with contextlib.aclosing(
            self._hub.follow(
                version_id,
                after_seq=cursor,
                stored_seq=version.last_event_seq,
                read=read,
                page_size=_EVENTS_PAGE,
            )
        ) as events:
            async for event in events:
                if event.seq > after_seq:
                    yield event


def _events_after(version_id: int, after_seq: int, tx: storage.Transaction) -> list[ProgressEvent]:
    rows = storage.list_events(tx, version_id=version_id, after_seq=after_seq, limit=_EVENTS_PAGE)
    return [event_of(row) for row in rows]
