"""Where a queued job stands: its place in its model's queue, with fairness counted, and when it
should start and end, from the model's capacity and its recent run times.

The order is the one claims follow (storage.claim_jobs): a principal's n-th queued job comes in
round n plus the number of jobs the principal already runs on the model; within a round, older
jobs first.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import storage

# Positions are reported when they cross one of these marks, not at every job that starts ahead:
# each of the last ten, then coarser steps.
_MARKS = (10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000, 100_000)


@dataclass(frozen=True, slots=True)
class Outlook:
    """What a model's queue moves at: its capacity, what runs now, how long a job runs."""

    capacity: int
    running: int
    mean_run_seconds: float | None
    cooldown_until: datetime | None


def positions(
    queue: Sequence[storage.QueuedJob], running_by_owner: Mapping[str, int] | None = None
) -> dict[int, int]:
    """Each queued job's place (1: next), by job id."""
    running_by_owner = running_by_owner or {}
    ranks: dict[str, int] = {}
    keyed = []
    for job in queue:  # by owner, then in the order queued
        ranks[job.owner] = ranks.get(job.owner, 0) + 1
        keyed.append((ranks[job.owner] + running_by_owner.get(job.owner, 0), job.job_id))
    keyed.sort()
    return {job_id: index for index, (_, job_id) in enumerate(keyed, start=1)}


def estimate(position: int, outlook: Outlook, now: datetime) -> storage.QueueEstimate:
    """When the job at `position` should start and end. Unknown (None) when the model has no
    run times yet and the job must wait for others to end."""
    free = max(0, outlook.capacity - outlook.running)
    opens = max(now, outlook.cooldown_until or now)
    mean = outlook.mean_run_seconds
    if position <= free:
        start: datetime | None = opens
    elif mean is None:
        start = None
    else:
        waves = math.ceil((position - free) / max(1, outlook.capacity))
        start = opens + timedelta(seconds=waves * mean)
    end = start + timedelta(seconds=mean) if start is not None and mean is not None else None
    return storage.QueueEstimate(position=position, start_time=start, complete_time=end)


def mean_run_seconds(recent: Sequence[float]) -> float | None:
    # The median: one stuck job must not move every estimate.
    return statistics.median(recent) if recent else None


def held_back(position: int, outlook: Outlook) -> bool:
    """Whether the job at `position` waits for its model (its capacity is taken, or it cools
    down), rather than for this replica to get to it: only then is its place worth an event.
    A burst of jobs on a free model starts as fast as they can be claimed."""
    return outlook.cooldown_until is not None or position > max(0, outlook.capacity - outlook.running)


def worth_reporting(before: int | None, now: int) -> bool:
    """Whether a move from `before` to `now` is worth an event: the first report, or a mark crossed."""
    return before is None or _mark(before) != _mark(now)


def _mark(position: int) -> int:
    if position <= _MARKS[0]:
        return position
    return next((mark for mark in _MARKS if position <= mark), _MARKS[-1] + 1)


def describe(model: str, estimate_: storage.QueueEstimate, outlook: Outlook, now: datetime) -> str:
    """The message of a QUEUED event."""
    parts = [f"Waiting for {model}: {_ordinal(estimate_.position)} in the queue"]
    if outlook.cooldown_until is not None and outlook.cooldown_until > now:
        parts.append(f"the model is cooling down after a 429 until {outlook.cooldown_until:%H:%M:%S} UTC")
    elif outlook.running >= outlook.capacity:
        parts.append(f"{outlook.running} of {outlook.capacity} calls in flight")
    if estimate_.start_time is not None:
        seconds = max(0, round((estimate_.start_time - now).total_seconds()))
        parts.append(f"starts in about {seconds} s")
    return ", ".join(parts)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
