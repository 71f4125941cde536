"""The Gemini fake itself (support/gemini_fake/), apart from any code of ours that calls it."""

from __future__ import annotations

import base64
import contextlib
import functools
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx2
import pytest
from google import genai
from google.genai import types
from google.genai.client import DebugConfig

from support.gemini_fake import FakeGemini, Reply, b64decode

TEXT_MODEL = "gemini-2.5-flash"


@pytest.fixture
def anyio_backend() -> str:
    """google-genai's aio client runs on asyncio."""
    return "asyncio"


@pytest.fixture
def fake() -> Iterator[FakeGemini]:
    # No default reply: an unexpected request fails the test with a 500.
    with FakeGemini(default=None) as fake:
        yield fake
        assert fake.pending == 0, "a scripted reply was never asked for"


def test_the_fake_decodes_both_base64_alphabets() -> None:
    data = b"\xfb\xff\xfe"
    assert b64decode(base64.b64encode(data).decode()) == data
    assert b64decode(base64.urlsafe_b64encode(data).decode().rstrip("=")) == data


@pytest.mark.anyio
async def test_the_fake_also_answers_generate_content(fake: FakeGemini) -> None:
    fake.reply_text("hello there")
    client = genai.Client(
        vertexai=False,
        api_key="test-key",
        # Never recording or replaying, whatever GOOGLE_GENAI_CLIENT_MODE says.
        debug_config=DebugConfig(client_mode=None, replays_directory=None, replay_id=None),
        http_options=types.HttpOptions(base_url=fake.base_url),
    )

    response = await client.aio.models.generate_content(model=TEXT_MODEL, contents="hi")
    await client.aio.aclose()

    assert response.text == "hello there"
    assert len(fake.requests) == 1, [r.path for r in fake.requests]
    sent = fake.requests[0]
    assert (sent.version, sent.stream, sent.api_key) == ("v1", False, "test-key")  # the SDK default version


def _client(fake: FakeGemini) -> genai.Client:
    return genai.Client(
        vertexai=False,
        api_key="test-key",
        debug_config=DebugConfig(client_mode=None, replays_directory=None, replay_id=None),
        http_options=types.HttpOptions(base_url=fake.base_url, api_version="v1beta"),
    )


@pytest.mark.anyio
async def test_answers_carry_usage_with_thinking_and_thoughts_before_the_answer(fake: FakeGemini) -> None:
    fake.reply(Reply.text("the answer", thoughts=("**Thinking**\n\nabout it",)))
    client = _client(fake)

    chunks = [
        chunk
        async for chunk in await client.aio.models.generate_content_stream(model=TEXT_MODEL, contents="hi")
    ]
    await client.aio.aclose()

    parts = [part for chunk in chunks for part in chunk.candidates[0].content.parts]  # type: ignore[index,union-attr]
    assert [(bool(part.thought), part.text) for part in parts][:2] == [
        (True, "**Thinking**\n\nabout it"),
        (False, "the "),
    ]
    assert "".join(part.text or "" for part in parts if not part.thought) == "the answer"
    usage = chunks[-1].usage_metadata
    assert usage is not None
    assert (usage.prompt_token_count, usage.candidates_token_count, usage.thoughts_token_count) == (
        12,
        34,
        56,
    )
    assert chunks[0].usage_metadata is not None and chunks[0].usage_metadata.candidates_token_count is None


async def _post(
    base_url: str, model: str = TEXT_MODEL, *, client: httpx2.AsyncClient | None = None
) -> httpx2.Response:
    async with contextlib.AsyncExitStack() as stack:
        if client is None:
            client = await stack.enter_async_context(httpx2.AsyncClient())
        return await client.post(f"{base_url}/v1beta/models/{model}:generateContent", json={"contents": []})


@pytest.mark.anyio
async def test_a_storm_answers_429_with_its_retry_delay_until_it_ends(fake: FakeGemini) -> None:
    fake.storm(until=time.monotonic() + 0.3, retry_delay_seconds=1.5, retry_after="2")
    fake.reply(Reply.text("after the storm", pieces=1))

    refused = await _post(fake.base_url)
    await anyio.sleep(0.35)
    answered = await _post(fake.base_url)

    assert refused.status_code == 429 and refused.headers["retry-after"] == "2"
    error = refused.json()["error"]
    assert error["status"] == "RESOURCE_EXHAUSTED" and "Please retry in 1.5s." in error["message"]
    retry_info = [d for d in error["details"] if d["@type"].endswith("RetryInfo")]
    assert retry_info == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.5s"}]
    assert answered.status_code == 200 and "after the storm" in answered.text
    assert fake.storm_refusals == 1 and len(fake.requests) == 2


@pytest.mark.anyio
async def test_a_daily_quota_refusal_names_a_per_day_quota(fake: FakeGemini) -> None:
    fake.reply_daily_quota_exhausted("gemini-2.5-pro")

    refused = await _post(fake.base_url)

    assert refused.status_code == 429
    [failure] = [d for d in refused.json()["error"]["details"] if d["@type"].endswith("QuotaFailure")]
    assert failure["violations"][0]["quotaId"] == "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
    assert failure["violations"][0]["quotaDimensions"]["model"] == "gemini-2.5-pro"


@pytest.mark.anyio
async def test_latency_delays_every_answer_and_requests_in_flight_are_counted(fake: FakeGemini) -> None:
    fake.latency_seconds = 0.3
    fake.default = Reply.text("hi")
    started = time.monotonic()

    async with httpx2.AsyncClient() as client, anyio.create_task_group() as group:
        for model in ("a", "a", "b", "c", "a"):
            group.start_soon(functools.partial(_post, fake.base_url, model, client=client))
        # The fake counts on its own thread: look until all five arrived (or a generous bound).
        for _ in range(100):
            if fake.in_flight == 5:
                break
            await anyio.sleep(0.01)
        assert fake.in_flight == 5

    assert time.monotonic() - started >= 0.3
    assert (fake.in_flight, fake.peak_in_flight) == (0, 5)
    assert fake.requests_per_model == {"a": 3, "b": 1, "c": 1}
    fake.clear()
    assert (fake.peak_in_flight, fake.requests_per_model) == (0, {})


@pytest.mark.anyio
async def test_the_fake_holds_a_thousand_slow_requests_at_once(fake: FakeGemini) -> None:
    # Raw sockets: an HTTP client's own pool would be the bottleneck here, not the fake.
    fake.latency_seconds = 1.0
    fake.default = Reply.text("hi")
    request = (
        f"POST /v1beta/models/{TEXT_MODEL}:generateContent HTTP/1.1\r\nHost: fake\r\n"
        "Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
    ).encode()
    statuses: list[bytes] = []

    async def one() -> None:
        async with await anyio.connect_tcp("127.0.0.1", fake.port) as stream:
            await stream.send(request)
            answer = b""
            with contextlib.suppress(anyio.EndOfStream):
                while True:
                    answer += await stream.receive()
            statuses.append(answer.split(b" ", 2)[1])

    started = time.monotonic()
    async with anyio.create_task_group() as group:
        for _ in range(1000):
            group.start_soon(one)

    assert statuses == [b"200"] * 1000
    assert fake.peak_in_flight == 1000
    assert time.monotonic() - started < 10


def test_python_m_support_gemini_fake_serves_until_stopped() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "support.gemini_fake", "--latency", "0"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("fake Gemini listening on http://127.0.0.1:"), line
        answer = httpx2.post(
            f"{line.split()[-1]}/v1beta/models/{TEXT_MODEL}:generateContent", json={"contents": []}
        )
        assert answer.status_code == 200 and "README.md" in answer.text
    finally:
        process.terminate()
        process.wait(timeout=10)
