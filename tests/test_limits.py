"""The limits kept by each replica (server/api/_limits.py): a token bucket per principal, and
slots that are given back however the call holding one ends."""

from __future__ import annotations

from dataclasses import replace

import pytest

from server.api._limits import Limits, Slot
from server.config import Settings
from server.domain import READ, Principal, ResourceExhausted

ALICE = Principal("alice", frozenset({READ}))
BOB = Principal("bob", frozenset({READ}))


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_says_when_the_next_call_can_pass() -> None:
    clock = _Clock()
    limits = Limits(replace(Settings(), rate_limit_per_second=10, rate_limit_burst=3), clock=clock)
    for _ in range(3):
        limits.admit(ALICE)
    with pytest.raises(ResourceExhausted) as caught:
        limits.admit(ALICE)
    assert caught.value.reason == "RATE_LIMITED"
    assert caught.value.retry_after == pytest.approx(0.1)
    limits.admit(BOB)  # a bucket of its own
    clock.now += 0.05
    with pytest.raises(ResourceExhausted) as caught:
        limits.admit(ALICE)
    assert caught.value.retry_after == pytest.approx(0.05)
    clock.now += 0.051
    limits.admit(ALICE)


def test_no_rate_means_no_limit() -> None:
    limits = Limits(replace(Settings(), rate_limit_per_second=0, rate_limit_burst=1))
    for _ in range(100):
        limits.admit(ALICE)


def test_slots_are_capped_per_principal_and_uploads_per_server_and_freed_on_any_exit() -> None:
    limits = Limits(
        replace(Settings(), max_streams_per_principal=1, max_uploads_per_principal=1, max_uploads=1)
    )
    with pytest.raises(RuntimeError), limits.slot(Slot.STREAM, ALICE):
        with pytest.raises(ResourceExhausted) as caught, limits.slot(Slot.STREAM, ALICE):
            pass
        assert caught.value.reason == "TOO_MANY_STREAMS"
        with limits.slot(Slot.STREAM, BOB):
            pass
        raise RuntimeError("the call failed")
    with limits.slot(Slot.STREAM, ALICE), limits.slot(Slot.UPLOAD, ALICE):
        with pytest.raises(ResourceExhausted) as caught, limits.slot(Slot.UPLOAD, BOB):
            pass
        assert caught.value.reason == "SERVER_UPLOADS_BUSY"
    with limits.slot(Slot.UPLOAD, BOB):
        pass
