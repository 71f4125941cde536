"""A local fake of Gemini's REST API, for tests and benchmarks. No network beyond 127.0.0.1.

It serves the two routes google-genai calls for content generation, for any API version:

    POST /{version}/models/{model}:generateContent
    POST /{version}/models/{model}:streamGenerateContent?alt=sse

Every request is recorded (`fake.requests`), and each is answered with the next scripted
reply from a FIFO queue, or with the default reply when the queue is empty:

    with FakeGemini() as fake:
        fake.reply_error(429, "slow down")
        fake.reply_json_files({"app.py": "print('hi')\\n"}, summary="wrote app.py")
        settings = replace(settings, gemini_base_url=fake.base_url)
        ...
        assert fake.requests[0].api_key == "test-key"

A streamed reply sends one whole response object per server-sent event
(`data: {json}\\r\\n\\r\\n`), the last one with a finishReason, like the real service.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import struct
import threading
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

JsonObject = dict[str, Any]

_ROUTE = re.compile(
    r"^/(?P<version>[^/]+)/models/(?P<model>[^/:]+):(?P<method>generateContent|streamGenerateContent)$"
)
_STATUS_NAMES = {
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
_USAGE = {"promptTokenCount": 12, "candidatesTokenCount": 34, "totalTokenCount": 46}


def b64encode(data: bytes) -> str:
    """Standard base64, as the real service sends it."""
    return base64.b64encode(data).decode("ascii")


def b64decode(text: str) -> bytes:
    """Decodes base64 in either alphabet (the SDK sends URL-safe), padded or not."""
    normalized = text.replace("-", "+").replace("_", "/")
    return base64.b64decode(normalized + "=" * (-len(normalized) % 4), validate=True)


def make_png(width: int = 2, height: int = 2, rgb: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    """A small, valid, solid-colour PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


def inline_data_of(part: Mapping[str, Any]) -> tuple[bytes, str] | None:
    """The (bytes, MIME type) of a request part's inline data, whatever its spelling; else None."""
    blob = part.get("inlineData", part.get("inline_data"))
    if not isinstance(blob, Mapping):
        return None
    mime_type = blob.get("mime_type", blob.get("mimeType", ""))
    return b64decode(str(blob.get("data", ""))), str(mime_type)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the fake received."""

    method: str
    # The path without its query, e.g. "/v1beta/models/gemini-2.5-flash:streamGenerateContent".
    path: str
    query: Mapping[str, str]
    # Header names are lower-cased.
    headers: Mapping[str, str]
    body: JsonObject
    version: str
    model: str
    stream: bool

    @property
    def api_key(self) -> str | None:
        return self.headers.get("x-goog-api-key")

    @property
    def contents(self) -> list[JsonObject]:
        return list(self.body.get("contents", []))

    @property
    def generation_config(self) -> JsonObject:
        return dict(self.body.get("generationConfig", {}))

    @property
    def system_instruction_text(self) -> str:
        instruction = self.body.get("systemInstruction") or {}
        return "".join(str(part.get("text", "")) for part in instruction.get("parts", []))

    def texts(self, index: int = -1) -> list[str]:
        """The text parts of one content (the last, the new user turn, by default)."""
        return [str(part["text"]) for part in self.contents[index].get("parts", []) if "text" in part]

    def inline_data(self, index: int = -1) -> list[tuple[bytes, str]]:
        """The inline data parts of one content (the last by default), decoded."""
        found = (inline_data_of(part) for part in self.contents[index].get("parts", []))
        return [item for item in found if item is not None]


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
    # Waited before answering, and between streamed events.
    delay_seconds: float = 0.0
    chunk_delay_seconds: float = 0.0

    @classmethod
    def text(
        cls, text: str, *, pieces: int = 3, finish_reason: str = "STOP", delay_seconds: float = 0.0
    ) -> Reply:
        """A text answer, split into up to `pieces` streamed chunks."""
        size = max(1, -(-len(text) // max(1, pieces)))
        slices = [text[start : start + size] for start in range(0, len(text), size)] or [""]
        chunks = [_candidate_chunk([{"text": piece}]) for piece in slices]
        chunks[-1]["candidates"][0]["finishReason"] = finish_reason
        chunks[-1]["usageMetadata"] = dict(_USAGE)
        return cls(chunks=tuple(chunks), delay_seconds=delay_seconds)

    @classmethod
    def json_files(
        cls,
        files: Mapping[str, str | bytes],
        *,
        summary: str = "made the files",
        deletions: Sequence[str] = (),
        pieces: int = 3,
        delay_seconds: float = 0.0,
    ) -> Reply:
        """An answer whose text is a JSON change set (bytes values are sent as base64)."""
        upserts = [
            {"path": path, "content": b64encode(content), "encoding": "base64", "mime_type": ""}
            if isinstance(content, bytes)
            else {"path": path, "content": content, "encoding": "text", "mime_type": ""}
            for path, content in files.items()
        ]
        document = {"summary": summary, "upserts": upserts, "deletions": list(deletions)}
        return cls.text(json.dumps(document), pieces=pieces, delay_seconds=delay_seconds)

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
        chunks[-1]["candidates"][0]["finishReason"] = "STOP"
        chunks[-1]["usageMetadata"] = dict(_USAGE)
        return cls(chunks=tuple(chunks), delay_seconds=delay_seconds)

    @classmethod
    def failure(cls, status: int, message: str, *, delay_seconds: float = 0.0) -> Reply:
        """An HTTP error with Google's error body."""
        error = {"code": status, "message": message, "status": _STATUS_NAMES.get(status, "UNKNOWN")}
        return cls(status=status, error={"error": error}, delay_seconds=delay_seconds)

    @classmethod
    def no_candidates(cls) -> Reply:
        return cls(chunks=({"usageMetadata": dict(_USAGE), "modelVersion": "fake"},))

    @classmethod
    def blocked(cls, reason: str = "SAFETY", *, in_prompt: bool = True) -> Reply:
        """A prompt blocked (promptFeedback.blockReason), or an answer stopped (finishReason)."""
        if in_prompt:
            return cls(chunks=({"promptFeedback": {"blockReason": reason}, "usageMetadata": dict(_USAGE)},))
        chunk = {"candidates": [{"finishReason": reason, "index": 0}], "usageMetadata": dict(_USAGE)}
        return cls(chunks=(chunk,))

    @classmethod
    def mid_stream_error(cls, status: int, message: str, *, text: str = "{") -> Reply:
        """Some text, then an error event in the middle of the stream."""
        error = {"code": status, "message": message, "status": _STATUS_NAMES.get(status, "UNKNOWN")}
        return cls(chunks=(_candidate_chunk([{"text": text}]),), stream_error={"error": error})


def _candidate_chunk(parts: list[JsonObject]) -> JsonObject:
    return {
        "candidates": [{"content": {"role": "model", "parts": parts}, "index": 0}],
        "modelVersion": "fake",
    }


def default_reply(request: RecordedRequest) -> Reply:
    """What the fake answers when nothing is queued: an image for image models, else one file."""
    if "image" in request.model:
        return Reply.image(make_png(), text="Here is the picture.")
    return Reply.json_files({"README.md": "# Hello\n\nMade by the fake Gemini.\n"}, summary="wrote README.md")


class FakeGemini:
    """Gemini's generateContent and streamGenerateContent on 127.0.0.1, in a background thread.

    `default` answers when the queue is empty: a Reply, a function of the request, or None
    (then the fake answers 500 "no scripted reply", which shows up as a failing test).
    """

    def __init__(self, *, default: Reply | Callable[[RecordedRequest], Reply] | None = default_reply) -> None:
        self.default = default
        self.requests: list[RecordedRequest] = []
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Life cycle.

    def start(self) -> FakeGemini:
        handler = type("_BoundHandler", (_Handler,), {"fake": self})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        self._server = server
        # A short poll interval, so that stop() (which waits for the serving loop) is quick.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-gemini", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeGemini:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the fake is not running")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """What to give the client as base_url (or ATELIER_GEMINI_BASE_URL)."""
        return f"http://127.0.0.1:{self.port}"

    # Scripting.

    def reply(self, *replies: Reply) -> FakeGemini:
        """Queues replies, answered in order, one per request."""
        with self._lock:
            self._queue.extend(replies)
        return self

    def reply_json_files(
        self,
        files: Mapping[str, str | bytes],
        *,
        summary: str = "made the files",
        deletions: Sequence[str] = (),
        delay_seconds: float = 0.0,
    ) -> FakeGemini:
        return self.reply(
            Reply.json_files(files, summary=summary, deletions=deletions, delay_seconds=delay_seconds)
        )

    def reply_text(self, text: str, *, finish_reason: str = "STOP", delay_seconds: float = 0.0) -> FakeGemini:
        return self.reply(Reply.text(text, finish_reason=finish_reason, delay_seconds=delay_seconds))

    def reply_raw_text(self, text: str = "not json", *, delay_seconds: float = 0.0) -> FakeGemini:
        """A text answer that is not a change set (same as reply_text, named for what tests mean)."""
        return self.reply(Reply.text(text, pieces=1, delay_seconds=delay_seconds))

    def reply_image(
        self,
        data: bytes,
        *,
        text: str = "",
        mime_type: str = "image/png",
        thought_signature: bytes | None = b"fake-signature",
        delay_seconds: float = 0.0,
    ) -> FakeGemini:
        return self.reply(
            Reply.image(
                data,
                text=text,
                mime_type=mime_type,
                thought_signature=thought_signature,
                delay_seconds=delay_seconds,
            )
        )

    def reply_error(self, status: int, message: str, *, delay_seconds: float = 0.0) -> FakeGemini:
        return self.reply(Reply.failure(status, message, delay_seconds=delay_seconds))

    def reply_no_candidates(self) -> FakeGemini:
        return self.reply(Reply.no_candidates())

    def reply_blocked(self, reason: str = "SAFETY", *, in_prompt: bool = True) -> FakeGemini:
        return self.reply(Reply.blocked(reason, in_prompt=in_prompt))

    def reply_mid_stream_error(self, status: int, message: str) -> FakeGemini:
        return self.reply(Reply.mid_stream_error(status, message))

    @property
    def pending(self) -> int:
        """How many queued replies are still unanswered."""
        with self._lock:
            return len(self._queue)

    def clear(self) -> None:
        """Forgets the recorded requests and the queued replies."""
        with self._lock:
            self._queue.clear()
            self.requests.clear()

    # Called by the handler thread.

    def _answer(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
            if self._queue:
                return self._queue.popleft()
        if self.default is None:
            return Reply.failure(500, "the fake Gemini has no scripted reply left")
        return self.default(request) if callable(self.default) else self.default


class _Handler(BaseHTTPRequestHandler):
    fake: FakeGemini
    protocol_version = "HTTP/1.1"
    # The fake writes a streamed answer's headers and events separately. With Nagle's algorithm
    # an event waits for the ACK of the previous write, which clients delay by up to 40 ms.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass  # Quiet: tests assert on recorded requests instead.

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        route = _ROUTE.match(url.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if route is None:
            self._send_json(
                404, {"error": {"code": 404, "message": f"no route {url.path}", "status": "NOT_FOUND"}}
            )
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._send_json(
                400, {"error": {"code": 400, "message": "body is not JSON", "status": "INVALID_ARGUMENT"}}
            )
            return
        request = RecordedRequest(
            method="POST",
            path=url.path,
            query=dict(parse_qsl(url.query)),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
            version=route["version"],
            model=route["model"],
            stream=route["method"] == "streamGenerateContent",
        )
        reply = self.fake._answer(request)
        if reply.delay_seconds:
            time.sleep(reply.delay_seconds)
        try:
            if reply.status != 200:
                self._send_json(reply.status, reply.error or {})
            elif request.stream:
                self._send_stream(reply)
            else:
                self._send_json(200, _merged(reply.chunks))
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up (a timeout or a cancelled job): nothing to answer.
            self.close_connection = True

    def _send_json(self, status: int, document: JsonObject) -> None:
        data = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_stream(self, reply: Reply) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        events = [*reply.chunks, *([reply.stream_error] if reply.stream_error else [])]
        for number, event in enumerate(events):
            if number and reply.chunk_delay_seconds:
                time.sleep(reply.chunk_delay_seconds)
            self._write_chunk(f"data: {json.dumps(event)}\r\n\r\n".encode())
        self._write_chunk(b"")

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def _merged(chunks: Sequence[JsonObject]) -> JsonObject:
    """The one response generateContent gives for what streamGenerateContent sends in chunks."""
    merged: JsonObject = {}
    parts: list[JsonObject] = []
    candidate: JsonObject | None = None
    for chunk in chunks:
        for key, value in chunk.items():
            if key != "candidates":
                merged[key] = value
        for found in chunk.get("candidates", [])[:1]:
            candidate = {**(candidate or {}), **{k: v for k, v in found.items() if k != "content"}}
            parts.extend(found.get("content", {}).get("parts", []))
    if candidate is not None:
        if parts:
            candidate["content"] = {"role": "model", "parts": parts}
        merged["candidates"] = [candidate]
    return merged


def iter_parts(contents: Sequence[Mapping[str, Any]]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(role, part) for every part of request contents, in order."""
    for content in contents:
        for part in content.get("parts", []):
            yield str(content.get("role", "")), part


def main() -> None:
    """`python -m support.gemini_fake`: serves default replies until interrupted (for manual runs)."""
    with FakeGemini() as fake:
        print(f"fake Gemini listening on {fake.base_url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()


__all__ = [
    "FakeGemini",
    "RecordedRequest",
    "Reply",
    "b64decode",
    "b64encode",
    "default_reply",
    "inline_data_of",
    "iter_parts",
    "make_png",
]
