"""DraftPrompt on Gemini: what the text model is sent (through the fake API) and what the draft is."""

from __future__ import annotations

import pytest

from server.providers._base import DraftRequest, ModelUsage, ProviderError
from server.providers.gemini import GeminiProvider
from server.providers.gemini._draft import IMAGE_GUIDANCE, TEXT_GUIDANCE
from support.gemini_fake import USAGE, FakeGemini
from tests.providers.gemini._support import IMAGE_MODEL, TEXT_MODEL, only, settings_for


async def _draft(fake: FakeGemini, request: DraftRequest) -> tuple[str, ModelUsage | None]:
    provider = GeminiProvider(settings_for(fake.base_url))
    try:
        answer = await provider.draft(request)
    finally:
        await provider.aclose()
    return answer.prompt, answer.usage


@pytest.mark.anyio
async def test_the_text_model_gets_the_text_the_context_and_the_target_models_guidance(
    fake: FakeGemini,
) -> None:
    fake.reply_text("  A red fox in fresh snow at dawn, watercolour, soft light.\n")
    request = DraftRequest(
        text="a fox in snow",
        context="watercolour, for a children's book",
        model=TEXT_MODEL,
        target_model=IMAGE_MODEL,
        target_outputs=("text", "image"),
    )

    prompt, usage = await _draft(fake, request)

    sent = only(fake.requests)
    # The text model drafts, whatever the target.
    assert sent.path == f"/v1beta/models/{TEXT_MODEL}:streamGenerateContent"
    (user_text,) = [part["text"] for content in sent.contents for part in content["parts"]]
    assert "a fox in snow" in user_text
    assert "watercolour, for a children's book" in user_text
    assert f"Target model: {IMAGE_MODEL}" in user_text
    assert IMAGE_GUIDANCE.format(model=IMAGE_MODEL) in sent.system_instruction_text
    assert "prompt writer" in sent.system_instruction_text
    assert sent.generation_config["responseMimeType"] == "text/plain"
    # The answer, trimmed, is the draft; the usage is the model's.
    assert prompt == "A red fox in fresh snow at dawn, watercolour, soft light."
    assert usage == ModelUsage(
        input_tokens=USAGE["promptTokenCount"],
        output_tokens=USAGE["candidatesTokenCount"],
        thinking_tokens=USAGE["thoughtsTokenCount"],
    )


@pytest.mark.anyio
async def test_a_text_target_gets_its_own_guidance_and_no_context_section(fake: FakeGemini) -> None:
    fake.reply_text("Write a Python CLI that greets the user by name.")
    request = DraftRequest(text="greeter cli", context="", model=TEXT_MODEL, target_model=TEXT_MODEL)

    prompt, _ = await _draft(fake, request)

    sent = only(fake.requests)
    assert TEXT_GUIDANCE.format(model=TEXT_MODEL) in sent.system_instruction_text
    assert IMAGE_GUIDANCE.format(model=TEXT_MODEL) not in sent.system_instruction_text
    (user_text,) = [part["text"] for content in sent.contents for part in content["parts"]]
    assert "greeter cli" in user_text and "Context" not in user_text
    assert prompt == "Write a Python CLI that greets the user by name."


@pytest.mark.anyio
async def test_an_empty_draft_or_a_refusal_is_a_provider_error(fake: FakeGemini) -> None:
    request = DraftRequest(text="x", context="", model=TEXT_MODEL, target_model=TEXT_MODEL)
    fake.reply_text("   ")
    with pytest.raises(ProviderError) as caught:
        await _draft(fake, request)
    assert caught.value.reason == "MODEL_OUTPUT_INVALID"
    fake.reply_blocked("SAFETY")
    with pytest.raises(ProviderError) as caught:
        await _draft(fake, request)
    assert (caught.value.reason, caught.value.code) == ("MODEL_SAFETY_BLOCKED", "FAILED_PRECONDITION")
