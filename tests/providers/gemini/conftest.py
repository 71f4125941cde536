"""A fake Gemini API for the provider's tests, and an environment that cannot redirect the client."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from support.gemini_fake import FakeGemini


@pytest.fixture(autouse=True)
def _no_google_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing from the developer's environment may redirect or replay the client."""
    for name in (
        "GOOGLE_API_KEY",
        "GEMINI_API_KEY",
        "GOOGLE_GENAI_CLIENT_MODE",
        "GOOGLE_GENAI_REPLAYS_DIRECTORY",
        "GOOGLE_GENAI_REPLAY_ID",
        "GOOGLE_GEMINI_BASE_URL",
        "GOOGLE_GENAI_USE_VERTEXAI",
        "GOOGLE_GENAI_USE_ENTERPRISE",
        "GOOGLE_CLOUD_PROJECT",
        "GOOGLE_CLOUD_LOCATION",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="package")
def _server() -> Iterator[FakeGemini]:
    with FakeGemini(default=None) as server:
        yield server


@pytest.fixture
def fake(_server: FakeGemini) -> Iterator[FakeGemini]:
    # A request an earlier test abandoned (a cancelled call) is still being answered: let it end,
    # so that this test counts its own requests in flight.
    deadline = time.monotonic() + 5
    while _server.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    # No default reply: an unexpected request fails the test with a 500.
    _server.clear()
    _server.latency_seconds = 0.0
    yield _server
    assert _server.pending == 0, "a scripted reply was never asked for"
