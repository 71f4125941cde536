"""The event hub keeps only runs of consecutive committed events, and says so when it cannot answer."""

from __future__ import annotations

from datetime import UTC, datetime

import anyio
import pytest

from server.domain import EventType, ProgressEvent, VersionState
from server.domain import events as events_module
from server.domain.events import EventHub


def _event(version_id: int, seq: int) -> ProgressEvent:
    return ProgressEvent(
        seq=seq,
        type=EventType.MESSAGE,
        state=VersionState.RUNNING,
        stage=0,
        total_stages=0,
        message=f"event {seq} of version id {version_id}",
        paths=(),
        error=None,
        create_time=datetime.now(UTC),
    )


def _seqs(found: list[ProgressEvent]) -> list[int]:
    return [event.seq for event in found]


def test_a_subscriber_gets_what_follows_its_cursor_and_nothing_it_has() -> None:
    hub = EventHub()
    hub.publish(7, [_event(7, 2), _event(7, 3)])
    hub.publish(7, [_event(7, 4)])
    assert _seqs(hub.events_after(7, 1)) == [2, 3, 4]
    assert _seqs(hub.events_after(7, 3)) == [4]
    # Caught up, behind the kept run, or an unknown version: memory cannot say, the database must.
    assert hub.events_after(7, 4) == []
    assert hub.events_after(7, 0) == []
    assert hub.events_after(8, 0) == []


def test_a_gap_starts_a_new_run_so_memory_never_skips_an_event() -> None:
    hub = EventHub()
    hub.publish(7, [_event(7, 1), _event(7, 2)])
    hub.publish(7, [_event(7, 5)])  # 3 and 4 were written elsewhere
    assert hub.events_after(7, 2) == []  # the next one (3) is not in memory
    assert _seqs(hub.events_after(7, 4)) == [5]


def test_memory_is_bounded_in_versions_and_in_events_per_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events_module, "_KEPT_VERSIONS", 3)
    monkeypatch.setattr(events_module, "_KEPT_EVENTS_PER_VERSION", 4)
    hub = EventHub()
    hub.publish(1, [_event(1, seq) for seq in range(1, 11)])
    assert _seqs(hub.events_after(1, 6)) == [7, 8, 9, 10]
    assert hub.events_after(1, 5) == []  # 6 was dropped
    for version_id in (2, 3, 4):
        hub.publish(version_id, [_event(version_id, 1)])
    assert hub.events_after(1, 6) == []  # the least recently published version was dropped
    assert _seqs(hub.events_after(4, 0)) == [1]


@pytest.mark.anyio
async def test_publishing_wakes_a_ticket_holder() -> None:
    hub = EventHub()
    ticket = hub.ticket(7)
    assert hub.ticket(7) is ticket  # one ticket per version until it is set
    hub.publish(7, [_event(7, 1)])
    with anyio.fail_after(1):
        await ticket.wait()
    assert hub.ticket(7) is not ticket
