"""The connections under the client: as many calls in flight as max_in_flight allows, more than
httpx's default pool of 100, spread over small pools (lanes)."""

from __future__ import annotations

import anyio
import pytest

from server.providers.gemini import GeminiProvider
from server.providers.gemini._transport import LANE_CONNECTIONS
from support.gemini_fake import FakeGemini
from tests.providers._recording import RecordingProgress
from tests.providers.gemini._support import request_for, settings_for


async def _run_at_once(provider: GeminiProvider, calls: int) -> None:
    async with anyio.create_task_group() as group:
        for _ in range(calls):
            group.start_soon(provider.run, request_for(), RecordingProgress())


@pytest.mark.anyio
@pytest.mark.parametrize(("max_in_flight", "calls"), [(150, 150), (40, 60)])
async def test_calls_in_flight_reach_max_in_flight_and_no_more(
    fake: FakeGemini, max_in_flight: int, calls: int
) -> None:
    fake.latency_seconds = 1.0
    for _ in range(calls):
        fake.reply_json_files({"a.txt": "A\n"})
    provider = GeminiProvider(settings_for(fake.base_url, max_in_flight=max_in_flight))
    try:
        await _run_at_once(provider, calls)
    finally:
        await provider.aclose()

    assert len(fake.requests) == calls
    assert fake.peak_in_flight == max_in_flight


@pytest.mark.anyio
async def test_lanes_open_as_the_load_needs_them(fake: FakeGemini) -> None:
    provider = GeminiProvider(settings_for(fake.base_url, max_in_flight=150))
    transport = provider._caller.transport
    try:
        for _ in range(5):
            fake.reply_json_files({"a.txt": "A\n"})
            await provider.run(request_for(), RecordingProgress())
        assert transport.lane_count == 1  # One call at a time reuses one lane.

        fake.latency_seconds = 0.5
        calls = LANE_CONNECTIONS + 10
        for _ in range(calls):
            fake.reply_json_files({"a.txt": "A\n"})
        await _run_at_once(provider, calls)
        assert transport.lane_count == 2
        assert fake.peak_in_flight == calls
    finally:
        await provider.aclose()
