"""How the command words the scheduler's numbers: ordinals, durations, a place in line, limits."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from atelier import Ledger, Model, ModelStatus, ModelUsage, ProgressEvent, ProgressEventType, VersionState
from atelier._cli._describe import (
    cooldown,
    ledger_times,
    ledger_tokens,
    model_limits,
    ordinal,
    queue_place,
    span,
)

_NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


def test_ordinals() -> None:
    numbers = [1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 101, 111, 112, 1002]
    assert [ordinal(n) for n in numbers] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "101st", "111th", "112th",
        "1002nd",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("seconds", "precise", "rough"),
    [
        (0.04, "0.0 s", "0 s"),
        (3.26, "3.3 s", "3 s"),
        (40.4, "40 s", "40 s"),
        (180, "3 min", "3 min"),
        (192, "3 min 12 s", "3 min 12 s"),
        (7500, "2 h 5 min", "2 h 5 min"),
        (-1, "0.0 s", "0 s"),
    ],
)
def test_spans(seconds: float, precise: str, rough: str) -> None:
    assert span(timedelta(seconds=seconds)) == precise
    assert span(timedelta(seconds=seconds), rough=True) == rough


def _queued(position: int, start: float | None, end: float | None) -> ProgressEvent:
    return ProgressEvent(
        seq=3,
        version="generations/g/versions/1",
        type=ProgressEventType.QUEUED,
        state=VersionState.QUEUED,
        queue_position=position,
        estimated_start_time=None if start is None else _NOW + timedelta(seconds=start),
        estimated_complete_time=None if end is None else _NOW + timedelta(seconds=end),
    )


def test_a_place_in_line_with_and_without_estimates() -> None:
    assert (
        queue_place(_queued(12, 40.2, 95), now=_NOW)
        == "12th in line, starts in about 40 s, done in about 1 min 35 s"
    )
    assert queue_place(_queued(2, None, None), now=_NOW) == "2nd in line"
    # An estimate already due: the job starts as soon as a slot frees.
    assert queue_place(_queued(1, -3, 0.2), now=_NOW) == "1st in line, starts any moment, done any moment"


def test_a_ledger_in_words() -> None:
    ledger = Ledger(
        queue_time=timedelta(seconds=1.25),
        run_time=timedelta(seconds=42),
        cooldown_time=timedelta(seconds=3),
        attempts=2,
        usage=(ModelUsage(100, 40, 5), ModelUsage(20, 5, 2)),
    )
    assert ledger_times(ledger) == "queued 1.2 s, ran 42 s (3.0 s of it cooling down), 2 attempts"
    assert ledger_tokens(ledger) == "120 in, 45 out, 7 thinking over 2 requests"
    assert ledger_tokens(Ledger(attempts=1)) == "none reported"


def test_a_model_s_limits_and_cooldown() -> None:
    unlimited = Model("m", "scripted", "M")
    assert model_limits(replace(unlimited, max_concurrent=5, requests_per_minute=600)) == "5 at once, 600/min"
    assert model_limits(replace(unlimited, requests_per_minute=60)) == "60/min"
    assert model_limits(replace(unlimited, tokens_per_minute=250000)) == "250000 tokens/min"
    assert (
        model_limits(replace(unlimited, max_concurrent=5, requests_per_minute=600, tokens_per_minute=1000))
        == "5 at once, 600/min, 1000 tokens/min"
    )
    assert model_limits(unlimited) == "none"
    cooling = replace(unlimited, status=ModelStatus(cooldown_until=_NOW + timedelta(seconds=20)))
    assert cooldown(cooling, now=_NOW) == "until 12:00:20 UTC (in about 20 s)"
    assert cooldown(cooling, now=_NOW + timedelta(seconds=30)) == "-"
    assert cooldown(unlimited, now=_NOW) == "-"
