"""A model's cooldown after 429s, as the jobs of one process see it (server/domain/jobs/_gate.py):
one storm starts one cooldown, then one job probes while the others wait, a refused probe backs
off, an answered one lets everyone go, and no job waits longer than the server allows."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from server.config import ModelConfig, Settings
from server.domain.jobs._gate import JobGate, ModelCapacity
from server.providers import ProviderError


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _capacity(**settings: Any) -> tuple[ModelCapacity, list[str]]:
    persisted: list[str] = []

    def spawn(function: Callable[..., Any], work: Callable[..., Any]) -> None:
        persisted.append(getattr(work, "__name__", "write"))

    capacity = ModelCapacity(
        ModelConfig("m", "scripted", "m"),
        db=None,  # type: ignore[arg-type]  # no request budget: the gate never reads it
        settings=replace(Settings(), **settings),
        spawn=spawn,
    )
    return capacity, persisted


async def _goes_out_within(gate: JobGate, seconds: float) -> bool:
    with anyio.move_on_after(seconds):
        await gate.before_request()
        return True
    return False


@pytest.mark.anyio
async def test_one_storm_starts_one_cooldown_and_one_probe_ends_it() -> None:
    capacity, persisted = _capacity()
    gates = [capacity.gate() for _ in range(5)]
    for gate in gates:  # five requests were out when the storm began
        await gate.before_request()
    for gate in gates:
        gate.refused(retry_after=0.3)
    assert capacity.cooling_until is not None
    assert await _goes_out_within(gates[0], 0.1) is False, "nothing goes out while the model cools"
    assert await _goes_out_within(gates[0], 1.0) is True  # the probe, once the 0.3 s have passed
    assert gates[0].probe
    assert await _goes_out_within(gates[1], 0.3) is False, "one probe at a time"
    gates[0].answered()
    assert await _goes_out_within(gates[1], 0.1) is True and not gates[1].probe
    assert capacity.cooling_until is None and len(persisted) == 2  # started, then ended, for every replica


@pytest.mark.anyio
async def test_a_refused_probe_backs_off_and_a_cancelled_one_passes_the_turn() -> None:
    capacity, _ = _capacity()
    first, second = capacity.gate(), capacity.gate()
    await first.before_request()
    first.refused(retry_after=0.2)
    one = capacity.cooling_until
    await first.before_request()  # the probe
    first.refused(retry_after=0.2)  # refused again: the step doubles (0.2 -> 0.4, plus jitter)
    two = capacity.cooling_until
    assert one is not None and two is not None and (two - one).total_seconds() >= 0.35
    await first.before_request()  # probes again, then its job is cancelled before any answer
    assert first.probe
    first.release()
    assert await _goes_out_within(second, 0.2) is True and second.probe


@pytest.mark.anyio
async def test_a_job_waits_no_longer_than_the_server_allows() -> None:
    capacity, _ = _capacity(provider_max_wait_seconds=0.3)
    gate = capacity.gate()
    await gate.before_request()
    gate.refused(retry_after=5.0)
    with pytest.raises(ProviderError) as failed:
        await gate.before_request()
    assert failed.value.reason == "MODEL_QUOTA_EXHAUSTED" and "waited" in failed.value.message
    assert 0.25 <= gate.waited < 1.0


@pytest.mark.anyio
async def test_only_a_read_newer_than_this_processs_cooldown_can_end_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spawned: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
    capacity = ModelCapacity(
        ModelConfig("m", "scripted", "m"),
        db=None,  # type: ignore[arg-type]  # its writes are replaced below
        settings=Settings(),
        spawn=lambda function, *args: spawned.append((function, args)),
    )

    async def stored(work: Callable[..., Any]) -> None:
        await anyio.lowlevel.checkpoint()

    monkeypatch.setattr(capacity, "_persist", stored)
    gate = capacity.gate()
    await gate.before_request()
    before = time.monotonic()
    gate.refused(retry_after=30.0)
    # Its write is on its way: a read showing no cooldown is not another replica ending it.
    # (Taken for one, it let every waiting job out into the storm again.)
    capacity.adopt(None, 0.0, read_at=time.monotonic())
    assert capacity.cooling_until is not None
    [(function, args)] = spawned
    await function(*args)  # the write commits
    capacity.adopt(None, 0.0, read_at=before)  # a read that began before it
    assert capacity.cooling_until is not None
    capacity.adopt(None, 0.0, read_at=time.monotonic())  # another replica's probe ended it
    assert capacity.cooling_until is None
