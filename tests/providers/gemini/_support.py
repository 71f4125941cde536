"""Running the Gemini provider against the fake API, and reading what it sent."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import pytest

from server.config import Settings
from server.files import FileContent
from server.providers._base import (
    ChangeSet,
    JobKind,
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


async def run(base_url: str, request: ProviderRequest, **changes: Any) -> tuple[ChangeSet, RecordingProgress]:
    provider = GeminiProvider(settings_for(base_url, **changes))
    progress = RecordingProgress()
    try:
        return await provider.run(request, progress), progress
    finally:
        await provider.aclose()


async def failure(
    base_url: str, request: ProviderRequest, **changes: Any
) -> tuple[ProviderError, RecordingProgress]:
    provider = GeminiProvider(settings_for(base_url, **changes))
    progress = RecordingProgress()
    try:
        with pytest.raises(ProviderError) as caught:
            await provider.run(request, progress)
    finally:
        await provider.aclose()
    return caught.value, progress


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


def only(requests: list[RecordedRequest]) -> RecordedRequest:
    assert len(requests) == 1, [r.path for r in requests]
    return requests[0]
