"""How the provider calls the model: the client, retries, deadlines, and errors as ProviderErrors."""

from __future__ import annotations

import re
import socket
import time

import anyio
import pytest

from server.files import FileContent
from server.providers.gemini import GeminiProvider, _call
from support.gemini_fake import USAGE, FakeGemini, Reply, inline_data_of, iter_parts
from tests.providers._recording import RecordingProgress
from tests.providers.gemini._support import (
    RED,
    TEXT_MODEL,
    RecordingGate,
    failure,
    only,
    request_for,
    run,
    settings_for,
)


@pytest.mark.anyio
async def test_the_key_comes_from_settings_not_the_environment(
    fake: FakeGemini, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "environment-key")
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", "http://127.0.0.1:9")
    fake.reply_json_files({"a.txt": "A\n"})

    await run(fake.base_url, request_for())

    assert only(fake.requests).api_key == "test-key"


# The gate's budgets.


@pytest.mark.anyio
async def test_each_request_takes_its_estimated_input_tokens_and_the_models_count_corrects_them(
    fake: FakeGemini,
) -> None:
    fake.reply_error(429, "Resource has been exhausted")
    fake.reply_json_files({"a.txt": "A\n"})  # reports 12 input tokens (USAGE)
    gate = RecordingGate()
    request = request_for("draw me a sunset, " * 40, attachments=[FileContent("red.png", "image/png", RED)])

    await run(fake.base_url, request, gate=gate)

    sent = fake.requests[0]
    texts = [sent.system_instruction_text, *(p["text"] for _, p in iter_parts(sent.contents) if "text" in p)]
    images = [p for _, p in iter_parts(sent.contents) if inline_data_of(p) is not None]
    # About 4 bytes of text a token, and Gemini's 258 tokens an image: no request to count them.
    expected = -(-len("".join(texts).encode()) // 4) + 258 * len(images)
    assert len(images) == 1 and expected > 258 + 180
    assert gate.input_tokens == [expected, expected]  # the refused request, then the answered one
    assert gate.counts == [(expected, USAGE["promptTokenCount"])]


# Retries and failures.


@pytest.mark.anyio
async def test_a_rate_limit_is_reported_to_the_gate_then_the_request_is_sent_again(fake: FakeGemini) -> None:
    fake.reply_error(429, "Resource has been exhausted")
    fake.reply_json_files({"a.txt": "A\n"})
    gate = RecordingGate()

    change_set, progress = await run(fake.base_url, request_for(), gate=gate)

    assert len(fake.requests) == 2
    assert fake.requests[0].body == fake.requests[1].body
    assert [file.path for file in change_set.upserts] == ["a.txt"]
    assert gate.calls == ["before", "refused", "before", "answered"]
    assert gate.delays == [None]  # The answer asked for no delay: the gate picks its own.
    assert [m for m in progress.messages if "429" in m] == [f"{TEXT_MODEL} is over its quota (429)"]
    assert not any("retrying" in m for m in progress.messages)
    assert progress.clean_run() == ["Send", "Receive", "Parse"]


@pytest.mark.anyio
async def test_server_errors_on_every_try_end_unavailable(fake: FakeGemini) -> None:
    for _ in range(3):
        fake.reply_error(500, "internal error")

    error, progress = await failure(fake.base_url, request_for(), provider_max_attempts=3)

    assert len(fake.requests) == 3
    assert (error.reason, error.code, error.retryable) == ("MODEL_UNAVAILABLE", "UNAVAILABLE", True)
    assert "after 3 attempts" in error.message and "internal error" in error.message
    assert [m for m in progress.messages if "retrying" in m] == [
        m for m in progress.messages if re.fullmatch(r"model unavailable \(500\), retrying in .*", m)
    ]
    assert len([m for m in progress.messages if "retrying" in m]) == 2


@pytest.mark.anyio
async def test_rate_limits_spend_no_attempts(fake: FakeGemini) -> None:
    for _ in range(3):
        fake.reply_error(429, "quota exceeded")
    fake.reply_json_files({"a.txt": "A\n"})
    gate = RecordingGate()

    change_set, _ = await run(fake.base_url, request_for(), gate=gate, provider_max_attempts=1)

    assert len(fake.requests) == 4
    assert [file.path for file in change_set.upserts] == ["a.txt"]
    assert gate.calls == ["before", "refused"] * 3 + ["before", "answered"]


@pytest.mark.anyio
async def test_a_broken_stream_is_retried(fake: FakeGemini) -> None:
    fake.reply_mid_stream_error(503, "overloaded")
    fake.reply_json_files({"a.txt": "A\n"})

    change_set, progress = await run(fake.base_url, request_for())

    assert len(fake.requests) == 2
    assert [file.path for file in change_set.upserts] == ["a.txt"]
    assert any(m.startswith("model unavailable (503), retrying in") for m in progress.messages)
    # The merged turn holds the successful answer only.
    assert len(change_set.turns) == 2


@pytest.mark.anyio
async def test_a_refused_key_fails_at_once_with_a_clear_message(fake: FakeGemini) -> None:
    fake.reply_error(403, "Method doesn't allow unregistered callers.")

    error, _ = await failure(fake.base_url, request_for())

    assert len(fake.requests) == 1
    assert (error.reason, error.code) == ("MODEL_PERMISSION_DENIED", "PERMISSION_DENIED")
    assert error.message.startswith(f"the Gemini API key was refused for model {TEXT_MODEL}: ")
    assert "Method doesn't allow unregistered callers." in error.message
    assert "check that the key is valid" in error.message


@pytest.mark.anyio
async def test_an_invalid_key_400_is_a_refused_key(fake: FakeGemini) -> None:
    body = {
        "error": {
            "code": 400,
            "message": "API key not valid. Please pass a valid API key.",
            "status": "INVALID_ARGUMENT",
            "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}],
        }
    }
    fake.reply(Reply(status=400, error=body))

    error, _ = await failure(fake.base_url, request_for())

    assert (error.reason, error.code) == ("MODEL_PERMISSION_DENIED", "PERMISSION_DENIED")
    assert "API key not valid" in error.message


@pytest.mark.anyio
async def test_a_bad_request_is_invalid_argument_with_the_models_message(fake: FakeGemini) -> None:
    fake.reply_error(400, "Unsupported MIME type: application/x-nonsense")

    error, _ = await failure(fake.base_url, request_for())

    assert len(fake.requests) == 1
    assert (error.reason, error.code) == ("MODEL_INVALID_ARGUMENT", "INVALID_ARGUMENT")
    assert "Unsupported MIME type: application/x-nonsense" in error.message


@pytest.mark.anyio
async def test_an_unknown_model_is_not_found(fake: FakeGemini) -> None:
    fake.reply_error(404, "models/gemini-9 is not found for API version v1beta")

    error, _ = await failure(fake.base_url, request_for(model="gemini-9"))

    assert len(fake.requests) == 1
    assert (error.reason, error.code) == ("MODEL_NOT_FOUND", "FAILED_PRECONDITION")
    assert "gemini-9" in error.message and "is not found" in error.message


@pytest.mark.anyio
async def test_an_answer_without_candidates_fails(fake: FakeGemini) -> None:
    fake.reply_no_candidates()

    error, _ = await failure(fake.base_url, request_for())

    assert len(fake.requests) == 1
    assert (error.reason, error.code) == ("MODEL_NO_CANDIDATES", "UNAVAILABLE")


@pytest.mark.anyio
async def test_a_blocked_prompt_fails_with_its_reason(fake: FakeGemini) -> None:
    fake.reply_blocked("PROHIBITED_CONTENT")

    error, _ = await failure(fake.base_url, request_for())

    assert (error.reason, error.code) == ("MODEL_SAFETY_BLOCKED", "FAILED_PRECONDITION")
    assert "PROHIBITED_CONTENT" in error.message


@pytest.mark.anyio
async def test_a_withheld_answer_fails_with_its_finish_reason(fake: FakeGemini) -> None:
    fake.reply_blocked("SAFETY", in_prompt=False)

    error, _ = await failure(fake.base_url, request_for())

    assert (error.reason, error.code) == ("MODEL_SAFETY_BLOCKED", "FAILED_PRECONDITION")
    assert "finish reason SAFETY" in error.message


@pytest.mark.anyio
async def test_a_dead_endpoint_is_retried_then_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port any more.

    error, progress = await failure(f"http://127.0.0.1:{port}", request_for(), provider_max_attempts=2)

    assert (error.reason, error.code) == ("MODEL_UNAVAILABLE", "UNAVAILABLE")
    assert any(m.startswith("connection to the model failed") for m in progress.messages)


@pytest.mark.anyio
async def test_a_slow_answer_times_out_and_is_retried(fake: FakeGemini) -> None:
    fake.reply(Reply.json_files({"slow.txt": "late\n"}, delay_seconds=0.6))
    fake.reply_json_files({"a.txt": "A\n"})

    change_set, progress = await run(fake.base_url, request_for(), gemini_timeout_seconds=0.2)

    assert len(fake.requests) == 2
    assert [file.path for file in change_set.upserts] == ["a.txt"]
    assert any(m.startswith("model timed out, retrying in") for m in progress.messages)


@pytest.mark.anyio
async def test_cancelling_stops_the_call_promptly(fake: FakeGemini) -> None:
    fake.reply(Reply.json_files({"a.txt": "A\n"}, delay_seconds=1.0))
    provider = GeminiProvider(settings_for(fake.base_url))
    try:
        await provider.ready()
        started = time.monotonic()
        with anyio.move_on_after(0.2) as scope:
            await provider.run(request_for(), RecordingProgress())
        stopped = time.monotonic()
    finally:
        await provider.aclose()

    assert scope.cancelled_caught
    assert stopped - started < 1.0  # the answer would have come 1 s after the request


# Progress.


@pytest.mark.anyio
async def test_receive_reports_progress_as_chunks_arrive(
    fake: FakeGemini, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_call, "_RECEIVE_REPORT_SECONDS", 0.0)
    fake.reply_json_files({"a.txt": "A\n"})

    _, progress = await run(fake.base_url, request_for())

    receiving = [event[2] for event in progress.events if event[:2] == ("message", "Receive")]
    assert len(receiving) == 3
    assert all(re.fullmatch(r"received \d+ characters so far", m) for m in receiving[:2])
    assert receiving[2].startswith("received ") and "in 3 chunks" in receiving[2]
