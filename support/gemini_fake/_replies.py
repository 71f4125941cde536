"""What the fake answers: scripted replies in the shapes the real service uses.

A streamed reply sends one whole response object per server-sent event, the last one with a
finishReason and the answer's whole usage, like the real service. Errors carry Google's error
body, and quota refusals the details the real one sends (google.rpc.QuotaFailure, RetryInfo).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from support.gemini_fake._wire import JsonObject, RecordedRequest, b64encode, make_png

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
# What every answer used, as its last chunk reports it (input, output and thinking are distinct,
# so a test sees which is which).
USAGE = {"promptTokenCount": 12, "candidatesTokenCount": 34, "thoughtsTokenCount": 56, "totalTokenCount": 102}
# What the chunks before the last report: the prompt only, as the real stream does.
_PARTIAL_USAGE = {"promptTokenCount": 12, "totalTokenCount": 12}
_QUOTA_HELP = (
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits."
)


@dataclass(frozen=True, slots=True)
class Reply:
    """A scripted answer: an error status, or response objects (streamed one per event)."""

    status: int = 200
    # For status 200: the response objects. generateContent merges them into one.
    chunks: tuple[JsonObject, ...] = ()
    # For any other status: the error body.
    error: JsonObject | None = None
    # Sent as a server-sent event after the chunks (a mid-stream failure).
    stream_error: JsonObject | None = None
    # Waited before answering (on top of the fake's latency), and between streamed events.
    delay_seconds: float = 0.0
    chunk_delay_seconds: float = 0.0
    # Extra response headers, e.g. Retry-After.
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def text(
        cls,
        text: str,
        *,
        pieces: int = 3,
        finish_reason: str = "STOP",
        delay_seconds: float = 0.0,
        thoughts: Sequence[str] = (),
    ) -> Reply:
        """A text answer, split into up to `pieces` streamed chunks, after one chunk per thought
        summary (a part with "thought": true, as a model asked to include its thoughts sends)."""
        size = max(1, -(-len(text) // max(1, pieces)))
        slices = [text[start : start + size] for start in range(0, len(text), size)] or [""]
        chunks = [_candidate_chunk([{"text": thought, "thought": True}]) for thought in thoughts]
        chunks.extend(_candidate_chunk([{"text": piece}]) for piece in slices)
        return cls(chunks=_finished(chunks, finish_reason), delay_seconds=delay_seconds)

    @classmethod
    def json_files(
        cls,
        files: Mapping[str, str | bytes],
        *,
        summary: str = "made the files",
        deletions: Sequence[str] = (),
        pieces: int = 3,
        delay_seconds: float = 0.0,
        thoughts: Sequence[str] = (),
    ) -> Reply:
        """An answer whose text is a JSON change set (bytes values are sent as base64)."""
        upserts = [
            {"path": path, "content": b64encode(content), "encoding": "base64", "mime_type": ""}
            if isinstance(content, bytes)
            else {"path": path, "content": content, "encoding": "text", "mime_type": ""}
            for path, content in files.items()
        ]
        document = {"summary": summary, "upserts": upserts, "deletions": list(deletions)}
        return cls.text(json.dumps(document), pieces=pieces, delay_seconds=delay_seconds, thoughts=thoughts)

    @classmethod
    def image(
        cls,
        data: bytes,
        *,
        text: str = "",
        mime_type: str = "image/png",
        thought_signature: bytes | None = b"fake-signature",
        delay_seconds: float = 0.0,
    ) -> Reply:
        """An image answer: an optional text chunk, then the image part carrying a thought signature."""
        image_part: JsonObject = {"inlineData": {"mimeType": mime_type, "data": b64encode(data)}}
        if thought_signature is not None:
            image_part["thoughtSignature"] = b64encode(thought_signature)
        chunks = [_candidate_chunk([{"text": text}])] if text else []
        chunks.append(_candidate_chunk([image_part]))
        return cls(chunks=_finished(chunks, "STOP"), delay_seconds=delay_seconds)

    @classmethod
    def failure(cls, status: int, message: str, *, delay_seconds: float = 0.0) -> Reply:
        """An HTTP error with Google's error body."""
        return cls(status=status, error=_error_body(status, message), delay_seconds=delay_seconds)

    @classmethod
    def rate_limited(
        cls,
        retry_delay_seconds: float | None = 1.0,
        *,
        retry_after: str | None = None,
        model: str = "gemini-2.5-flash",
    ) -> Reply:
        """A 429 for a per-minute quota, as Gemini sends it: a QuotaFailure and, unless
        `retry_delay_seconds` is None, a RetryInfo with that retryDelay (and the message's
        "Please retry in" sentence). `retry_after` is sent as the Retry-After header, as is."""
        quota_id = "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"
        body = _quota_refusal(quota_id, model, limit=10, retry_delay_seconds=retry_delay_seconds)
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        return cls(status=429, error=body, headers=headers)

    @classmethod
    def daily_quota_exhausted(cls, model: str = "gemini-2.5-flash") -> Reply:
        """A 429 for a used-up daily quota, as Gemini sends it: its QuotaFailure names a PerDay
        quota, and it still carries a short RetryInfo (which waiting would not honour)."""
        quota_id = "GenerateRequestsPerDayPerProjectPerModel-FreeTier"
        body = _quota_refusal(quota_id, model, limit=250, retry_delay_seconds=37.5)
        return cls(status=429, error=body)

    @classmethod
    def no_candidates(cls) -> Reply:
        return cls(chunks=({"usageMetadata": dict(USAGE), "modelVersion": "fake"},))

    @classmethod
    def blocked(cls, reason: str = "SAFETY", *, in_prompt: bool = True) -> Reply:
        """A prompt blocked (promptFeedback.blockReason), or an answer stopped (finishReason)."""
        if in_prompt:
            return cls(chunks=({"promptFeedback": {"blockReason": reason}, "usageMetadata": dict(USAGE)},))
        chunk = {"candidates": [{"finishReason": reason, "index": 0}], "usageMetadata": dict(USAGE)}
        return cls(chunks=(chunk,))

    @classmethod
    def mid_stream_error(cls, status: int, message: str, *, text: str = "{") -> Reply:
        """Some text, then an error event in the middle of the stream."""
        return cls(chunks=(_candidate_chunk([{"text": text}]),), stream_error=_error_body(status, message))


def _candidate_chunk(parts: list[JsonObject]) -> JsonObject:
    return {
        "candidates": [{"content": {"role": "model", "parts": parts}, "index": 0}],
        "modelVersion": "fake",
    }


def _finished(chunks: list[JsonObject], finish_reason: str) -> tuple[JsonObject, ...]:
    for chunk in chunks[:-1]:
        chunk["usageMetadata"] = dict(_PARTIAL_USAGE)
    chunks[-1]["candidates"][0]["finishReason"] = finish_reason
    chunks[-1]["usageMetadata"] = dict(USAGE)
    return tuple(chunks)


def _error_body(status: int, message: str, details: Sequence[JsonObject] = ()) -> JsonObject:
    error: JsonObject = {"code": status, "message": message, "status": STATUS_NAMES.get(status, "UNKNOWN")}
    if details:
        error["details"] = list(details)
    return {"error": error}


def _quota_refusal(quota_id: str, model: str, *, limit: int, retry_delay_seconds: float | None) -> JsonObject:
    """The error body of a 429 for one quota, with a RetryInfo unless the delay is None."""
    metric = "generativelanguage.googleapis.com/generate_content_free_tier_requests"
    message = f"{_QUOTA_HELP}\n* Quota exceeded for metric: {metric}, limit: {limit}, model: {model}"
    violation = {
        "quotaMetric": metric,
        "quotaId": quota_id,
        "quotaDimensions": {"location": "global", "model": model},
        "quotaValue": str(limit),
    }
    details: list[JsonObject] = [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [violation]}
    ]
    if retry_delay_seconds is not None:
        message += f"\nPlease retry in {retry_delay_seconds:g}s."
        details.append(
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_delay_seconds:g}s"}
        )
    return _error_body(429, message, details)


def default_reply(request: RecordedRequest) -> Reply:
    """What the fake answers when nothing is queued: an image for image models, else one file."""
    if "image" in request.model:
        return Reply.image(make_png(), text="Here is the picture.")
    return Reply.json_files({"README.md": "# Hello\n\nMade by the fake Gemini.\n"}, summary="wrote README.md")


def merged(chunks: Sequence[JsonObject]) -> JsonObject:
    """The one response generateContent gives for what streamGenerateContent sends in chunks."""
    response: JsonObject = {}
    parts: list[JsonObject] = []
    candidate: JsonObject | None = None
    for chunk in chunks:
        for key, value in chunk.items():
            if key != "candidates":
                response[key] = value
        for found in chunk.get("candidates", [])[:1]:
            candidate = {**(candidate or {}), **{k: v for k, v in found.items() if k != "content"}}
            parts.extend(found.get("content", {}).get("parts", []))
    if candidate is not None:
        if parts:
            candidate["content"] = {"role": "model", "parts": parts}
        response["candidates"] = [candidate]
    return response
