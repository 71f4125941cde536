"""A model's budgets shared by every process (storage/_scheduling.py): requests per minute and
input tokens per minute, token buckets on its model_state row, on SQLite and PostgreSQL. The
clock is the test's, so that refills are exact."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

import storage
from storage import _scheduling

# 600 input tokens a minute: 10 a second.
_PER_MINUTE = 600


class _Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> _Clock:
    clock = _Clock()
    monkeypatch.setattr(_scheduling, "utcnow", clock)
    return clock


@pytest.fixture
def open_db(database_url: str) -> Iterator[Callable[[], storage.Database]]:
    """Opens Database objects on the test's database, as separate processes would."""
    opened: list[storage.Database] = []

    def open_one() -> storage.Database:
        database = storage.Database(database_url)
        if not opened:
            database.migrate()
        opened.append(database)
        return database

    yield open_one
    for database in opened:
        database.dispose()


def _take(db: storage.Database, tokens: int, model: str = "m") -> float:
    with db.write() as tx:
        return storage.take_input_tokens(tx, model=model, per_minute=_PER_MINUTE, tokens=tokens)


def _correct(db: storage.Database, by: int, model: str = "m") -> None:
    with db.write() as tx:
        storage.correct_input_tokens(tx, model=model, per_minute=_PER_MINUTE, by=by)


def test_the_input_token_budget_starts_full_and_refills_with_time(
    open_db: Callable[[], storage.Database], clock: _Clock
) -> None:
    db = open_db()
    assert _take(db, 400) == 0
    assert _take(db, 200) == 0  # the whole budget is spent
    assert _take(db, 100) == pytest.approx(10.0)  # 100 tokens at 10 a second
    clock.advance(4)
    assert _take(db, 100) == pytest.approx(6.0)  # a wait takes nothing: 40 are there
    clock.advance(6)
    assert _take(db, 100) == 0
    assert _take(db, 1) == pytest.approx(0.1)
    clock.advance(3600)  # an idle hour refills the budget, and no more
    assert _take(db, _PER_MINUTE) == 0
    assert _take(db, 1) == pytest.approx(0.1)


def test_the_budget_is_shared_by_every_process_and_apart_from_the_requests_budget(
    open_db: Callable[[], storage.Database], clock: _Clock
) -> None:
    one, two = open_db(), open_db()
    assert _take(one, _PER_MINUTE) == 0
    assert _take(two, 50) == pytest.approx(5.0)
    assert _take(two, 50, model="other") == 0  # each model has its own
    with two.write() as tx:
        # The requests bucket of the same row is untouched by the tokens taken.
        assert storage.take_request(tx, model="m", per_minute=1) == 0
    clock.advance(5)
    assert _take(one, 50) == 0
    assert _take(two, 1) == pytest.approx(0.1)


def test_a_request_above_the_whole_budget_goes_when_it_is_full_and_takes_it_below_zero(
    open_db: Callable[[], storage.Database], clock: _Clock
) -> None:
    db = open_db()
    assert _take(db, 100) == 0
    # 1000 tokens never fit in a bucket of 600: it waits for a full bucket (the 100 to refill) ...
    assert _take(db, 1000) == pytest.approx(10.0)
    clock.advance(10)
    # ... then goes, and the bucket owes 400: the next request waits for those and its own.
    assert _take(db, 1000) == 0
    assert _take(db, 100) == pytest.approx(50.0)
    assert _take(db, 1000) == pytest.approx(100.0)
    clock.advance(100)
    assert _take(db, 1000) == 0


def test_the_models_count_corrects_the_estimate_taken(
    open_db: Callable[[], storage.Database], clock: _Clock
) -> None:
    one, two = open_db(), open_db()
    assert _take(one, 300) == 0  # the estimate
    _correct(two, 200)  # the model counted 500: 100 are left, for every process
    assert _take(one, 150) == pytest.approx(5.0)
    clock.advance(5)
    assert _take(one, 150) == 0  # none left
    _correct(one, -1000)  # counted far below the estimate: the budget is full again, and no fuller
    assert _take(two, _PER_MINUTE) == 0
    assert _take(two, 1) == pytest.approx(0.1)
    _correct(one, 400)  # counted above: it owes
    assert _take(two, 1) == pytest.approx(40.1)
