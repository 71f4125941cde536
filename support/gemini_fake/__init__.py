"""A local fake of Gemini's REST API, for tests and benchmarks. No network beyond 127.0.0.1.

It serves the two routes google-genai calls for content generation, for any API version:

    POST /{version}/models/{model}:generateContent
    POST /{version}/models/{model}:streamGenerateContent?alt=sse
    POST /{version}/models/{model}:countTokens   ({"totalTokens": N}: `count_tokens`, one per word)

Every request is recorded (`fake.requests`), and each is answered with the next scripted
reply from a FIFO queue, or with the default reply when the queue is empty:

    with FakeGemini() as fake:
        fake.reply_error(429, "slow down")
        fake.reply_json_files({"app.py": "print('hi')\\n"}, summary="wrote app.py")
        settings = replace(settings, gemini_base_url=fake.base_url)
        ...
        assert fake.requests[0].api_key == "test-key"

For load: `latency_seconds` delays every answer, `in_flight` and `peak_in_flight` count the
requests open at once, `requests_per_model` counts them by model, and `storm(until=...)`
answers 429 with a retryDelay to every request until a given time.

One module a question: `_wire` (requests as recorded, encodings), `_replies` (what it answers),
`_server` (the HTTP side and its counters).
"""

from __future__ import annotations

from support.gemini_fake._replies import USAGE, Reply, default_reply
from support.gemini_fake._server import FakeGemini, count_tokens, main
from support.gemini_fake._wire import (
    RecordedRequest,
    b64decode,
    b64encode,
    inline_data_of,
    iter_parts,
    make_png,
)

__all__ = [
    "USAGE",
    "FakeGemini",
    "RecordedRequest",
    "Reply",
    "b64decode",
    "b64encode",
    "count_tokens",
    "default_reply",
    "inline_data_of",
    "iter_parts",
    "main",
    "make_png",
]
