"""The provider's side of the model's gate: before every request, a 429 reported with the delay it
asks for and waited out without spending attempts, a used-up daily quota failing at once."""

from __future__ import annotations

import time
from email.utils import formatdate

import anyio
import pytest

from server.providers.gemini import GeminiProvider
from support.gemini_fake import FakeGemini, Reply
from tests.providers._recording import RecordingProgress
from tests.providers.gemini._support import (
    TEXT_MODEL,
    RecordingGate,
    failure,
    request_for,
    run,
    settings_for,
)


@pytest.mark.anyio
async def test_a_storm_is_waited_out_in_the_gate_with_the_delay_it_asks_for(fake: FakeGemini) -> None:
    fake.reply_json_files({"a.txt": "A\n"})
    # The gate cools the model down for a tenth of what it is asked: 0.1 s a refusal.
    gate = RecordingGate(time_scale=0.1)
    provider = GeminiProvider(settings_for(fake.base_url, provider_max_attempts=1))
    progress = RecordingProgress()
    try:
        await provider.ready()
        fake.storm(until=time.monotonic() + 0.5, retry_delay_seconds=1.0)
        change_set = await provider.run(request_for(), progress, gate)
    finally:
        await provider.aclose()

    assert [file.path for file in change_set.upserts] == ["a.txt"]
    refusals = fake.storm_refusals
    assert 2 <= refusals <= 6, refusals  # One request per cooldown, not a request per retry loop.
    assert len(fake.requests) == refusals + 1
    assert gate.calls == ["before", "refused"] * refusals + ["before", "answered"]
    assert gate.delays == [1.0] * refusals
    assert [m for m in progress.messages if "429" in m] == [
        f"{TEXT_MODEL} is over its quota (429); it asks to wait 1.0 s"
    ] * refusals


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("reply", "delay"),
    [
        (Reply.rate_limited(None, retry_after="3"), 3.0),
        (Reply.rate_limited(None, retry_after="2.5"), 2.5),
        (Reply.rate_limited(2.0, retry_after="5"), 5.0),  # The longest delay asked for.
        (Reply.rate_limited(7.0, retry_after="5"), 7.0),
        (Reply.failure(429, "Quota exceeded. Please retry in 1500ms."), 1.5),
    ],
    ids=["retry-after", "retry-after-fraction", "header-longer", "retry-info-longer", "message"],
)
async def test_the_delay_a_429_asks_for_goes_to_the_gate(
    fake: FakeGemini, reply: Reply, delay: float
) -> None:
    fake.reply(reply).reply_json_files({"a.txt": "A\n"})
    gate = RecordingGate()

    await run(fake.base_url, request_for(), gate=gate)

    assert gate.delays == [delay]


@pytest.mark.anyio
async def test_a_retry_after_date_is_a_delay_from_now(fake: FakeGemini) -> None:
    fake.reply_rate_limited(None, retry_after=formatdate(time.time() + 30, usegmt=True))
    fake.reply_json_files({"a.txt": "A\n"})
    gate = RecordingGate()

    await run(fake.base_url, request_for(), gate=gate)

    [delay] = gate.delays
    assert delay is not None and 27 <= delay <= 30


@pytest.mark.anyio
async def test_a_used_up_daily_quota_fails_at_once(fake: FakeGemini) -> None:
    fake.reply_daily_quota_exhausted(TEXT_MODEL)
    gate = RecordingGate()

    error, _ = await failure(fake.base_url, request_for(), gate=gate)

    assert len(fake.requests) == 1
    assert (error.reason, error.code, error.retryable) == (
        "MODEL_DAILY_QUOTA_EXHAUSTED",
        "RESOURCE_EXHAUSTED",
        False,
    )
    assert error.message.startswith(f"{TEXT_MODEL} has used up its daily quota")
    # Its RetryInfo (37.5 s) starts no cooldown: waiting would not bring the quota back today.
    assert gate.calls == ["before", "answered"]


@pytest.mark.anyio
async def test_a_daily_quota_named_only_in_the_message_fails_at_once(fake: FakeGemini) -> None:
    fake.reply_error(429, "Quota exceeded for quota metric 'Generate Content API requests per day'")
    gate = RecordingGate()

    error, _ = await failure(fake.base_url, request_for(), gate=gate)

    assert len(fake.requests) == 1
    assert error.reason == "MODEL_DAILY_QUOTA_EXHAUSTED"
    assert "refused" not in gate.calls


@pytest.mark.anyio
async def test_server_errors_still_spend_the_jobs_attempts(fake: FakeGemini) -> None:
    for _ in range(3):
        fake.reply_error(503, "overloaded")
    gate = RecordingGate()

    error, progress = await failure(fake.base_url, request_for(), gate=gate, provider_max_attempts=3)

    assert len(fake.requests) == 3
    assert (error.reason, error.code) == ("MODEL_UNAVAILABLE", "UNAVAILABLE")
    assert "after 3 attempts" in error.message
    assert gate.calls == ["before", "answered"] * 3
    assert len([m for m in progress.messages if "retrying" in m]) == 2


@pytest.mark.anyio
async def test_a_gate_that_gives_up_ends_the_call_with_its_error(fake: FakeGemini) -> None:
    fake.reply_rate_limited(1.0)
    gate = RecordingGate(fails_at=2)

    error, _ = await failure(fake.base_url, request_for(), gate=gate)

    assert error is gate.error
    assert len(fake.requests) == 1
    assert gate.calls == ["before", "refused", "before"]


@pytest.mark.anyio
async def test_the_gate_is_asked_before_every_request_including_the_repair(fake: FakeGemini) -> None:
    fake.reply_raw_text("this is not json")
    fake.reply_error(500, "boom")
    fake.reply_rate_limited(1.0)
    fake.reply_json_files({"a.txt": "A\n"})
    gate = RecordingGate()

    await run(fake.base_url, request_for(), gate=gate)

    assert len(fake.requests) == gate.requests == 4
    assert gate.calls == [
        "before",
        "answered",
        "before",
        "answered",
        "before",
        "refused",
        "before",
        "answered",
    ]


@pytest.mark.anyio
async def test_a_cancelled_request_is_reported_neither_answered_nor_refused(fake: FakeGemini) -> None:
    fake.reply(Reply.json_files({"a.txt": "A\n"}, delay_seconds=1.0))
    gate = RecordingGate()
    provider = GeminiProvider(settings_for(fake.base_url))
    try:
        await provider.ready()
        with anyio.move_on_after(0.2) as scope:
            await provider.run(request_for(), RecordingProgress(), gate)
    finally:
        await provider.aclose()

    assert scope.cancelled_caught
    # The model said nothing: an "answered" would end a cooldown early. (The runner hands a probe
    # a cancelled job held to another job: tests/domain/test_gate.py.)
    assert gate.calls == ["before"]
