"""The fake Gemini API itself (tests/fakes/gemini.py), seen through the real google-genai client."""

from __future__ import annotations

import base64

import pytest
from google import genai
from google.genai import types

from tests.fakes.gemini import FakeGemini, b64decode
from tests.providers.gemini._support import (
    TEXT_MODEL,
    only,
)


def test_the_fake_decodes_both_base64_alphabets() -> None:
    data = b"\xfb\xff\xfe"
    assert b64decode(base64.b64encode(data).decode()) == data
    assert b64decode(base64.urlsafe_b64encode(data).decode().rstrip("=")) == data


@pytest.mark.anyio
async def test_the_fake_also_answers_generate_content(fake: FakeGemini) -> None:
    fake.reply_text("hello there")
    client = genai.Client(
        vertexai=False, api_key="test-key", http_options=types.HttpOptions(base_url=fake.base_url)
    )

    response = await client.aio.models.generate_content(model=TEXT_MODEL, contents="hi")
    await client.aio.aclose()

    assert response.text == "hello there"
    sent = only(fake.requests)
    assert (sent.version, sent.stream, sent.api_key) == ("v1", False, "test-key")  # the SDK default version
