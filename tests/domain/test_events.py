"""The event hub keeps only runs of consecutive committed events, and says so when it cannot answer."""

from __future__ import annotations

import contextlib
from dataclasses import replace
from datetime import UTC, datetime

import anyio
import anyio.lowlevel
import pytest
from anyio.abc import TaskGroup

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


class _Store:
    """Stands in for the database: a version's stored events, and how often streams read them."""

    def __init__(self, version_id: int) -> None:
        self.version_id = version_id
        self.events: list[ProgressEvent] = []
        self.reads = 0

    def add(self, count: int, *, ending: VersionState | None = None) -> list[ProgressEvent]:
        start = len(self.events) + 1
        added = [_event(self.version_id, seq) for seq in range(start, start + count)]
        if ending is not None:
            added[-1] = replace(added[-1], state=ending)
        self.events.extend(added)
        return added

    async def read(self, after_seq: int) -> list[ProgressEvent]:
        self.reads += 1
        await anyio.lowlevel.checkpoint()
        return [event for event in self.events if event.seq > after_seq][:_PAGE]


_PAGE = 500


class _Streams:
    """Streams that follow one version of the hub, what each received, and a wake-up when one
    receives more."""

    def __init__(self, hub: EventHub, store: _Store) -> None:
        self._hub = hub
        self._store = store
        self.received: list[list[int]] = []
        self._received_more = anyio.Event()

    def start(self, group: TaskGroup, count: int = 1) -> None:
        for _ in range(count):
            seqs: list[int] = []
            self.received.append(seqs)
            group.start_soon(self._follow, seqs)

    async def _follow(self, seqs: list[int]) -> None:
        stored_seq = len(self._store.events)
        async for event in self._hub.follow(
            self._store.version_id,
            after_seq=0,
            stored_seq=stored_seq,
            read=self._store.read,
            page_size=_PAGE,
        ):
            seqs.append(event.seq)
            self._received_more.set()
            self._received_more = anyio.Event()

    def all_have(self, *seqs: int) -> bool:
        return all(received == list(seqs) for received in self.received)

    async def until_all_have(self, *seqs: int) -> None:
        with anyio.fail_after(5):
            while True:
                received_more = self._received_more
                if self.all_have(*seqs):
                    return
                await received_more.wait()


@pytest.mark.anyio
async def test_idle_streams_wait_without_reading_until_someone_has_news() -> None:
    hub = EventHub()
    store = _Store(7)
    store.add(2)
    streams = _Streams(hub, store)
    count = 100
    async with anyio.create_task_group() as group:
        streams.start(group, count)
        await streams.until_all_have(1, 2)
        assert store.reads == count  # one each, to catch up
        assert hub.followed() == [7]

        # Idle: however long, nobody reads. Another process's writes that nobody announces
        # stay unseen...
        store.add(2)
        await anyio.sleep(0.2)
        assert store.reads == count and streams.all_have(1, 2)
        # ...until a poll finds them: then each stream reads once.
        hub.advance(7, 4)
        await streams.until_all_have(1, 2, 3, 4)
        assert store.reads == 2 * count
        hub.advance(7, 4)  # no news: nobody wakes
        await anyio.sleep(0.05)
        assert store.reads == 2 * count

        # What this process's writers publish comes from memory.
        hub.publish(7, store.add(1))
        await streams.until_all_have(1, 2, 3, 4, 5)
        assert store.reads == 2 * count

        # A change without a seq (a cancel, say): each stream looks in the database, and ends
        # at the terminal event.
        store.add(1, ending=VersionState.CANCELLED)
        hub.notify(7)
    assert streams.all_have(1, 2, 3, 4, 5, 6)
    assert store.reads == 3 * count
    assert hub.followed() == []


@pytest.mark.anyio
async def test_what_a_new_stream_finds_stored_wakes_the_streams_that_wait_for_it() -> None:
    hub = EventHub()
    store = _Store(7)
    store.add(1)
    waiting = _Streams(hub, store)
    async with anyio.create_task_group() as group:
        waiting.start(group)
        await waiting.until_all_have(1)
        # Written elsewhere and not announced; a stream that starts now finds it stored.
        store.add(1)
        with anyio.fail_after(5):
            async with contextlib.aclosing(
                hub.follow(7, after_seq=1, stored_seq=2, read=store.read, page_size=_PAGE)
            ) as newcomer:
                assert (await anext(newcomer)).seq == 2
        # The hub learnt of it: the waiting stream does not wait for a poll.
        await waiting.until_all_have(1, 2)
        # The same when the new stream's own read finds more than its caller saw stored.
        store.add(1)
        with anyio.fail_after(5):
            async with contextlib.aclosing(
                hub.follow(7, after_seq=0, stored_seq=2, read=store.read, page_size=_PAGE)
            ) as newcomer:
                assert [(await anext(newcomer)).seq for _ in range(3)] == [1, 2, 3]
        await waiting.until_all_have(1, 2, 3)
        group.cancel_scope.cancel()
    assert hub.followed() == []


@pytest.mark.anyio
async def test_the_hub_forgets_a_version_when_its_last_stream_goes() -> None:
    hub = EventHub()
    store = _Store(7)
    store.add(1)
    streams = _Streams(hub, store)
    async with anyio.create_task_group() as group:
        streams.start(group, 2)
        await streams.until_all_have(1)
        assert hub.followed() == [7]
        group.cancel_scope.cancel()
    assert hub.followed() == []
    hub.advance(7, 5)  # news of a version nobody follows is not kept
    assert hub.followed() == []


@pytest.mark.anyio
async def test_following_ten_thousand_ended_versions_leaves_a_bounded_hub() -> None:
    hub = EventHub()

    async def read_nothing(after_seq: int) -> list[ProgressEvent]:
        return []

    async def follow_to_the_end(version_id: int, stored: list[ProgressEvent]) -> None:
        async def read(after_seq: int) -> list[ProgressEvent]:
            return [event for event in stored if event.seq > after_seq]

        async with contextlib.aclosing(
            hub.follow(version_id, after_seq=0, stored_seq=len(stored), read=read, page_size=_PAGE)
        ) as events:
            async for _ in events:
                pass

    for version_id in range(1, 10_001):
        ended = [_event(version_id, 1), replace(_event(version_id, 2), state=VersionState.COMPLETED)]
        if version_id % 2:
            hub.publish(version_id, ended)  # this process's writer: the stream reads memory
        await follow_to_the_end(version_id, ended)
        if version_id % 3 == 0:
            hub.notify(version_id)  # a cancel or another replica's word, after the end
            hub.advance(version_id, 2)
    # A stream that goes away before its version ends.
    async with contextlib.aclosing(
        hub.follow(10_001, after_seq=0, stored_seq=0, read=read_nothing, page_size=_PAGE)
    ) as waiting:
        with anyio.move_on_after(0.05):
            await anext(waiting)
    assert hub.followed() == []
    assert len(hub._tickets) == 0
    assert len(hub._runs) <= events_module._KEPT_VERSIONS
