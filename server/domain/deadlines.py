"""When a caller stops waiting, as a plain value that the domain checks before it writes.

A caller told DEADLINE_EXCEEDED or CANCELLED must be able to take it as "nothing happened": so a
write transaction refuses to start once its caller has gone, and refuses to commit if the caller
went while it ran (`_transactions.write`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from server.domain.errors import Cancelled, DeadlineExceeded


def _never() -> bool:
    return False


@dataclass(frozen=True, slots=True)
class Deadline:
    # The time.monotonic() at which the caller stops waiting (None: it waits as long as it takes).
    at: float | None = None
    # Whether the caller cancelled the call. Called from worker threads.
    cancelled: Callable[[], bool] = _never

    @classmethod
    def after(cls, seconds: float | None, *, cancelled: Callable[[], bool] = _never) -> Deadline:
        return cls(None if seconds is None else time.monotonic() + seconds, cancelled)

    def check(self) -> None:
        """Raises if the caller has gone: there is no one left to tell what a write did."""
        if self.cancelled():
            raise Cancelled(
                "the call was cancelled before its write: nothing was written", reason="CANCELLED"
            )
        if self.at is not None and time.monotonic() >= self.at:
            raise DeadlineExceeded(
                "the call's deadline passed before its write: nothing was written", reason="DEADLINE_EXCEEDED"
            )


NO_DEADLINE = Deadline()
