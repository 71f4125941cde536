"""What both clients decide the same way from their settings: deadlines, retry policies, and when
`wait` gives up. Their calls are built in `_calls`; the clients themselves only do the I/O."""

from __future__ import annotations

from typing import Any

from atelier import _errors as errors
from atelier._calls import ProgressFollower, UnaryCall
from atelier._config import DEFAULT_PROGRESS_TIMEOUT, ClientConfig, Timeout
from atelier._retry import NO_RETRY, Deadline, RetryPolicy


class BaseClient:
    """The settings shared by `AtelierClient` and `AsyncAtelierClient`."""

    def __init__(self, config: ClientConfig) -> None:
        self._config = config

    @property
    def target(self) -> str:
        """The server address this client calls."""
        return self._config.target

    def _deadline(self, timeout: Timeout) -> Deadline:
        """The deadline of a whole call, retries included."""
        return Deadline(self._config.timeout_for(timeout))

    def _retry_policy(self, call: UnaryCall[Any]) -> RetryPolicy:
        return self._config.retry if call.retry else NO_RETRY

    def _progress_timeout(self, timeout: Timeout) -> float | None:
        # Following a job (progress, wait) can take long: its default is not the one of a single call.
        return self._config.timeout_for(timeout, default=DEFAULT_PROGRESS_TIMEOUT)

    def _follow(self, name: str, *, after_seq: int, timeout: Timeout) -> ProgressFollower:
        return ProgressFollower(
            name,
            after_seq=after_seq,
            policy=self._config.progress_retry,
            deadline=Deadline(self._progress_timeout(timeout)),
        )


def wait_timeout(name: str, limit: float | None) -> errors.WaitTimeout:
    """What `wait` raises when the version has not ended within `limit` seconds."""
    return errors.sdk_error(
        errors.WaitTimeout, f"{name} did not end within {limit} s", reason="WAIT_TIMEOUT", name=name
    )
