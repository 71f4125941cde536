"""Limits per principal, checked where every call passes (`AtelierMethods._caller` and the call
wrappers, on either port): a request rate, and how many server streams and uploads are open at once.

Both are kept by this replica for itself: a rate limit across replicas would cost a database
write per call. The cap on queued jobs, which must hold across replicas, is counted in the
database instead (storage.create_version).
"""

from __future__ import annotations

import contextlib
import enum
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from server.config import Settings
from server.domain import Principal, ResourceExhausted

# Buckets of principals that called lately; past this many, the full ones (principals idle long
# enough to have refilled, so no different from new ones) are dropped.
_MAX_BUCKETS = 10_000


class Slot(enum.StrEnum):
    STREAM = "stream"
    UPLOAD = "upload"


@dataclass(slots=True)
class _Bucket:
    tokens: float
    time: float


class Limits:
    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = settings.rate_limit_per_second
        self._burst = max(1, settings.rate_limit_burst)
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._per_principal = {
            Slot.STREAM: settings.max_streams_per_principal,
            Slot.UPLOAD: settings.max_uploads_per_principal,
        }
        self._max_uploads = settings.max_uploads
        self._open: dict[Slot, Counter[str]] = {Slot.STREAM: Counter(), Slot.UPLOAD: Counter()}

    def admit(self, principal: Principal) -> None:
        """Takes one request from the principal's bucket; ResourceExhausted (RATE_LIMITED, with
        how long until the next request can pass) when it is empty."""
        if not self._rate:
            return
        now = self._clock()
        bucket = self._buckets.get(principal.name)
        if bucket is None:
            if len(self._buckets) >= _MAX_BUCKETS:
                self._drop_full(now)
            bucket = self._buckets[principal.name] = _Bucket(float(self._burst), now)
        bucket.tokens = min(float(self._burst), bucket.tokens + (now - bucket.time) * self._rate)
        bucket.time = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return
        wait = (1 - bucket.tokens) / self._rate
        raise ResourceExhausted(
            f"principal {principal.name!r} is over its rate limit of {self._rate:g} requests a second "
            f"(bursts of {self._burst}); retry in {math.ceil(wait * 1000)} ms",
            reason="RATE_LIMITED",
            metadata={"limit_per_second": f"{self._rate:g}", "burst": str(self._burst)},
            retry_after=wait,
        )

    @contextlib.contextmanager
    def slot(self, kind: Slot, principal: Principal) -> Iterator[None]:
        """Holds one of the principal's `kind` slots for the body, however it ends (an answer, an
        error, the client cancelling or its deadline); ResourceExhausted when none is free."""
        open_ = self._open[kind]
        limit = self._per_principal[kind]
        if limit and open_[principal.name] >= limit:
            raise ResourceExhausted(
                f"principal {principal.name!r} already has {open_[principal.name]} {kind}s open, "
                f"its limit; wait for one to end",
                reason=f"TOO_MANY_{kind.upper()}S",
                metadata={"limit": str(limit)},
            )
        if kind is Slot.UPLOAD and self._max_uploads and open_.total() >= self._max_uploads:
            raise ResourceExhausted(
                f"this server already receives {open_.total()} uploads, its limit; try again shortly",
                reason="SERVER_UPLOADS_BUSY",
                metadata={"limit": str(self._max_uploads)},
            )
        open_[principal.name] += 1
        try:
            yield
        finally:
            open_[principal.name] -= 1
            if not open_[principal.name]:
                del open_[principal.name]

    def _drop_full(self, now: float) -> None:
        full = [
            name
            for name, bucket in self._buckets.items()
            if bucket.tokens + (now - bucket.time) * self._rate >= self._burst
        ]
        for name in full:
            del self._buckets[name]
