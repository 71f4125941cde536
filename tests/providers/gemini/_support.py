"""Running the Gemini provider against the fake API, and reading what it sent."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import anyio
import pytest

from server.config import Settings
from server.files import FileContent
from server.providers._base import (
    OPEN_GATE,
    ChangeSet,
    JobKind,
    ModelGate,
    ProviderError,
    ProviderRequest,
    Turn,
)
from server.providers.gemini import GeminiProvider
from support.gemini_fake import RecordedRequest, b64decode, inline_data_of, make_png
from tests.providers._recording import RecordingProgress

TEXT_MODEL = "gemini-2.5-flash"

IMAGE_MODEL = "gemini-2.5-flash-image"

RED = make_png(rgb=(220, 30, 30))

BLUE = make_png(3, 3, rgb=(20, 40, 220))


def settings_for(base_url: str, **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "provider": "gemini",
        "gemini_api_key": "test-key",
        "gemini_base_url": base_url,
        "gemini_timeout_seconds": 5.0,
        "provider_backoff_initial_seconds": 0.01,
        "provider_backoff_max_seconds": 0.05,
        **changes,
    }
    return dataclasses.replace(Settings(), **values)


def request_for(
    prompt: str = "a hello world script",
    *,
    kind: JobKind = JobKind.GENERATE,
    model: str = TEXT_MODEL,
    attachments: Sequence[FileContent] = (),
    source_files: Sequence[FileContent] = (),
    history: Sequence[Turn] = (),
    system_instruction: str = "",
) -> ProviderRequest:
    return ProviderRequest(
        kind=kind,
        prompt=prompt,
        model=model,
        attachments=attachments,
        source_files=source_files,
        history=history,
        system_instruction=system_instruction,
    )


async def run(
    base_url: str, request: ProviderRequest, *, gate: ModelGate = OPEN_GATE, **changes: Any
) -> tuple[ChangeSet, RecordingProgress]:
    provider = GeminiProvider(settings_for(base_url, **changes))
    progress = RecordingProgress()
    try:
        # The fake's timed scripts (a storm's end) count from when requests can go out.
        await provider.ready()
        return await provider.run(request, progress, gate), progress
    finally:
        await provider.aclose()


async def failure(
    base_url: str, request: ProviderRequest, *, gate: ModelGate = OPEN_GATE, **changes: Any
) -> tuple[ProviderError, RecordingProgress]:
    provider = GeminiProvider(settings_for(base_url, **changes))
    progress = RecordingProgress()
    try:
        with pytest.raises(ProviderError) as caught:
            await provider.run(request, progress, gate)
    finally:
        await provider.aclose()
    return caught.value, progress


class RecordingGate:
    """A ModelGate for one job: records what the provider tells it, checks that every request it
    lets out is reported exactly once, and waits out a refusal's delay times `time_scale`.

    `fails_at` makes the n-th before_request (1-based) raise, as a gate does when a job has
    waited too long.
    """

    def __init__(self, *, time_scale: float = 0.0, fails_at: int | None = None) -> None:
        self.calls: list[str] = []
        self.delays: list[float | None] = []
        # The input tokens each request was estimated at, and each (estimated, actual) count.
        self.input_tokens: list[int] = []
        self.counts: list[tuple[int, int]] = []
        self.error = ProviderError(
            "gemini-2.5-flash: waited too long", reason="MODEL_QUOTA_EXHAUSTED", code="RESOURCE_EXHAUSTED"
        )
        self._time_scale = time_scale
        self._fails_at = fails_at
        self._out = False
        self._cool_until = 0.0

    @property
    def requests(self) -> int:
        return self.calls.count("before")

    async def before_request(self, input_tokens: int = 0) -> None:
        assert not self._out, "a request went out before the previous one was reported"
        self.calls.append("before")
        self.input_tokens.append(input_tokens)
        if self.requests == self._fails_at:
            raise self.error
        await anyio.sleep(max(0.0, self._cool_until - time.monotonic()))
        self._out = True

    def answered(self) -> None:
        assert self._out, "answered() without a request"
        self._out = False
        self.calls.append("answered")

    def refused(self, *, retry_after: float | None) -> None:
        assert self._out, "refused() without a request"
        self._out = False
        self.calls.append("refused")
        self.delays.append(retry_after)
        self._cool_until = time.monotonic() + (retry_after or 0.0) * self._time_scale

    def tokens_counted(self, *, estimated: int, actual: int) -> None:
        self.counts.append((estimated, actual))


def wire_parts(content: dict[str, Any]) -> list[tuple[str, Any]]:
    """A content's parts as comparable (kind, value) pairs, decoding inline data and signatures."""
    found: list[tuple[str, Any]] = []
    for part in content["parts"]:
        blob = inline_data_of(part)
        if blob is not None:
            found.append(("data", blob))
        elif "text" in part:
            found.append(("text", part["text"]))
        if "thoughtSignature" in part:
            found.append(("signature", b64decode(part["thoughtSignature"])))
    return found


def asks_for_thoughts(request: RecordedRequest) -> bool:
    """Whether the request asks for the model's thought summaries. google-genai 3.4 spells the
    field include_thoughts on the wire; Google's JSON parser takes either spelling."""
    thinking = request.generation_config.get("thinkingConfig") or {}
    return thinking.get("includeThoughts", thinking.get("include_thoughts")) is True


def only(requests: list[RecordedRequest]) -> RecordedRequest:
    assert len(requests) == 1, [r.path for r in requests]
    return requests[0]
