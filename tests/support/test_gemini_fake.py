"""The Gemini fake itself (support/gemini_fake.py), apart from any code of ours that calls it."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from google import genai
from google.genai import types
from google.genai.client import DebugConfig

from support.gemini_fake import FakeGemini, b64decode

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
