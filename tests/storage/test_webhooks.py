"""Webhook deliveries in storage, on SQLite and PostgreSQL: written with their events, claimed with
a lease by one deliverer at a time, in order per version, settled only by their claim, purged."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
import sqlalchemy as sa

import storage

_STARTED, _COMPLETED = storage.WebhookEventType.STARTED, storage.WebhookEventType.COMPLETED


@pytest.fixture
def db(database_url: str) -> Iterator[storage.Database]:
    database = storage.Database(database_url)
    database.migrate()
    yield database
    database.dispose()


def _version(db: storage.Database, events: list[str] | None, owner: str = "alice") -> storage.Version:
    """A QUEUED version 1, subscribed to `events` (None: no webhook)."""
    with db.write() as tx:
        _, version = storage.create_generation(
            tx,
            owner=owner,
            prompt="p",
            model="offline",
            provider="offline",
            request_id=None,
            request_fingerprint=None,
        )
        assert version.id is not None
        if events is not None:
            storage.subscribe_webhook(
                tx, version_id=version.id, url="http://127.0.0.1:9/hooks", events=events
            )
    return version


def _event(db: storage.Database, version: storage.Version, state: storage.VersionState) -> None:
    with db.write() as tx:
        storage.append_event(tx, version=version, type=storage.EventType.STATE, state=state)


def _rows(db: storage.Database) -> list[tuple[str, str]]:
    with db.read() as tx:
        return [
            (row.event_type, row.state)
            for row in tx.execute(sa.text("SELECT event_type, state FROM webhook_delivery ORDER BY id"))
        ]


def _claim(
    db: storage.Database, *, at: timedelta = timedelta(0), limit: int = 10
) -> list[storage.WebhookDelivery]:
    now = storage.utcnow() + at
    with db.write() as tx:
        return storage.claim_webhook_deliveries(
            tx, now=now, lease_until=now + timedelta(seconds=30), limit=limit
        )


def test_an_event_writes_its_delivery_in_its_own_transaction_and_only_if_asked(db: storage.Database) -> None:
    version = _version(db, [_STARTED, _COMPLETED])
    assert _rows(db) == []  # QUEUED is no webhook event
    with pytest.raises(RuntimeError), db.write() as tx:
        storage.append_event(
            tx, version=version, type=storage.EventType.STATE, state=storage.VersionState.RUNNING
        )
        raise RuntimeError("the transaction is rolled back")
    assert _rows(db) == []  # no event, no delivery
    _event(db, version, storage.VersionState.RUNNING)
    with db.write() as tx:
        storage.append_event(tx, version=version, type=storage.EventType.OUTPUT, paths=["a.txt"])  # not asked
        storage.append_event(tx, version=version, type=storage.EventType.MESSAGE, message="hello")
    _event(db, version, storage.VersionState.COMPLETED)
    assert _rows(db) == [("STARTED", "PENDING"), ("COMPLETED", "PENDING")]
    # A version without a subscription gets none.
    other = _version(db, None, owner="bob")
    _event(db, other, storage.VersionState.RUNNING)
    assert len(_rows(db)) == 2


def test_a_claim_is_exclusive_until_its_lease_lapses_and_only_it_settles_the_delivery(
    db: storage.Database,
) -> None:
    version = _version(db, [_STARTED])
    _event(db, version, storage.VersionState.RUNNING)
    [first] = _claim(db)
    assert first.claim_token and first.schedule_step == 0
    assert _claim(db) == []  # held
    [again] = _claim(db, at=timedelta(seconds=31))  # the lease lapsed: a crashed deliverer's claim
    assert again.id == first.id and again.claim_token != first.claim_token

    def settle(token: str, state: storage.WebhookDeliveryState) -> bool:
        with db.write() as tx:
            return storage.record_webhook_attempt(
                tx,
                delivery_id=first.id or 0,
                claim_token=token,
                body='{"type":"version.started"}',
                attempt_time=storage.utcnow(),
                duration_seconds=0.01,
                status_code=204 if state == storage.WebhookDeliveryState.DELIVERED else None,
                error=None,
                state=state,
                next_attempt_time=None,
            )

    assert not settle(first.claim_token or "", storage.WebhookDeliveryState.FAILED)  # lost its claim
    assert _rows(db) == [("STARTED", "PENDING")]
    assert settle(again.claim_token or "", storage.WebhookDeliveryState.DELIVERED)
    assert _rows(db) == [("STARTED", "DELIVERED")]
    with db.read() as tx:
        [view] = storage.list_webhook_deliveries(
            tx, generation_id=version.generation_id, version_id=None, after_id=0, limit=10
        )
    assert len(view.attempts) == 2  # both attempts happened, and are listed
    assert view.delivery.body == '{"type":"version.started"}' and view.delivery.deliver_time is not None

    # A replay makes it due now, at the start of its schedule, with the same id.
    with db.write() as tx:
        replayed = storage.replay_webhook_delivery(
            tx, version_id=version.id or 0, webhook_id=first.webhook_id
        )
        assert storage.replay_webhook_delivery(tx, version_id=version.id or 0, webhook_id="msg_none") is None
    assert replayed is not None and replayed.state == "PENDING" and replayed.schedule_step == 0
    [claimed] = _claim(db)
    assert claimed.webhook_id == first.webhook_id


def test_a_version_s_deliveries_are_claimed_one_at_a_time_in_order(db: storage.Database) -> None:
    one, two = _version(db, [_STARTED, _COMPLETED]), _version(db, [_STARTED, _COMPLETED])
    for version in (one, two):
        _event(db, version, storage.VersionState.RUNNING)
        _event(db, version, storage.VersionState.COMPLETED)
    claimed = _claim(db)
    assert sorted((d.version_id, d.event_type) for d in claimed) == sorted(
        [(one.id, "STARTED"), (two.id, "STARTED")]
    )


def test_concurrent_deliverers_never_claim_the_same_delivery(db: storage.Database) -> None:
    for _ in range(12):
        _event(db, _version(db, [_STARTED]), storage.VersionState.RUNNING)
    barrier = threading.Barrier(3)
    found: list[list[int]] = []

    def deliverer() -> None:
        barrier.wait()
        found.append([d.id or 0 for d in _claim(db, limit=5)])

    threads = [threading.Thread(target=deliverer) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ids = [i for batch in found for i in batch]
    assert len(ids) == len(set(ids)) == 12


def test_a_purge_removes_the_generation_s_webhook_rows(db: storage.Database) -> None:
    version = _version(db, [_STARTED])
    _event(db, version, storage.VersionState.RUNNING)
    [claimed] = _claim(db)
    with db.write() as tx:
        storage.record_webhook_attempt(
            tx,
            delivery_id=claimed.id or 0,
            claim_token=claimed.claim_token or "",
            body="{}",
            attempt_time=storage.utcnow(),
            duration_seconds=0.0,
            status_code=500,
            error="HTTP 500",
            state=storage.WebhookDeliveryState.PENDING,
            next_attempt_time=storage.utcnow(),
        )
        assert storage.purge_generation(tx, generation_id=version.generation_id)
    with db.read() as tx:
        counts = [
            tx.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in ("webhook_subscription", "webhook_delivery", "webhook_attempt")
        ]
    assert counts == [0, 0, 0]
