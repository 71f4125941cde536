"""What the scheduler reads and keeps besides the jobs: each model's shared state (cooldown,
budgets of requests and of input tokens), the queue as principals see it, recent run times, and
each version's ledger."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from storage._clock import as_utc, utcnow
from storage._database import Transaction
from storage._models import JobStatus, VersionState
from storage._notifications import MODELS_CHANNEL, notify
from storage._tables import JOB, MODEL_STATE, VERSION


@dataclass(frozen=True, slots=True)
class ModelActivity:
    """A model's jobs right now, across every process, and its cooldown."""

    running: int = 0
    queued: int = 0
    cooldown_until: datetime | None = None
    cooldown_step: float = 0.0


@dataclass(frozen=True, slots=True)
class QueuedJob:
    job_id: int
    version_id: int
    owner: str
    queued_at: datetime
    reported_position: int | None


def model_activity(tx: Transaction) -> dict[str, ModelActivity]:
    """Every model with jobs or a stored state: its running and queued jobs, and its cooldown."""
    counts: dict[str, dict[str, int]] = {}
    for model, status, count in tx.execute(_COUNTS):
        counts.setdefault(model, {})[status] = count
    states = {model: (_aware(until), step) for model, until, step in tx.execute(_STATES)}
    return {
        model: ModelActivity(
            running=counts.get(model, {}).get(JobStatus.RUNNING, 0),
            queued=counts.get(model, {}).get(JobStatus.QUEUED, 0),
            cooldown_until=states.get(model, (None, 0.0))[0],
            cooldown_step=states.get(model, (None, 0.0))[1],
        )
        for model in sorted({*counts, *states})
    }


def cool_down(tx: Transaction, *, model: str, until: datetime, step: float) -> datetime:
    """Starts or extends the model's cooldown (never shortens one another process set); returns
    the cooldown's end as stored. Other processes hear of it (PostgreSQL NOTIFY)."""
    now = utcnow()
    stored = lock_model_state(tx, model, now)
    current = _aware(stored.cooldown_until)
    end = until if current is None or current < until else current
    tx.execute(
        _SET_COOLDOWN,
        {"model_name": model, "until": end, "step": max(step, stored.cooldown_step), "now": now},
    )
    notify(tx, MODELS_CHANNEL, model)
    return end


def end_cooldown(tx: Transaction, *, model: str) -> None:
    """The model answered again: its cooldown and backoff are over, for every process."""
    tx.execute(_SET_COOLDOWN, {"model_name": model, "until": None, "step": 0.0, "now": utcnow()})
    notify(tx, MODELS_CHANNEL, model)


def take_request(tx: Transaction, *, model: str, per_minute: int) -> float:
    """Takes one request from the model's budget of `per_minute`, shared by every process (a token
    bucket that refills continuously). Returns 0 when taken, else the seconds until one is free."""
    now = utcnow()
    stored = lock_model_state(tx, model, now)
    left, wait = _take(stored.request_tokens, _aware(stored.tokens_time), now, per_minute, 1)
    tx.execute(_SET_TOKENS, {"model_name": model, "tokens": left, "time": now, "now": now})
    return wait


def take_input_tokens(tx: Transaction, *, model: str, per_minute: int, tokens: int) -> float:
    """Takes a request's estimated input `tokens` from the model's budget of `per_minute` input
    tokens, shared by every process (a second token bucket, like take_request's). Returns 0 when
    taken, else the seconds until they are there.

    A request estimated above the whole budget would wait for ever for a bucket that never holds
    that much: it goes when the bucket is full, and takes it below zero, so that the requests
    after it wait until what it overspent has refilled."""
    now = utcnow()
    stored = lock_model_state(tx, model, now)
    left, wait = _take(stored.input_tokens, _aware(stored.input_tokens_time), now, per_minute, tokens)
    tx.execute(_SET_INPUT_TOKENS, {"model_name": model, "tokens": left, "time": now, "now": now})
    return wait


def correct_input_tokens(tx: Transaction, *, model: str, per_minute: int, by: int) -> None:
    """Takes `by` more input tokens from the model's budget (gives them back if negative): what the
    model counted for a request, less the estimate take_input_tokens took for it. One statement on
    the stored level, which counts from the last take: as if the request had taken the right
    amount then (or a little later), not now, which would refill later than the model's quota
    does. The budget never holds more than `per_minute`."""
    tx.execute(
        _CORRECT_INPUT_TOKENS,
        {"model_name": model, "by": float(by), "most": float(per_minute), "now": utcnow()},
    )


def _take(
    level: float, last: datetime | None, now: datetime, per_minute: int, amount: int
) -> tuple[float, float]:
    """A token bucket of `per_minute` that held `level` at `last` (None: never used, so full):
    what it holds once `amount` is taken now, and 0; or, if it is short, what it holds now and
    the seconds until it has `amount` (the whole bucket, for an amount above it)."""
    refill = (now - last).total_seconds() * per_minute / 60 if last is not None else float(per_minute)
    tokens = min(float(per_minute), level + refill)
    needed = min(float(amount), float(per_minute))
    if tokens >= needed:
        return tokens - amount, 0.0
    return tokens, (needed - tokens) * 60 / per_minute


def queue_of(tx: Transaction, *, model: str) -> list[QueuedJob]:
    """The model's queued jobs, by principal, each principal's in the order they were queued."""
    return [
        QueuedJob(job_id, version_id, owner, as_utc(queued_at), reported)
        for job_id, version_id, owner, queued_at, reported in tx.execute(_QUEUE_OF, {"model_name": model})
    ]


def running_by_owner(tx: Transaction, *, model: str) -> dict[str, int]:
    """How many jobs of the model each principal runs now."""
    return {owner: count for owner, count in tx.execute(_RUNNING_BY_OWNER, {"model_name": model})}


def report_positions(tx: Transaction, positions: Sequence[tuple[int, int]]) -> list[int]:
    """Records (job id, position) pairs as reported; returns the ids whose position was not already
    the one recorded (another process may have reported it first)."""
    changed = []
    for job_id, position in positions:
        if tx.execute(_REPORT_POSITION, {"job_id": job_id, "position": position}).rowcount:  # type: ignore[attr-defined]
            changed.append(job_id)
    return changed


def recent_run_seconds(tx: Transaction, *, model: str, limit: int = 50) -> list[float]:
    """How long the model's latest COMPLETED versions ran, newest first."""
    return [seconds for (seconds,) in tx.execute(_RECENT_RUNS, {"model_name": model, "limit": limit})]


def add_to_ledger(
    tx: Transaction,
    *,
    version_id: int,
    queue_seconds: float,
    run_seconds: float,
    cooldown_seconds: float,
    attempts: int,
    usage: Sequence[dict[str, float]],
) -> None:
    """Adds one attempt of a version's job to its ledger. `usage` is the whole list, the earlier
    attempts' included: only the job's lease holder writes it, so nothing is lost between. The
    totals (tokens, images, cost) are summed from it, thinking tokens counted as output."""
    tx.execute(
        _ADD_TO_LEDGER,
        {
            "version_id": version_id,
            "queue": queue_seconds,
            "run": run_seconds,
            "cooldown": cooldown_seconds,
            "attempts": attempts,
            "usage": list(usage),
            "input_tokens": int(sum(u.get("input_tokens", 0) for u in usage)),
            "output_tokens": int(sum(u.get("output_tokens", 0) + u.get("thinking_tokens", 0) for u in usage)),
            "images": int(sum(u.get("images", 0) for u in usage)),
            "cost": float(sum(u.get("cost", 0.0) for u in usage)),
        },
    )


def lock_model_state(tx: Transaction, model: str, now: datetime) -> sa.Row[Any]:
    """The model's state row, made if missing and locked until the transaction ends (PostgreSQL
    FOR UPDATE; SQLite's write transaction holds the whole database already)."""
    tx.execute(_INSERT_STATE[tx.get_bind().dialect.name], {"model_name": model, "now": now})
    return tx.execute(_LOCK_STATE, {"model_name": model}).one()


def _aware(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


_COUNTS = (
    sa.select(JOB.c.model, JOB.c.status, sa.func.count())
    .where(JOB.c.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]))
    .group_by(JOB.c.model, JOB.c.status)
)
_STATES = sa.select(MODEL_STATE.c.model, MODEL_STATE.c.cooldown_until, MODEL_STATE.c.cooldown_step)
_INSERT_STATE = {
    name: dialect.insert(MODEL_STATE)
    .values(
        model=sa.bindparam("model_name"),
        cooldown_step=0.0,
        request_tokens=0.0,
        input_tokens=0.0,
        update_time=sa.bindparam("now"),
    )
    .on_conflict_do_nothing(index_elements=["model"])
    for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))
}
_LOCK_STATE = (
    sa.select(
        MODEL_STATE.c.cooldown_until,
        MODEL_STATE.c.cooldown_step,
        MODEL_STATE.c.request_tokens,
        MODEL_STATE.c.tokens_time,
        MODEL_STATE.c.input_tokens,
        MODEL_STATE.c.input_tokens_time,
    )
    .where(MODEL_STATE.c.model == sa.bindparam("model_name"))
    .with_for_update()
)
_SET_COOLDOWN = (
    sa.update(MODEL_STATE)
    .where(MODEL_STATE.c.model == sa.bindparam("model_name"))
    .values(
        cooldown_until=sa.bindparam("until"),
        cooldown_step=sa.bindparam("step"),
        update_time=sa.bindparam("now"),
    )
)
_SET_TOKENS = (
    sa.update(MODEL_STATE)
    .where(MODEL_STATE.c.model == sa.bindparam("model_name"))
    .values(
        request_tokens=sa.bindparam("tokens"),
        tokens_time=sa.bindparam("time"),
        update_time=sa.bindparam("now"),
    )
)
_SET_INPUT_TOKENS = (
    sa.update(MODEL_STATE)
    .where(MODEL_STATE.c.model == sa.bindparam("model_name"))
    .values(
        input_tokens=sa.bindparam("tokens"),
        input_tokens_time=sa.bindparam("time"),
        update_time=sa.bindparam("now"),
    )
)
_CORRECTED = MODEL_STATE.c.input_tokens - sa.bindparam("by", type_=sa.Float)
_MOST = sa.bindparam("most", type_=sa.Float)
_CORRECT_INPUT_TOKENS = (
    sa.update(MODEL_STATE)
    .where(MODEL_STATE.c.model == sa.bindparam("model_name"))
    .values(
        input_tokens=sa.case((_CORRECTED > _MOST, _MOST), else_=_CORRECTED), update_time=sa.bindparam("now")
    )
)
_QUEUE_OF = (
    sa.select(
        JOB.c.id,
        JOB.c.version_id,
        JOB.c.owner,
        sa.func.coalesce(JOB.c.queued_at, JOB.c.create_time),
        JOB.c.reported_position,
    )
    .where(JOB.c.status == JobStatus.QUEUED, JOB.c.model == sa.bindparam("model_name"))
    .order_by(JOB.c.owner, JOB.c.id)
)
_RUNNING_BY_OWNER = (
    sa.select(JOB.c.owner, sa.func.count())
    .where(JOB.c.status == JobStatus.RUNNING, JOB.c.model == sa.bindparam("model_name"))
    .group_by(JOB.c.owner)
)
_REPORT_POSITION = (
    sa.update(JOB)
    .where(
        JOB.c.id == sa.bindparam("job_id"),
        JOB.c.status == JobStatus.QUEUED,
        sa.or_(JOB.c.reported_position.is_(None), JOB.c.reported_position != sa.bindparam("position")),
    )
    .values(reported_position=sa.bindparam("position"))
)
_RECENT_RUNS = (
    sa.select(VERSION.c.run_seconds)
    .where(
        VERSION.c.model == sa.bindparam("model_name"),
        VERSION.c.state == VersionState.COMPLETED,
        VERSION.c.complete_time.is_not(None),
        VERSION.c.run_seconds > 0,
    )
    .order_by(VERSION.c.complete_time.desc())
    .limit(sa.bindparam("limit"))
)


_ADD_TO_LEDGER = (
    sa.update(VERSION)
    .where(VERSION.c.id == sa.bindparam("version_id"))
    .values(
        queue_seconds=VERSION.c.queue_seconds + sa.bindparam("queue"),
        run_seconds=VERSION.c.run_seconds + sa.bindparam("run"),
        cooldown_seconds=VERSION.c.cooldown_seconds + sa.bindparam("cooldown"),
        attempts=sa.bindparam("attempts"),
        usage=sa.bindparam("usage", type_=sa.JSON),
        input_tokens=sa.bindparam("input_tokens"),
        output_tokens=sa.bindparam("output_tokens"),
        images=sa.bindparam("images"),
        cost=sa.bindparam("cost"),
    )
)
