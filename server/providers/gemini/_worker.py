"""The process that talks to Gemini: google-genai's client and its connections, on a core of their own.

With a thousand jobs in flight, about a quarter of the server's CPU went to google-genai and
httpx: building each request's wire form, sending it, reading the streamed answer and parsing its
chunks (py-spy over `make bench`'s many-jobs row). That work needs nothing of the server but the
request, so it runs here, in a child process the provider starts (`_remote`), and the server's
own process keeps its core for gRPC, the database and the jobs. Retries, the model's gate and
what an answer means stay in the server (`_call`): this process makes exactly the requests it is
asked to, with the real google-genai client.

The two talk over the child's stdin and stdout in frames: a 4-byte length, then a pickle. The
first frame is the client's `WorkerOptions`, and the child says `Ready` once its client is made;
then the server sends `Stream`, `Count` and `Close` requests, and the child answers with `Chunk`,
`Done` and `Failed`, each naming its call. The
child ends when its stdin does: the server closed it, or the server died.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import ctypes
import os
import pickle
import signal
import struct
import sys
from dataclasses import dataclass
from typing import IO, Any

import httpx2
from google import genai
from google.genai import errors, types
from google.genai.client import DebugConfig

from server.providers.gemini._errors import UNREADABLE
from server.providers.gemini._transport import LanedTransport

_HEADER = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    api_key: str
    base_url: str | None
    api_version: str
    timeout_ms: int
    # Connections the client may hold: one per call in flight.
    max_connections: int


# What the server asks.
@dataclass(frozen=True, slots=True)
class Stream:
    call: int
    model: str
    contents: list[Any]
    config: types.GenerateContentConfig


@dataclass(frozen=True, slots=True)
class Count:
    call: int
    model: str
    contents: str


@dataclass(frozen=True, slots=True)
class Close:
    call: int


# What the child answers.
@dataclass(frozen=True, slots=True)
class Ready:
    """The client is made: calls are served from now on."""

    call: int = 0


@dataclass(frozen=True, slots=True)
class Chunk:
    call: int
    response: types.GenerateContentResponse


@dataclass(frozen=True, slots=True)
class Done:
    """The stream ended (`value` None), or the count is `value`."""

    call: int
    value: int | None = None


@dataclass(frozen=True, slots=True)
class Failed:
    """The call raised. `kind` says how to raise it again on the server's side (`raised_again`):
    "api" (google-genai's APIError: its class, code, body and headers), "httpx" and "os" (an
    httpx2 or builtin exception class, by name, with its message), "unreadable" (an answer the
    SDK could not read) or "other"."""

    call: int
    kind: str
    name: str
    message: str
    code: int = 0
    details: Any = None
    headers: tuple[tuple[str, str], ...] = ()


def encode(message: object) -> bytes:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)) + body


async def open_pipes(
    read_from: IO[bytes], write_to: IO[bytes]
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """The two ends of the protocol, as streams of the running loop (a frame may be any size)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**31)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), read_from)
    transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, write_to)
    return reader, asyncio.StreamWriter(transport, protocol, None, loop)


async def read_frame(reader: asyncio.StreamReader) -> Any:
    """The next message, or None at the end of the stream."""
    try:
        header = await reader.readexactly(_HEADER.size)
        (size,) = _HEADER.unpack(header)
        return pickle.loads(await reader.readexactly(size))
    except asyncio.IncompleteReadError:
        return None


def failure(call: int, exc: BaseException) -> Failed:
    """How `exc` crosses to the server: by value, never the SDK's objects themselves (an
    APIError holds its HTTP response, which does not pickle)."""
    message = str(exc)
    if isinstance(exc, errors.APIError):
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None) or {}
        return Failed(
            call,
            "api",
            type(exc).__name__,
            message,
            code=exc.code,
            details=exc.details,
            headers=tuple((str(k), str(v)) for k, v in headers.items()),
        )
    if isinstance(exc, UNREADABLE):
        return Failed(call, "unreadable", type(exc).__name__, message)
    name = type(exc).__name__
    if isinstance(exc, httpx2.HTTPError) and getattr(httpx2, name, None) is type(exc):
        return Failed(call, "httpx", name, message)
    if isinstance(exc, OSError):
        if getattr(builtins, name, None) is not type(exc):
            name = "ConnectionError" if isinstance(exc, ConnectionError) else "OSError"
        return Failed(call, "os", name, message)
    return Failed(call, "other", name, message)


def raised_again(failed: Failed) -> Exception:
    """The exception `failure` described, as the code that handles google-genai's errors expects it."""
    if failed.kind == "api":
        classes = {"ClientError": errors.ClientError, "ServerError": errors.ServerError}
        kind = classes.get(failed.name, errors.APIError)
        # The error keeps the answer's headers (Retry-After), as the SDK's own does.
        response = httpx2.Response(failed.code, headers=list(failed.headers))
        return kind(failed.code, failed.details, response=response)
    if failed.kind == "unreadable":
        return errors.UnknownApiResponseError(failed.message)
    if failed.kind == "httpx":
        found = getattr(httpx2, failed.name, None)
        if isinstance(found, type) and issubclass(found, httpx2.HTTPError):
            return found(failed.message)
    if failed.kind == "os":
        found = getattr(builtins, failed.name, None)
        if isinstance(found, type) and issubclass(found, OSError):
            return found(failed.message)
    return RuntimeError(f"{failed.name}: {failed.message}")


def make_client(options: WorkerOptions) -> genai.Client:
    """The one google-genai client, on connections spread over small pools (see _transport)."""
    verify = httpx2.create_ssl_context()
    transport = LanedTransport(options.max_connections, verify=verify)
    return genai.Client(
        vertexai=False,
        api_key=options.api_key,
        # Never record or replay, whatever GOOGLE_GENAI_CLIENT_MODE says.
        debug_config=DebugConfig(client_mode=None, replays_directory=None, replay_id=None),
        http_options=types.HttpOptions(
            base_url=options.base_url,
            api_version=options.api_version,
            timeout=options.timeout_ms,
            # Retries are the server's (see _call): the SDK makes exactly one attempt per request.
            retry_options=types.HttpRetryOptions(attempts=1),
            # The SDK would build a TLS context of its own (tens of ms) for the client it wraps
            # around the transport; it takes ours instead. A transport of our own also keeps the
            # SDK on httpx2 even where aiohttp is installed.
            async_client_args={"transport": transport, "verify": verify},
        ),
    )


class _Child:
    def __init__(self, client: genai.Client, writer: asyncio.StreamWriter) -> None:
        self._client = client
        self._writer = writer
        self._calls: dict[int, asyncio.Task[None]] = {}

    def handle(self, message: object) -> None:
        if isinstance(message, Close):
            task = self._calls.get(message.call)
            if task is not None:
                task.cancel()  # its Done follows once its connection is released
            else:
                self._say(Done(message.call))  # it had ended: its answer is on its way
            return
        if isinstance(message, Stream):
            work = self._stream(message)
        elif isinstance(message, Count):
            work = self._count(message)
        else:
            raise TypeError(f"unexpected message {type(message).__name__}")
        task = asyncio.get_running_loop().create_task(self._answer(message.call, work))
        self._calls[message.call] = task

    async def _answer(self, call: int, work: Any) -> None:
        try:
            await work
        except asyncio.CancelledError:
            # Closed by the server, which waits for this word: by now the stream's connection
            # is released, so a job that has ended holds no request at the model.
            self._say(Done(call))
            raise
        except Exception as exc:
            await self.send(failure(call, exc))
        finally:
            self._calls.pop(call, None)

    async def _stream(self, request: Stream) -> None:
        stream = await self._client.aio.models.generate_content_stream(
            model=request.model, contents=request.contents, config=request.config
        )
        try:
            async for response in stream:
                await self.send(Chunk(request.call, response))
        finally:
            # Releases the connection, also when the server closed the call early.
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()
        await self.send(Done(request.call))

    async def _count(self, request: Count) -> None:
        answer = await self._client.aio.models.count_tokens(model=request.model, contents=request.contents)
        await self.send(Done(request.call, answer.total_tokens or 0))

    async def send(self, message: object) -> None:
        self._say(message)
        await self._writer.drain()

    def _say(self, message: object) -> None:
        # One write per frame: frames of concurrent calls never interleave.
        if not self._writer.is_closing():
            self._writer.write(encode(message))

    async def aclose(self) -> None:
        for task in list(self._calls.values()):
            task.cancel()
        await asyncio.gather(*self._calls.values(), return_exceptions=True)
        await self._client.aio.aclose()


def _die_with_the_server() -> None:
    """Asks Linux to kill this process when the server's process dies (the closed stdin ends it
    too, but only once the loop reads it). Linux means the thread that started this process, so
    the server starts it from its main thread (`_remote`: at start-up, and on its event loop)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


async def _serve(protocol_in: int, protocol_out: int) -> None:
    reader, writer = await open_pipes(os.fdopen(protocol_in, "rb"), os.fdopen(protocol_out, "wb"))
    options = await read_frame(reader)
    if not isinstance(options, WorkerOptions):
        return
    child = _Child(make_client(options), writer)
    await child.send(Ready())
    try:
        while (message := await read_frame(reader)) is not None:
            child.handle(message)
    finally:
        await child.aclose()


def main() -> None:
    _die_with_the_server()
    # A Ctrl-C at the terminal is the server's to handle: it lets running jobs finish (their
    # calls go on here) and then closes this process's stdin.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The protocol has stdout to itself: anything printed goes to stderr (the server's log).
    protocol_out = os.dup(sys.stdout.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    protocol_in = os.dup(sys.stdin.fileno())
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(protocol_in, protocol_out))
