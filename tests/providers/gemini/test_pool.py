"""The connections under the client: as many calls in flight as max_in_flight allows, more than
httpx's default pool of 100, spread over small pools (lanes)."""

from __future__ import annotations

import anyio
import httpx2
import pytest

from server.providers.gemini import GeminiProvider
from server.providers.gemini._transport import LANE_CONNECTIONS, LanedTransport
from support.gemini_fake import FakeGemini
from tests.providers._recording import RecordingProgress
from tests.providers.gemini._support import TEXT_MODEL, request_for, settings_for


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
    # The worker process's transport, driven here by an httpx2 client as google-genai drives it.
    transport = LanedTransport(150, verify=httpx2.create_ssl_context())
    url = f"{fake.base_url}/v1beta/models/{TEXT_MODEL}:generateContent"

    async def call(client: httpx2.AsyncClient) -> None:
        response = await client.post(url, json=_BODY)
        assert response.status_code == 200

    async with httpx2.AsyncClient(transport=transport) as client:
        for _ in range(5):
            fake.reply_json_files({"a.txt": "A\n"})
            await call(client)
        assert transport.lane_count == 1  # One call at a time reuses one lane.

        fake.latency_seconds = 0.5
        calls = LANE_CONNECTIONS + 10
        for _ in range(calls):
            fake.reply_json_files({"a.txt": "A\n"})
        async with anyio.create_task_group() as group:
            for _ in range(calls):
                group.start_soon(call, client)
        assert transport.lane_count == 2
        assert fake.peak_in_flight == calls


_BODY = {"contents": [{"role": "user", "parts": [{"text": "a hello world script"}]}]}
