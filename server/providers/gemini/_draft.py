"""DraftPrompt on Gemini: the text model rewrites the caller's text into a prompt for the target model.

The system instruction says what a draft is, then the target model's guidance: how a good
prompt for a model that makes images, or for one that writes files, reads. The user turn
carries the caller's text, its context and the target model's name.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

from google.genai import types

from server.providers._base import DraftAnswer, DraftRequest, ModelGate, ModelUsage, Part, ProviderError, Turn
from server.providers.gemini._call import Caller
from server.providers.gemini._contents import to_content

DRAFT_INSTRUCTION = """\
You are Atelier's prompt writer. You turn what a person wrote into one clear, complete prompt \
for another model, keeping their intent and every specific detail they gave. Follow their \
context or style instruction when there is one. Answer with the prompt alone: no preamble, no \
quotes, no Markdown fences, no explanation."""

# What a good prompt looks like for each kind of target model.
IMAGE_GUIDANCE = """\
The prompt is for {model}, a model that makes images. Describe the scene in full sentences: \
the subject and what it is doing, the setting, the composition and camera angle, the lighting, \
the colours, and the visual style or medium. Say what text, if any, must appear in the image."""
TEXT_GUIDANCE = """\
The prompt is for {model}, a model that writes a small project of files. Say what to build: \
its purpose, the language and main files, the behaviour and inputs and outputs, and any \
constraints on style, dependencies or tests."""


def guidance(request: DraftRequest) -> str:
    """The target model's guidance: how a prompt for it should read."""
    template = IMAGE_GUIDANCE if "image" in request.target_outputs else TEXT_GUIDANCE
    return template.format(model=request.target_model)


def draft_turn(request: DraftRequest) -> Turn:
    text = f"Target model: {request.target_model}\n\nWhat I want:\n{request.text}"
    if request.context.strip():
        text += f"\n\nContext and style:\n{request.context}"
    return Turn(role="user", parts=(Part(text=text),))


async def draft_prompt(caller: Caller, request: DraftRequest, gate: ModelGate) -> DraftAnswer:
    config = types.GenerateContentConfig(
        system_instruction=f"{DRAFT_INSTRUCTION}\n\n{guidance(request)}",
        response_mime_type="text/plain",
    )
    progress = _Quiet()
    call = caller.call(request.model, [to_content(draft_turn(request))], config, progress, gate)
    await call.start()
    answer = await call.receive()
    prompt = answer.text.strip()
    if not prompt:
        raise ProviderError(
            f"{request.model} drafted an empty prompt{answer.cut_off_note}",
            reason="MODEL_OUTPUT_INVALID",
            code="UNAVAILABLE",
            retryable=True,
        )
    return DraftAnswer(prompt=prompt, usage=progress.used)


class _Quiet:
    """A Progress for a call no job makes: it keeps what the model used, and reports nothing."""

    def __init__(self) -> None:
        self.used: ModelUsage | None = None

    @contextlib.asynccontextmanager
    async def stage(self, title: str) -> AsyncIterator[None]:
        yield

    async def message(self, text: str) -> None:
        return None

    async def output(self, paths: Sequence[str]) -> None:
        return None

    def usage(self, usage: ModelUsage) -> None:
        self.used = usage
