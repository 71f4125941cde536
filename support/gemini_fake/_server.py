"""The fake's HTTP side: Gemini's two content routes on 127.0.0.1, served by one asyncio loop in a
background thread.

One loop rather than a thread per connection: a benchmark keeps a thousand slow requests open at
once, and a thousand threads contending for the GIL delay each answer by seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import parse_qsl, urlsplit

from support.gemini_fake._replies import Reply, default_reply, merged
from support.gemini_fake._wire import JsonObject, RecordedRequest

_ROUTE = re.compile(
    r"^/(?P<version>[^/]+)/models/(?P<model>[^/:]+):(?P<method>generateContent|streamGenerateContent|countTokens)$"
)
# Connections waiting to be accepted: a benchmark opens a thousand at once.
_BACKLOG = 4096


@dataclass(frozen=True, slots=True)
class _Storm:
    until: float
    reply: Reply


class FakeGemini:
    """Gemini's generateContent and streamGenerateContent on 127.0.0.1, in a background thread.

    `default` answers when the queue is empty: a Reply, a function of the request, or None
    (then the fake answers 500 "no scripted reply", which shows up as a failing test). A function
    runs on the fake's event loop, so it must not block.

    `latency_seconds` (settable at any time) delays every answer's first bytes, as a model
    thinking would; a reply's own `delay_seconds` adds to it. Quota refusals of a storm come at once.
    """

    def __init__(
        self,
        *,
        default: Reply | Callable[[RecordedRequest], Reply] | None = default_reply,
        latency_seconds: float = 0.0,
    ) -> None:
        self.default = default
        self.latency_seconds = latency_seconds
        self.requests: list[RecordedRequest] = []
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._in_flight = 0
        self._peak_in_flight = 0
        self._per_model: Counter[str] = Counter()
        self._storm: _Storm | None = None
        self._storm_refusals = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    # Life cycle.

    def start(self) -> FakeGemini:
        loop = asyncio.new_event_loop()
        started = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            self._server = loop.run_until_complete(
                asyncio.start_server(self._serve_connection, "127.0.0.1", 0, backlog=_BACKLOG)
            )
            started.set()
            loop.run_forever()
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=serve, name="fake-gemini", daemon=True)
        self._thread.start()
        started.wait(timeout=10)
        if self._server is None:
            raise RuntimeError("the fake Gemini did not start")
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and self._server is not None:
            asyncio.run_coroutine_threadsafe(self._shut_down(), loop).result(timeout=10)
            loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=5)
        self._loop, self._thread, self._server = None, None, None

    async def _shut_down(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

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
        return int(self._server.sockets[0].getsockname()[1])

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
        thoughts: Sequence[str] = (),
    ) -> FakeGemini:
        return self.reply(
            Reply.json_files(
                files, summary=summary, deletions=deletions, delay_seconds=delay_seconds, thoughts=thoughts
            )
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

    def reply_rate_limited(
        self, retry_delay_seconds: float | None = 1.0, *, retry_after: str | None = None
    ) -> FakeGemini:
        return self.reply(Reply.rate_limited(retry_delay_seconds, retry_after=retry_after))

    def reply_daily_quota_exhausted(self, model: str = "gemini-2.5-flash") -> FakeGemini:
        return self.reply(Reply.daily_quota_exhausted(model))

    def reply_no_candidates(self) -> FakeGemini:
        return self.reply(Reply.no_candidates())

    def reply_blocked(self, reason: str = "SAFETY", *, in_prompt: bool = True) -> FakeGemini:
        return self.reply(Reply.blocked(reason, in_prompt=in_prompt))

    def reply_mid_stream_error(self, status: int, message: str) -> FakeGemini:
        return self.reply(Reply.mid_stream_error(status, message))

    def storm(
        self, until: float, *, retry_delay_seconds: float | None = 1.0, retry_after: str | None = None
    ) -> FakeGemini:
        """Answers every request 429 (Reply.rate_limited) until `until` (a time.monotonic()
        value), then as before. Queued replies wait for the storm to end."""
        reply = Reply.rate_limited(retry_delay_seconds, retry_after=retry_after)
        with self._lock:
            self._storm = _Storm(until, reply)
        return self

    def calm(self) -> FakeGemini:
        """Ends a storm now."""
        with self._lock:
            self._storm = None
        return self

    # What happened.

    @property
    def pending(self) -> int:
        """How many queued replies are still unanswered."""
        with self._lock:
            return len(self._queue)

    @property
    def in_flight(self) -> int:
        """Requests received and not yet answered in full."""
        with self._lock:
            return self._in_flight

    @property
    def peak_in_flight(self) -> int:
        """The most requests in flight at once since the start (or the last clear())."""
        with self._lock:
            return self._peak_in_flight

    @property
    def requests_per_model(self) -> dict[str, int]:
        with self._lock:
            return dict(self._per_model)

    @property
    def storm_refusals(self) -> int:
        """How many requests a storm refused."""
        with self._lock:
            return self._storm_refusals

    def clear(self) -> None:
        """Forgets the recorded requests, the queued replies, the counts and any storm."""
        with self._lock:
            self._queue.clear()
            self.requests.clear()
            self._per_model.clear()
            self._peak_in_flight = self._in_flight
            self._storm = None
            self._storm_refusals = 0

    # On the fake's loop.

    def _answer(self, request: RecordedRequest) -> tuple[Reply, float]:
        """The reply to a request and how long to wait before sending it; counts it in flight."""
        with self._lock:
            self.requests.append(request)
            self._per_model[request.model] += 1
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
            storm = self._storm
            if storm is not None and request.received_at < storm.until:
                self._storm_refusals += 1
                return storm.reply, 0.0
            queued = self._queue.popleft() if self._queue else None
        if queued is not None:
            reply = queued
        elif self.default is None:
            reply = Reply.failure(500, "the fake Gemini has no scripted reply left")
        else:
            reply = self.default(request) if callable(self.default) else self.default
        return reply, self.latency_seconds + reply.delay_seconds

    def _answered(self) -> None:
        with self._lock:
            self._in_flight -= 1

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            # HTTP/1.1 keeps the connection for the client's next request.
            while await self._serve_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # The client went away (a timeout, a cancelled job): nothing to answer.
        except asyncio.CancelledError:
            # stop() cancels the connections it still holds. Ending as a closed connection, not a
            # cancelled task: Python 3.11's streams ask a cancelled connection task for its
            # exception, and log a traceback for each connection a stop cut short.
            pass
        finally:
            self._connections.discard(task)
            writer.close()

    async def _serve_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serves one request; False when the connection is over."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        request_line, *header_lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length") or 0)
        raw = await reader.readexactly(length) if length else b""
        url = urlsplit(target)
        route = _ROUTE.match(url.path)
        if route is None or method != "POST":
            await _send_json(writer, 404, _error(404, f"no route {method} {url.path}"))
            return True
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            await _send_json(writer, 400, _error(400, "body is not JSON"))
            return True
        if route["method"] == "countTokens":
            # Answered at once, in Gemini's REST shape, and not recorded among the content requests.
            await _send_json(writer, 200, {"totalTokens": count_tokens(body)})
            return True
        request = RecordedRequest(
            method=method,
            path=url.path,
            query=dict(parse_qsl(url.query)),
            headers=headers,
            body=body,
            version=route["version"],
            model=route["model"],
            stream=route["method"] == "streamGenerateContent",
            received_at=time.monotonic(),
        )
        reply, delay = self._answer(request)
        try:
            if delay:
                await asyncio.sleep(delay)
            if reply.status != 200:
                await _send_json(writer, reply.status, reply.error or {}, reply.headers)
            elif request.stream:
                await _send_stream(writer, reply)
            else:
                await _send_json(writer, 200, merged(reply.chunks), reply.headers)
        finally:
            self._answered()
        return headers.get("connection", "").lower() != "close"


def count_tokens(body: JsonObject) -> int:
    """The fake's token counter (countTokens): one token per whitespace-separated word of the
    request's text parts, so a test can say what it expects."""
    return sum(
        len(str(part.get("text", "")).split())
        for content in body.get("contents", [])
        for part in content.get("parts", [])
    )


def _error(status: int, message: str) -> JsonObject:
    return Reply.failure(status, message).error or {}


def _head(status: int, headers: Mapping[str, str]) -> bytes:
    lines = [
        f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _send_json(
    writer: asyncio.StreamWriter, status: int, document: JsonObject, extra: Mapping[str, str] | None = None
) -> None:
    data = json.dumps(document).encode()
    headers = {
        "Content-Type": "application/json; charset=UTF-8",
        "Content-Length": str(len(data)),
        **(extra or {}),
    }
    writer.write(_head(status, headers) + data)
    await writer.drain()


async def _send_stream(writer: asyncio.StreamWriter, reply: Reply) -> None:
    headers = {"Content-Type": "text/event-stream", "Transfer-Encoding": "chunked", **reply.headers}
    writer.write(_head(200, headers))
    events = [*reply.chunks, *([reply.stream_error] if reply.stream_error else [])]
    for number, event in enumerate(events):
        if number and reply.chunk_delay_seconds:
            await asyncio.sleep(reply.chunk_delay_seconds)
        data = f"data: {json.dumps(event)}\r\n\r\n".encode()
        writer.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
        await writer.drain()
    writer.write(b"0\r\n\r\n")
    await writer.drain()


def main(argv: Sequence[str] | None = None) -> None:
    """`python -m support.gemini_fake [--latency SECONDS]`: serves default replies until interrupted."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m support.gemini_fake", description=main.__doc__)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer starts")
    args = parser.parse_args(argv)
    with FakeGemini(latency_seconds=args.latency) as fake:
        print(f"fake Gemini listening on {fake.base_url}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
