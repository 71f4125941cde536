"""Retries: capped exponential backoff with jitter, within one deadline for the whole call."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from atelier._errors import AtelierError, Internal, Unavailable

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How a call that may safely be repeated is retried after a transient failure (UNAVAILABLE),
    or after the server refused it for now and said when to try again (RetryInfo, as with a rate
    limit): then the wait is the one it asked for.

    The n-th retry waits `min(initial_backoff * multiplier**(n-1), max_backoff)` seconds, less up to
    `jitter` of it at random. A call is made at most `max_attempts` times, and never past its deadline.
    """

    max_attempts: int = 5
    initial_backoff: float = 0.2
    max_backoff: float = 5.0
    multiplier: float = 2.0
    jitter: float = 0.2

    def delays(self) -> Iterator[float]:
        """The waits before the second, third, ... attempt."""
        delay = self.initial_backoff
        while True:
            yield delay * (1 - self.jitter * random.random())
            delay = min(delay * self.multiplier, self.max_backoff)


NO_RETRY = RetryPolicy(max_attempts=1)


def is_transient(exc: AtelierError) -> bool:
    """Whether a failure says nothing about the request itself: the connection dropped or the server
    went away, or it refused the call for now and said when to try again (RetryInfo). A stream
    reset by a dying server can also surface as INTERNAL with RST_STREAM."""
    if isinstance(exc, Unavailable) or exc.retry_after is not None:
        return True
    return isinstance(exc, Internal) and "RST_STREAM" in exc.message


class Deadline:
    """The time left for a whole logical call, retries included. `None` means no deadline."""

    def __init__(self, timeout: float | None) -> None:
        self._end = None if timeout is None else time.monotonic() + timeout

    def remaining(self) -> float | None:
        if self._end is None:
            return None
        return max(0.0, self._end - time.monotonic())

    def allows(self, delay: float) -> bool:
        """Whether there is still time after sleeping `delay` seconds."""
        remaining = self.remaining()
        return remaining is None or remaining > delay


class RetryState:
    """The retry decisions of one logical call, shared by both clients: only their sleeps differ."""

    def __init__(self, policy: RetryPolicy, deadline: Deadline) -> None:
        self._policy = policy
        self._deadline = deadline
        self._failures = 0
        self._delays = policy.delays()

    def next_delay(self, exc: AtelierError) -> float | None:
        """How long to wait before trying again after `exc`; None when the call must give up (a
        failure that is not transient, the last attempt, or no time left for the wait)."""
        self._failures += 1
        delay = next(self._delays)
        if self._failures >= self._policy.max_attempts or not is_transient(exc):
            return None
        if exc.retry_after is not None:
            delay = exc.retry_after
        return delay if self._deadline.allows(delay) else None

    def reset(self) -> None:
        """The call made progress (a stream delivered an event): the attempts and backoff start over."""
        self._failures = 0
        self._delays = self._policy.delays()


def retry_call(attempt: Callable[[float | None], _T], *, policy: RetryPolicy, deadline: Deadline) -> _T:
    """Calls `attempt(time_left)` until it succeeds, fails for good, or runs out of attempts or time."""
    state = RetryState(policy, deadline)
    while True:
        try:
            return attempt(deadline.remaining())
        except AtelierError as exc:
            delay = state.next_delay(exc)
            if delay is None:
                raise
        time.sleep(delay)


async def aretry_call(
    attempt: Callable[[float | None], Awaitable[_T]], *, policy: RetryPolicy, deadline: Deadline
) -> _T:
    """The async form of `retry_call`."""
    state = RetryState(policy, deadline)
    while True:
        try:
            return await attempt(deadline.remaining())
        except AtelierError as exc:
            delay = state.next_delay(exc)
            if delay is None:
                raise
        await asyncio.sleep(delay)
