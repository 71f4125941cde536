"""What the provider reports while the model works: each request's usage for the ledger, the
model's thought summaries, and how much it has produced, coalesced."""

from __future__ import annotations

import dataclasses
import re

import pytest

from server.providers import ModelUsage, Part, ProviderError
from server.providers.gemini import GeminiProvider, _call
from server.providers.gemini._received import THOUGHT_SUMMARY_CHARACTERS
from support.gemini_fake import FakeGemini, Reply
from tests.providers._recording import RecordingProgress
from tests.providers.gemini._support import (
    IMAGE_MODEL,
    RED,
    TEXT_MODEL,
    RecordingGate,
    asks_for_thoughts,
    request_for,
    run,
    settings_for,
)

# The fake's USAGE, as the ledger holds it.
FAKE_USAGE = ModelUsage(input_tokens=12, output_tokens=34, thinking_tokens=56)


def receiving(progress: RecordingProgress) -> list[str]:
    return [event[2] for event in progress.events if event[:2] == ("message", "Receive")]


# Usage.


@pytest.mark.anyio
async def test_each_request_reports_its_usage_from_its_last_chunk(fake: FakeGemini) -> None:
    fake.reply_json_files({"a.txt": "A\n"})

    change_set, progress = await run(fake.base_url, request_for())

    # The earlier chunks report the prompt only; the last one is the whole request's.
    assert progress.usages == [FAKE_USAGE]
    assert "tokens: 12 in, 34 out, 56 thinking" in change_set.notes


@pytest.mark.anyio
async def test_the_repair_request_reports_its_usage_too(fake: FakeGemini) -> None:
    fake.reply_raw_text("this is not json")
    fake.reply(
        dataclasses.replace(
            Reply.json_files({"a.txt": "A\n"}),
            chunks=(
                {
                    **Reply.json_files({"a.txt": "A\n"}, pieces=1).chunks[0],
                    "usageMetadata": {
                        "promptTokenCount": 100,
                        "candidatesTokenCount": 20,
                        "totalTokenCount": 120,
                    },
                },
            ),
        )
    )

    _, progress = await run(fake.base_url, request_for())

    assert progress.usages == [FAKE_USAGE, ModelUsage(input_tokens=100, output_tokens=20, thinking_tokens=0)]


@pytest.mark.anyio
async def test_a_request_without_an_answer_reports_its_usage_and_a_refusal_none(fake: FakeGemini) -> None:
    fake.reply_rate_limited(1.0)  # No usage: the model did not run.
    fake.reply_no_candidates()  # Usage, then no answer.
    provider = GeminiProvider(settings_for(fake.base_url))
    progress = RecordingProgress()
    try:
        with pytest.raises(ProviderError, match="no candidates"):
            await provider.run(request_for(), progress, RecordingGate())
    finally:
        await provider.aclose()

    assert len(fake.requests) == 2
    assert progress.usages == [FAKE_USAGE]


# Thoughts and the amount produced.


@pytest.mark.anyio
async def test_thought_summaries_and_the_amount_produced_are_reported(
    fake: FakeGemini, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_call, "_RECEIVE_REPORT_SECONDS", 0.0)
    fake.reply_json_files(
        {"a.txt": "A\n"},
        thoughts=(
            "**Planning the files**\n\nThe user wants a file.",
            " I will call it a.txt.",  # The same thought, continued: nothing new to say.
            "**Writing a.txt**\n\nOne line.",
        ),
    )

    change_set, progress = await run(fake.base_url, request_for())

    messages = receiving(progress)
    # The first thought arrives during Send; its continuation brings nothing new to say, and the
    # answer's three chunks each grow the amount.
    assert messages[:2] == ["thinking: Planning the files", "thinking: Writing a.txt"]
    assert all(re.fullmatch(r"received \d+ characters so far", m) for m in messages[2:5])
    assert re.fullmatch(r"received \d+ characters in 6 chunks \(finish reason STOP\)", messages[5])
    assert len(messages) == 6
    assert not any("I will call it" in m for m in progress.messages)
    # The summaries were for progress: they do not go into the turn sent back as history.
    assert not any(part.thought for part in change_set.turns[-1].parts)
    assert [file.path for file in change_set.upserts] == ["a.txt"]


@pytest.mark.anyio
async def test_a_long_thought_is_cut_short(fake: FakeGemini, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_call, "_RECEIVE_REPORT_SECONDS", 0.0)
    long_thought = "I am weighing " + "many options " * 40 + "\n\nThen more."
    fake.reply_json_files({"a.txt": "A\n"}, thoughts=("**Start**\n\nA plan.", f"**{long_thought}"))

    _, progress = await run(fake.base_url, request_for())

    [summary] = [m for m in receiving(progress) if m.startswith("thinking: I am weighing")]
    assert len(summary) == len("thinking: ") + THOUGHT_SUMMARY_CHARACTERS
    assert summary.endswith("\u2026")


@pytest.mark.anyio
async def test_reports_are_coalesced_to_two_a_second(fake: FakeGemini) -> None:
    # 30 chunks over about 1.5 s.
    fake.reply(
        dataclasses.replace(Reply.json_files({"a.txt": "A" * 300}, pieces=30), chunk_delay_seconds=0.05)
    )

    _, progress = await run(fake.base_url, request_for())

    so_far = [m for m in receiving(progress) if m.endswith("so far")]
    assert 1 <= len(so_far) <= 4, so_far
    counts = [int(m.split()[1]) for m in so_far]
    assert counts == sorted(counts) and len(set(counts)) == len(counts)


@pytest.mark.anyio
async def test_image_bytes_are_reported_as_produced(
    fake: FakeGemini, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_call, "_RECEIVE_REPORT_SECONDS", 0.0)
    fake.reply_image(RED, text="Here it is.")

    _, progress = await run(fake.base_url, request_for(model=IMAGE_MODEL))

    assert f"received 11 characters and {len(RED)} bytes of images so far" in receiving(progress)


@pytest.mark.anyio
async def test_a_thoughts_signature_stays_in_the_turn_without_its_text(fake: FakeGemini) -> None:
    reply = Reply.json_files({"a.txt": "A\n"}, thoughts=("**Planning**\n\nA plan.",))
    signed = {**reply.chunks[0]}
    signed["candidates"] = [
        {
            **signed["candidates"][0],
            "content": {
                "role": "model",
                "parts": [{"text": "**Planning**", "thought": True, "thoughtSignature": "c2ln"}],
            },
        }
    ]
    fake.reply(dataclasses.replace(reply, chunks=(signed, *reply.chunks[1:])))

    change_set, _ = await run(fake.base_url, request_for())

    model_turn = change_set.turns[-1]
    assert model_turn.parts[0] == Part(text="", thought=True, thought_signature=b"sig")
    assert not any(part.thought for part in model_turn.parts[1:])


# A text model that does not think.


@pytest.mark.anyio
async def test_a_model_that_does_not_think_is_asked_again_without_thoughts(fake: FakeGemini) -> None:
    fake.reply_error(400, f"Thinking is not enabled for models/{TEXT_MODEL}")
    fake.reply_json_files({"a.txt": "A\n"})
    fake.reply_json_files({"b.txt": "B\n"})
    gate = RecordingGate()
    provider = GeminiProvider(settings_for(fake.base_url, provider_max_attempts=1))
    try:
        first = await provider.run(request_for(), RecordingProgress(), gate)
        second = await provider.run(request_for(), RecordingProgress())
    finally:
        await provider.aclose()

    assert [file.path for file in first.upserts] == ["a.txt"]
    assert [file.path for file in second.upserts] == ["b.txt"]
    configs = [request.generation_config for request in fake.requests]
    assert [asks_for_thoughts(request) for request in fake.requests] == [True, False, False]
    # Not an attempt spent, and the provider remembers: the next call asks without at once.
    assert "thinkingConfig" not in configs[1] and "thinkingConfig" not in configs[2]
    assert configs[1]["responseMimeType"] == "application/json"
    assert gate.calls == ["before", "answered", "before", "answered"]
