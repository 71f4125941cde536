"""The asynchronous client (grpc.aio): the same methods as `AtelierClient`, awaited."""

# Every method takes `timeout=` like the sync client (and GAPIC clients): it becomes the gRPC
# deadline, which asyncio.timeout() around the call could not set.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import aclosing
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import grpc

from atelier import _convert as convert
from atelier import _errors as errors
from atelier._config import (
    DEFAULT,
    DEFAULT_PROGRESS_TIMEOUT,
    DEFAULT_TIMEOUT,
    ClientConfig,
    Timeout,
    aio_channel,
    resolve_config,
)
from atelier._files import TreeWriter, upload_files, upload_requests
from atelier._retry import NO_RETRY, Deadline, RetryPolicy, aretry_call, is_transient
from atelier._types import (
    Attachment,
    File,
    FileDiff,
    Generation,
    MergeResult,
    MergeStrategy,
    Model,
    ProgressEvent,
    Session,
    Turn,
    Version,
)
from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import atelier_service_pb2_grpc

_T = TypeVar("_T")


class AsyncAtelierClient:
    """An asynchronous (asyncio, grpc.aio) client of an Atelier server.

    The target and token come from the arguments, else from `ATELIER_TARGET` (default
    `127.0.0.1:50051`) and `ATELIER_TOKEN`. The channel is plaintext unless `tls=True`,
    `root_certificates` or `ATELIER_TLS=1` asks for TLS.

    Every call has a deadline: `timeout` seconds (30 by default) for the whole call, retries
    included, unless the call's own `timeout=` says otherwise (`None`: no deadline). Calls that
    are safe to repeat are retried on UNAVAILABLE with capped exponential backoff; Generate, Tweak,
    Iterate, Regenerate, Merge and Upload are made safe to repeat with a request id, created once
    per call when the caller gave none. Failures raise `AtelierError` subclasses.

    Use it as an async context manager, or await `close()`. Make it inside the event loop that uses it.
    """

    def __init__(
        self,
        target: str | None = None,
        *,
        token: str | None = None,
        tls: bool | None = None,
        root_certificates: bytes | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        progress_retry: RetryPolicy | None = None,
        channel: grpc.aio.Channel | None = None,
    ) -> None:
        self._config: ClientConfig = resolve_config(
            target=target,
            token=token,
            tls=tls,
            root_certificates=root_certificates,
            timeout=timeout,
            retry=retry,
            progress_retry=progress_retry,
        )
        self._owns_channel = channel is None
        self._channel = channel if channel is not None else aio_channel(self._config)
        self._stub: Any = atelier_service_pb2_grpc.AtelierServiceStub(self._channel)  # type: ignore[no-untyped-call]

    @property
    def target(self) -> str:
        """The server address this client calls."""
        return self._config.target

    async def close(self) -> None:
        """Closes the channel (unless it was passed in)."""
        if self._owns_channel:
            await self._channel.close()

    async def __aenter__(self) -> AsyncAtelierClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # Starting work

    async def generate(
        self,
        prompt: str,
        *,
        model: str | None = None,
        attachments: Iterable[Attachment] = (),
        request_id: str | None = None,
        timeout: Timeout = DEFAULT,
    ) -> Version:
        """Starts a generation; returns its version 1, QUEUED. Follow it with `progress` or `wait`."""
        request = pb.GenerateRequest(
            prompt=prompt,
            model=model or "",
            attachments=convert.attachments_to_proto(attachments),
            request_id=request_id or _new_request_id(),
        )
        return convert.convert_version(await self._unary("Generate", request, timeout=timeout))

    async def tweak(
        self,
        name: str,
        prompt: str,
        *,
        attachments: Iterable[Attachment] = (),
        etag: str | None = None,
        model: str | None = None,
        request_id: str | None = None,
        timeout: Timeout = DEFAULT,
    ) -> Version:
        """Refines a COMPLETED version inside its conversation with the model; returns the new
        version, QUEUED. With `etag`, a version changed since it was read is refused (`Aborted`)."""
        request = pb.TweakRequest(
            name=name,
            prompt=prompt,
            attachments=convert.attachments_to_proto(attachments),
            etag=etag or "",
            model=model or "",
            request_id=request_id or _new_request_id(),
        )
        return convert.convert_version(await self._unary("Tweak", request, timeout=timeout))

    async def iterate(
        self,
        parent: str,
        prompt: str,
        *,
        etag: str | None = None,
        model: str | None = None,
        request_id: str | None = None,
        timeout: Timeout = DEFAULT,
    ) -> Version:
        """Makes the next version from `parent` and a modification prompt; returns it, QUEUED."""
        request = pb.IterateRequest(
            parent=parent,
            prompt=prompt,
            etag=etag or "",
            model=model or "",
            request_id=request_id or _new_request_id(),
        )
        return convert.convert_version(await self._unary("Iterate", request, timeout=timeout))

    async def regenerate(
        self, name: str, *, request_id: str | None = None, timeout: Timeout = DEFAULT
    ) -> Version:
        """Runs a version's prompt again as a new attempt (a sibling version); returns it, QUEUED."""
        request = pb.RegenerateRequest(name=name, request_id=request_id or _new_request_id())
        return convert.convert_version(await self._unary("Regenerate", request, timeout=timeout))

    async def merge(
        self,
        ours: str,
        theirs: str,
        *,
        strategy: MergeStrategy | None = None,
        request_id: str | None = None,
        timeout: Timeout = DEFAULT,
    ) -> MergeResult:
        """Three-way merges two versions of one generation. Without a strategy, conflicts are
        reported (`MergeResult.conflicts`) and nothing is written."""
        request = pb.MergeRequest(
            ours=ours,
            theirs=theirs,
            strategy=convert.merge_strategy_to_proto(strategy),
            request_id=request_id or _new_request_id(),
        )
        return convert.convert_merge_response(await self._unary("Merge", request, timeout=timeout))

    async def upload(
        self,
        source: str | os.PathLike[str] | Mapping[str, bytes | str],
        *,
        description: str = "",
        request_id: str | None = None,
        timeout: Timeout = DEFAULT,
    ) -> Version:
        """Starts a generation from your own files: a directory (its regular files) or a mapping of
        path to contents. Returns version 1, COMPLETED."""
        files = await asyncio.to_thread(upload_files, source)
        key = request_id or _new_request_id()
        # A retry sends the whole upload again, with the same request id.
        response = await self._unary(
            "UploadTree",
            lambda: upload_requests(files, request_id=key, description=description),
            timeout=timeout,
        )
        return convert.convert_version(response)

    async def cancel(self, name: str, *, timeout: Timeout = DEFAULT) -> Version:
        """Stops a QUEUED or RUNNING version's job; returns the version. Not retried."""
        request = pb.CancelVersionRequest(name=name)
        return convert.convert_version(
            await self._unary("CancelVersion", request, timeout=timeout, retry=False)
        )

    # Following work

    async def progress(
        self, name: str, *, after_seq: int = 0, timeout: Timeout = DEFAULT
    ) -> AsyncIterator[ProgressEvent]:
        """Yields the version's events after `after_seq`, in order, until its terminal event.

        When the connection drops (the server restarts, a proxy resets the stream) it reconnects on
        its own from the last event seen, with bounded retries and backoff: no event is missed and
        none is repeated. `timeout` bounds the whole (default: an hour). Stopping the iteration never
        affects the job.
        """
        deadline = Deadline(self._config.timeout_for(timeout, default=DEFAULT_PROGRESS_TIMEOUT))
        policy = self._config.progress_retry
        last = after_seq
        failures = 0
        delays = policy.delays()
        while True:
            request = pb.ProgressRequest(name=name, after_seq=last)
            try:
                async with aclosing(self._stream("Progress", request, deadline)) as stream:
                    async for message in stream:
                        event = convert.convert_progress_event(message)
                        if event.seq <= last:
                            continue  # never twice, whatever a reconnect replays
                        last, failures, delays = event.seq, 0, policy.delays()
                        yield event
                        if event.terminal:
                            return  # the last event: nothing to reconnect for, whatever the stream does next
                return
            except errors.AtelierError as exc:
                failures += 1
                delay = next(delays)
                if failures >= policy.max_attempts or not is_transient(exc) or not deadline.allows(delay):
                    raise
            await asyncio.sleep(delay)

    async def wait(self, name: str, *, timeout: Timeout = DEFAULT) -> Version:
        """Follows the version until its job ends; returns it (COMPLETED, FAILED, CANCELLED or
        NEEDS_REVIEW). Raises `WaitTimeout` if it has not ended within `timeout` seconds (default:
        an hour); the job goes on regardless."""
        limit = self._config.timeout_for(timeout, default=DEFAULT_PROGRESS_TIMEOUT)
        try:
            async for _ in self.progress(name, timeout=limit):
                pass
        except errors.DeadlineExceeded as exc:
            raise errors.sdk_error(
                errors.WaitTimeout, f"{name} did not end within {limit} s", reason="WAIT_TIMEOUT", name=name
            ) from exc
        return await self.get(name)

    # Reading

    async def get(self, name: str, *, timeout: Timeout = DEFAULT) -> Version:
        """The version `generations/{g}/versions/{n}`."""
        request = pb.GetVersionRequest(name=name)
        return convert.convert_version(await self._unary("GetVersion", request, timeout=timeout))

    async def get_generation(self, name: str, *, timeout: Timeout = DEFAULT) -> Generation:
        """The generation `generations/{g}`."""
        request = pb.GetGenerationRequest(name=name)
        return convert.convert_generation(await self._unary("GetGeneration", request, timeout=timeout))

    async def list_generations(
        self, *, page_size: int = 0, timeout: Timeout = DEFAULT
    ) -> AsyncIterator[Generation]:
        """The caller's generations, newest first. Fetches pages of `page_size` (0: the server's
        default) as the iteration goes on; `timeout` applies to each page."""
        async for response in self._pages("ListGenerations", pb.ListGenerationsRequest(), page_size, timeout):
            for g in response.generations:
                yield convert.convert_generation(g)

    async def versions(
        self, generation: str, *, page_size: int = 0, timeout: Timeout = DEFAULT
    ) -> AsyncIterator[Version]:
        """A generation's versions, oldest first, paging on its own."""
        request = pb.ListVersionsRequest(parent=generation)
        async for response in self._pages("ListVersions", request, page_size, timeout):
            for v in response.versions:
                yield convert.convert_version(v)

    async def files(
        self, version: str, *, page_size: int = 0, timeout: Timeout = DEFAULT
    ) -> AsyncIterator[File]:
        """A COMPLETED version's files, in path order, paging on its own."""
        request = pb.ListFilesRequest(parent=version)
        async for response in self._pages("ListFiles", request, page_size, timeout):
            for f in response.files:
                yield convert.convert_file(f)

    async def read_file(self, version: str, path: str, *, timeout: Timeout = DEFAULT) -> bytes:
        """One file's bytes."""
        request = pb.ReadFileRequest(name=version, path=path)

        async def attempt(deadline: Deadline) -> bytes:
            async with aclosing(self._stream("ReadFile", request, deadline)) as stream:
                return b"".join([chunk.data async for chunk in stream])

        return await self._retry_stream(attempt, timeout)

    async def export(
        self, version: str, directory: str | os.PathLike[str], *, timeout: Timeout = DEFAULT
    ) -> list[Path]:
        """Writes the version's whole tree under `directory` (created if needed); returns the paths
        written. A path that would land outside the directory is refused (`ValueError`), and every
        file's SHA-256 is checked (`AtelierError` with reason CHECKSUM_MISMATCH)."""
        root = Path(directory)
        await asyncio.to_thread(root.mkdir, parents=True, exist_ok=True)
        request = pb.ExportTreeRequest(name=version)

        async def attempt(deadline: Deadline) -> list[Path]:
            writer = TreeWriter(root)
            try:
                async with aclosing(self._stream("ExportTree", request, deadline)) as stream:
                    async for response in stream:
                        # Chunks are at most 64 KiB: a local write is shorter than a thread hop.
                        writer.feed(response)
                return writer.close()
            finally:
                writer.abort()

        return await self._retry_stream(attempt, timeout)

    async def diff(
        self, base: str, target: str, *, text: bool = False, timeout: Timeout = DEFAULT
    ) -> list[FileDiff]:
        """The paths that differ from `base` to `target`, in path order; with `text=True`, unified
        diffs of text files too."""
        request = pb.DiffRequest(base=base, target=target, include_text_diffs=text)
        response = await self._unary("Diff", request, timeout=timeout)
        return [convert.convert_file_diff(f) for f in response.files]

    async def models(self, *, timeout: Timeout = DEFAULT) -> list[Model]:
        """The models the server offers; the default one has `default=True`."""
        response = await self._unary("ListModels", pb.ListModelsRequest(), timeout=timeout)
        return [convert.convert_model(m) for m in response.models]

    async def session(self, generation: str, *, timeout: Timeout = DEFAULT) -> Session:
        """The conversation session of a generation."""
        request = pb.GetSessionRequest(name=_session_name(generation))
        return convert.convert_session(await self._unary("GetSession", request, timeout=timeout))

    async def turns(
        self, generation: str, *, version: str | None = None, page_size: int = 0, timeout: Timeout = DEFAULT
    ) -> AsyncIterator[Turn]:
        """A session's turns in the order they were made; with `version`, only that version's branch
        (exactly the history the model saw for it)."""
        request = pb.ListTurnsRequest(parent=_session_name(generation), version=version or "")
        async for response in self._pages("ListTurns", request, page_size, timeout):
            for t in response.turns:
                yield convert.convert_turn(t)

    # Plumbing: every call goes through these, and so through the one error boundary.

    async def _unary(self, method: str, request: Any, *, timeout: Timeout, retry: bool = True) -> Any:
        callable_ = getattr(self._stub, method)
        # A client-streaming request is given as a factory: each attempt needs a fresh iterator.
        make_request: Callable[[], Any] = request if callable(request) else lambda: request

        async def attempt(time_left: float | None) -> Any:
            return await errors.acall(
                callable_, make_request(), timeout=time_left, metadata=self._config.metadata
            )

        policy = self._config.retry if retry else NO_RETRY
        return await aretry_call(attempt, policy=policy, deadline=Deadline(self._config.timeout_for(timeout)))

    def _stream(self, method: str, request: Any, deadline: Deadline) -> AsyncGenerator[Any, None]:
        return errors.astream(
            getattr(self._stub, method), request, timeout=deadline.remaining(), metadata=self._config.metadata
        )

    async def _retry_stream(self, attempt: Callable[[Deadline], Awaitable[_T]], timeout: Timeout) -> _T:
        deadline = Deadline(self._config.timeout_for(timeout))
        return await aretry_call(lambda _: attempt(deadline), policy=self._config.retry, deadline=deadline)

    async def _pages(self, method: str, request: Any, page_size: int, timeout: Timeout) -> AsyncIterator[Any]:
        message = request
        message.page_size = page_size
        while True:
            response = await self._unary(method, message, timeout=timeout)
            yield response
            if not response.next_page_token:
                return
            message.page_token = response.next_page_token


def _new_request_id() -> str:
    return str(uuid.uuid4())


def _session_name(generation: str) -> str:
    return generation if generation.endswith("/session") else f"{generation}/session"
