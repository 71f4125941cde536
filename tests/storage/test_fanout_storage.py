"""A fan-out's storage (its versions created together, their jobs running at once, their turns
numbered without collisions) and usage summed by day, principal and model: on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

import storage
from storage._tables import TURN, VERSION


@pytest.fixture
def db(database_url: str) -> Iterator[storage.Database]:
    database = storage.Database(database_url)
    database.migrate()
    yield database
    database.dispose()


def _batch(db: storage.Database, size: int, owner: str = "alice") -> list[storage.Version]:
    with db.write() as tx:
        generation, first = storage.create_generation(
            tx,
            owner=owner,
            prompt="a sheet",
            model="offline",
            provider="offline",
            request_id=None,
            request_fingerprint=None,
            version_prompt="a sheet\n\nv1",
            batch_number=-1,
            variant="v1",
        )
        versions = [first]
        for number in range(2, size + 1):
            versions.append(
                storage.create_version(
                    tx,
                    generation=generation,
                    kind=storage.VersionKind.GENERATE,
                    prompt=f"a sheet\n\nv{number}",
                    model="offline",
                    provider="offline",
                    parent_number=None,
                    base_turn_id=None,
                    turn=1,
                    request_id=None,
                    request_fingerprint=None,
                    batch_number=first.number,
                    variant=f"v{number}",
                )
            )
    return versions


def test_a_batch_runs_at_once_and_its_turns_never_collide(db: storage.Database) -> None:
    versions = _batch(db, 4)
    with db.read() as tx:
        listed = storage.list_batch(
            tx, owner="alice", generation_id=versions[0].generation_id, batch_number=1
        )
        assert (
            storage.list_batch(tx, owner="bob", generation_id=versions[0].generation_id, batch_number=1) == []
        )
        conversation = storage.get_conversation(tx, owner="alice", generation_id=versions[0].generation_id)
    assert [(v.number, v.variant, v.batch_number) for v in listed] == [(n, f"v{n}", 1) for n in (1, 2, 3, 4)]
    assert listed[0].prompt == "a sheet\n\nv1" and conversation is not None
    # One session, yet all four jobs start in one claim: each output is a branch of its own.
    with db.write() as tx:
        claimed = storage.claim_jobs(tx, worker="w", lease=timedelta(seconds=30), limit=10)
    assert sorted(c.version_id for c in claimed) == sorted(v.id for v in versions if v.id is not None)
    # Their exchanges are recorded at the same moment, each in its own transaction.
    barrier = threading.Barrier(len(versions))
    errors: list[BaseException] = []

    def settle(version: storage.Version) -> None:
        try:
            barrier.wait(timeout=10)
            with db.write() as tx:
                storage.record_exchange(
                    tx,
                    version=version,
                    session_id=conversation.id,
                    turns=[storage.NewTurn("user", [{"text": version.prompt}]), storage.NewTurn("model", [])],
                )
        except BaseException as exc:  # reported by the test below
            errors.append(exc)

    threads = [threading.Thread(target=settle, args=(v,)) for v in versions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    with db.read() as tx:
        numbers = sorted(n for (n,) in tx.execute(sa.select(TURN.c.number)))
        session = storage.get_conversation(tx, owner="alice", generation_id=versions[0].generation_id)
    assert numbers == list(range(1, 9)) and session is not None and session.turn_count == 4


def test_a_batch_keeps_within_its_models_limit(db: storage.Database) -> None:
    _batch(db, 4)
    with db.write() as tx:
        claimed = storage.claim_jobs(
            tx, worker="w", lease=timedelta(seconds=30), limit=10, max_concurrent={"offline": 2}
        )
    assert len(claimed) == 2


def _spent(
    db: storage.Database, version: storage.Version, *, cost: float, tokens: int, ended: datetime
) -> None:
    assert version.id is not None
    with db.write() as tx:
        storage.add_to_ledger(
            tx,
            version_id=version.id,
            queue_seconds=0,
            run_seconds=1,
            cooldown_seconds=0,
            attempts=1,
            usage=[
                {
                    "input_tokens": tokens,
                    "output_tokens": 2 * tokens,
                    "thinking_tokens": 1,
                    "images": 1,
                    "cost": cost,
                }
            ],
        )
        tx.execute(sa.update(VERSION).where(VERSION.c.id == version.id).values(complete_time=ended))


def test_usage_sums_by_day_principal_and_model_for_whom_and_when_asked(db: storage.Database) -> None:
    day1 = datetime(2026, 11, 27, 23, 30, tzinfo=UTC)
    day2 = datetime(2026, 11, 28, 0, 30, tzinfo=UTC)
    alice = _batch(db, 3)
    bob = _batch(db, 1, owner="bob")
    _spent(db, alice[0], cost=0.5, tokens=10, ended=day1)
    _spent(db, alice[1], cost=0.25, tokens=20, ended=day2)
    _spent(db, alice[2], cost=0.125, tokens=40, ended=day2)
    _spent(db, bob[0], cost=1.0, tokens=5, ended=day2)
    with db.read() as tx:
        everyone = storage.usage_by_day(tx, owner=None, start=None, end=None)
        mine = storage.usage_by_day(tx, owner="alice", start=None, end=None)
        late = storage.usage_by_day(tx, owner=None, start=day2 - timedelta(minutes=1), end=None)
        early = storage.usage_by_day(tx, owner=None, start=None, end=day2 - timedelta(minutes=1))
    assert [
        (r.day, r.owner, r.versions, r.input_tokens, r.output_tokens, r.images, r.cost) for r in everyone
    ] == [
        ("2026-11-27", "alice", 1, 10, 21, 1, 0.5),
        ("2026-11-28", "alice", 2, 60, 122, 2, 0.375),
        ("2026-11-28", "bob", 1, 5, 11, 1, 1.0),
    ]
    assert [r.owner for r in mine] == ["alice", "alice"] and {r.model for r in mine} == {"offline"}
    assert [(r.day, r.owner) for r in late] == [("2026-11-28", "alice"), ("2026-11-28", "bob")]
    assert [(r.day, r.owner) for r in early] == [("2026-11-27", "alice")]
