"""The server's side of the Gemini worker process (`_worker`): google-genai's calls, made there.

The worker starts with the provider, and again at the first call after it stopped. A call in
flight when it stops fails with a ConnectionError, which `_call` retries like any broken
connection. Closing a call's stream early (a cancelled job, an attempt out of time) tells the
worker to drop the request and free its connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from google.genai import types

from server.providers.gemini._worker import (
    Chunk,
    Close,
    Count,
    Done,
    Failed,
    Ready,
    Stream,
    WorkerOptions,
    encode,
    open_pipes,
    raised_again,
    read_frame,
)

_log = logging.getLogger("atelier.providers.gemini")

# How long closing waits for the worker to end by itself before killing it.
_EXIT_SECONDS = 5.0
# How long closing a call waits for the worker to say it has released the call's connection.
_CLOSE_SECONDS = 5.0
# The directory that holds the `server` package, for the worker's imports.
_ROOT = Path(__file__).resolve().parents[3]

# What a call's inbox can hold: the worker's answers, or the error of a worker that stopped.
_Message = Chunk | Done | Failed | ConnectionError


class GeminiWorker:
    """The worker process, and the calls in flight in it."""

    def __init__(self, options: WorkerOptions) -> None:
        self._options = options
        # Started now, not at the first call: its imports take most of a second, which the
        # first job would otherwise wait for.
        self._process: subprocess.Popen[bytes] | None = self._spawn()
        # Its pipes, once a call has attached them to the running event loop.
        self._writer: asyncio.StreamWriter | None = None
        self._reader: asyncio.Task[None] | None = None
        self._attaching = asyncio.Lock()
        # Set when the current worker has said it is ready.
        self._ready = asyncio.Event()
        self._calls: dict[int, asyncio.Queue[_Message]] = {}
        self._call_ids = itertools.count(1)
        self._closed = False

    async def stream(
        self, model: str, contents: list[Any], config: types.GenerateContentConfig
    ) -> RemoteStream:
        """Sends the request; its answer's chunks come from the returned stream, which must be
        closed (`aclose`) if it is not read to its end."""
        call, inbox = self._open()
        try:
            await self._send(Stream(call, model, contents, config))
        except BaseException:
            self._calls.pop(call, None)
            raise
        return RemoteStream(self, call, inbox)

    async def ready(self) -> None:
        """Waits until the worker can take calls (its imports take most of a second)."""
        await self._attached()
        await self._ready.wait()

    async def count_tokens(self, model: str, contents: str) -> int:
        call, inbox = self._open()
        try:
            await self._send(Count(call, model, contents))
            message = await inbox.get()
        finally:
            self._calls.pop(call, None)
        if isinstance(message, Done) and message.value is not None:
            return message.value
        raise _error_of(message)

    async def aclose(self) -> None:
        """Ends the worker: its stdin closes, and it is killed if it has not ended soon after."""
        self._closed = True
        process, self._process = self._process, None
        writer, self._writer = self._writer, None
        if process is None:
            return
        with contextlib.suppress(Exception):
            if writer is not None:
                writer.close()
            elif process.stdin is not None:
                process.stdin.close()
        try:
            await asyncio.to_thread(process.wait, _EXIT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait)
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    def _open(self) -> tuple[int, asyncio.Queue[_Message]]:
        if self._closed:
            raise ConnectionError("the Gemini provider is closed")
        call = next(self._call_ids)
        inbox: asyncio.Queue[_Message] = asyncio.Queue()
        self._calls[call] = inbox
        return call, inbox

    def forget(self, call: int) -> bool:
        """Stops routing the call's answers; whether it was still open."""
        return self._calls.pop(call, None) is not None

    async def close_call(self, call: int) -> bool:
        """Tells the worker to drop a call whose answer is no longer wanted; whether it was told."""
        if self._writer is None or self._writer.is_closing():
            return False
        try:
            await self._send(Close(call))
        except ConnectionError:
            return False
        return True

    async def _send(self, message: object) -> None:
        writer = await self._attached()
        try:
            writer.write(encode(message))
            await writer.drain()
        except (ConnectionError, RuntimeError) as exc:
            raise ConnectionError(f"the Gemini worker process stopped: {exc}") from exc

    def _spawn(self) -> subprocess.Popen[bytes]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_ROOT), env.get("PYTHONPATH")]))
        process = subprocess.Popen(
            # Not `-m`: the messages' classes must be the module's, not __main__'s.
            [sys.executable, "-c", "from server.providers.gemini._worker import main; main()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            # Signals from the terminal are the server's: it ends the worker when it is done.
            start_new_session=True,
        )
        assert process.stdin is not None
        process.stdin.write(encode(self._options))
        process.stdin.flush()
        return process

    async def _attached(self) -> asyncio.StreamWriter:
        """The worker's stdin, as a stream of the running loop; a worker that ended is replaced."""
        async with self._attaching:
            if self._writer is not None and not self._writer.is_closing():
                return self._writer
            if self._closed:
                raise ConnectionError("the Gemini provider is closed")
            process = self._process
            if process is None or self._reader is not None:
                # The worker ended (its reader saw the end of its stdout): start another.
                process = self._process = self._spawn()
                self._ready = asyncio.Event()
            assert process.stdin is not None and process.stdout is not None
            reader, self._writer = await open_pipes(process.stdout, process.stdin)
            self._reader = asyncio.get_running_loop().create_task(self._read(process, reader))
            return self._writer

    async def _read(self, process: subprocess.Popen[bytes], reader: asyncio.StreamReader) -> None:
        ready = self._ready
        try:
            while (message := await read_frame(reader)) is not None:
                if isinstance(message, Ready):
                    ready.set()
                    continue
                inbox = self._calls.get(message.call)
                if inbox is not None:
                    inbox.put_nowait(message)
        finally:
            if self._process is process:
                self._process = None
                if self._writer is not None:
                    self._writer.close()
            # Told before anything is awaited: a call opened meanwhile goes to the next worker.
            gone = ConnectionError("the Gemini worker process ended")
            for inbox in self._calls.values():
                inbox.put_nowait(gone)
            code = await asyncio.to_thread(process.wait)
            if not self._closed:
                _log.warning("the Gemini worker process ended (exit code %s)", code)


class RemoteStream:
    """A call's answer, chunk by chunk, as google-genai's own stream gives it."""

    def __init__(self, worker: GeminiWorker, call: int, inbox: asyncio.Queue[_Message]) -> None:
        self._worker = worker
        self._call = call
        self._inbox = inbox
        self._ended = False

    def __aiter__(self) -> RemoteStream:
        return self

    async def __anext__(self) -> types.GenerateContentResponse:
        if self._ended:
            raise StopAsyncIteration
        message = await self._inbox.get()
        if isinstance(message, Chunk):
            return message.response
        self._ended = True
        self._worker.forget(self._call)
        if isinstance(message, Done):
            raise StopAsyncIteration
        raise _error_of(message)

    async def aclose(self) -> None:
        """Drops the call, and returns once the worker has released its connection: a job that
        ends holds no request at the model, so the model's limit holds at the model."""
        if self._ended:
            return
        self._ended = True
        try:
            if await self._worker.close_call(self._call):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._until_ended(), _CLOSE_SECONDS)
        finally:
            self._worker.forget(self._call)

    async def _until_ended(self) -> None:
        while isinstance(await self._inbox.get(), Chunk):
            pass


def _error_of(message: _Message) -> Exception:
    if isinstance(message, Failed):
        return raised_again(message)
    if isinstance(message, ConnectionError):
        return message
    return RuntimeError(f"the Gemini worker answered {type(message).__name__} out of turn")
