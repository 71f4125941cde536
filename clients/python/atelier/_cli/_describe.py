"""How the command words what the scheduler reports: a queued version's place and ETA, a version's
ledger, and a model's limits and live state. Plain text; callers escape it for rich markup."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from atelier._types import BatchCounts, Ledger, Model, Price, ProgressEvent, RequestLimits, Version


def ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, ..., 21st."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def span(delta: timedelta, *, rough: bool = False) -> str:
    """A duration as people read it: tenths of a second while short (whole seconds if `rough`),
    whole units when longer."""
    seconds = max(0.0, delta.total_seconds())
    if seconds < 10 and not rough:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        minutes, rest = divmod(whole, 60)
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, rest = divmod(whole, 3600)
    return f"{hours} h {rest // 60} min"


def _from_now(moment: datetime, now: datetime) -> str:
    # An estimate already behind us means the job is next whenever a slot frees.
    if moment - now < timedelta(seconds=0.5):
        return "any moment"
    return f"in about {span(moment - now, rough=True)}"


def queue_place(queued: Version | ProgressEvent, *, now: datetime | None = None) -> str:
    """`12th in line, starts in about 40 s, done in about 1 min`; the times only when estimated."""
    now = now or datetime.now(UTC)
    parts = [f"{ordinal(queued.queue_position)} in line"]
    if queued.estimated_start_time is not None:
        parts.append(f"starts {_from_now(queued.estimated_start_time, now)}")
    if queued.estimated_complete_time is not None:
        parts.append(f"done {_from_now(queued.estimated_complete_time, now)}")
    return ", ".join(parts)


def ledger_times(ledger: Ledger) -> str:
    """`queued 1.2 s, ran 3.4 s (0.0 s of it cooling down), 1 attempt`."""
    attempts = f"{ledger.attempts} attempt{'' if ledger.attempts == 1 else 's'}"
    return (
        f"queued {span(ledger.queue_time)}, ran {span(ledger.run_time)} "
        f"({span(ledger.cooldown_time)} of it cooling down), {attempts}"
    )


def ledger_tokens(ledger: Ledger) -> str:
    """`120 in, 45 out, 7 thinking over 1 request`: every request to the model, summed."""
    if not ledger.usage:
        return "none reported"
    total = ledger.total_usage
    requests = len(ledger.usage)
    return (
        f"{total.input_tokens} in, {total.output_tokens} out, {total.thinking_tokens} thinking "
        f"over {requests} request{'' if requests == 1 else 's'}"
    )


def model_limits(model: Model) -> str:
    """`5 at once, 600/min, 250000 tokens/min`, or `none` for a model with no limit of its own."""
    limits = []
    if model.max_concurrent is not None:
        limits.append(f"{model.max_concurrent} at once")
    if model.requests_per_minute is not None:
        limits.append(f"{model.requests_per_minute}/min")
    if model.tokens_per_minute is not None:
        limits.append(f"{model.tokens_per_minute} tokens/min")
    return ", ".join(limits) or "none"


def byte_size(size: int) -> str:
    """`512 B`, `32 KiB`, `1.5 MiB`: powers of 1,024, as the server's settings are written."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def request_limits(limits: RequestLimits) -> str:
    """What the server accepts in a request, in one sentence."""
    attachments = (
        f"attachments of {byte_size(limits.max_attachment_bytes)} in all"
        if limits.max_attachment_bytes
        else "no attachments"
    )
    return (
        f"Requests: prompts of at most {byte_size(limits.max_prompt_bytes)}, {attachments}, "
        f"{limits.max_batch_size} outputs a fan-out, files of {byte_size(limits.max_file_bytes)}, "
        f"trees of {byte_size(limits.max_tree_bytes)} and {limits.max_tree_files:,} files, "
        f"messages of {byte_size(limits.max_message_bytes)}."
    )


def cooldown(model: Model, *, now: datetime | None = None) -> str:
    """`until 12:03:04 UTC (in about 20 s)` while the model cools down after a 429, else `-`."""
    until = model.status.cooldown_until
    now = now or datetime.now(UTC)
    if until is None or until <= now:
        return "-"
    return f"until {until:%H:%M:%S} UTC ({_from_now(until, now)})"


def money(amount: float, currency: str = "USD") -> str:
    """`$0.000912`: enough digits for a single cheap request, none wasted on large sums."""
    sign = "$" if currency == "USD" else f"{currency} "
    if amount == 0:
        return f"{sign}0"
    return f"{sign}{amount:.2f}" if amount >= 1 else f"{sign}{amount:.6f}".rstrip("0")


def price(price: Price) -> str:
    """`$0.3/1M in, $2.5/1M out`, `$0.039/image`, or `free`."""
    sign = "$" if price.currency == "USD" else f"{price.currency} "
    parts = []
    if price.input_per_million_tokens:
        parts.append(f"{sign}{price.input_per_million_tokens:g}/1M in")
    if price.output_per_million_tokens:
        parts.append(f"{sign}{price.output_per_million_tokens:g}/1M out")
    if price.per_image:
        parts.append(f"{sign}{price.per_image:g}/image")
    return ", ".join(parts) or "free"


def batch_counts(counts: BatchCounts) -> str:
    """`2/4 done: 1 completed, 1 failed, 2 running`: only the states some output is in."""
    ended = counts.completed + counts.failed + counts.cancelled + counts.needs_review
    states = (
        ("completed", counts.completed),
        ("failed", counts.failed),
        ("cancelled", counts.cancelled),
        ("needs review", counts.needs_review),
        ("running", counts.running),
        ("queued", counts.queued),
    )
    return f"{ended}/{counts.total} done: " + ", ".join(f"{n} {state}" for state, n in states if n)
