"""The synchronous client."""

from __future__ import annotations

import os
import time
from collections.abc import Generator, Iterable, Iterator, Mapping
from contextlib import closing
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import grpc

from atelier import _calls as calls
from atelier import _errors as errors
from atelier._base_client import BaseClient, wait_timeout
from atelier._config import DEFAULT, DEFAULT_TIMEOUT, Timeout, resolve_config, sync_channel
from atelier._files import upload_files
from atelier._retry import Deadline, RetryPolicy, retry_call
from atelier._types import (
    Attachment,
    Batch,
    CostEstimate,
    Draft,
    File,
    FileBlame,
    FileDiff,
    Generation,
    MergeResult,
    MergeStrategy,
    Model,
    ProgressEvent,
    RequestLimits,
    Session,
    Turn,
    Usage,
    Variant,
    Version,
    Webhook,
    WebhookDelivery,
)
from atelier.v1 import atelier_service_pb2_grpc

_T = TypeVar("_T")


class AtelierClient(BaseClient):
    """A synchronous client of an Atelier server.

    The target and token come from the arguments, else from `ATELIER_TARGET` (default
    `127.0.0.1:50051`) and `ATELIER_TOKEN`. The channel is plaintext unless `tls=True`,
    `ATELIER_TLS=1` or a certificate asks for TLS: `root_certificates` (PEM; else the file named by
    `ATELIER_TLS_CA_FILE`, else gRPC's default roots) to trust the server, and for a server that
    asks callers for a certificate (mutual TLS), `certificate_chain` and `private_key` (PEM; else
    the files named by `ATELIER_TLS_CLIENT_CERT_FILE` and `ATELIER_TLS_CLIENT_KEY_FILE`).

    Every call has a deadline: `timeout` seconds (30 by default) for the whole call, retries
    included, unless the call's own `timeout=` says otherwise (`None`: no deadline). Calls that
    are safe to repeat are retried on UNAVAILABLE with capped exponential backoff; Generate, Tweak,
    Iterate, Regenerate, Merge and Upload are made safe to repeat with a request id, created once
    per call when the caller gave none. Failures raise `AtelierError` subclasses.

    Use it as a context manager, or call `close()`.
    """

    def __init__(
        self,
        target: str | None = None,
        *,
        token: str | None = None,
        tls: bool | None = None,
        root_certificates: bytes | None = None,
        certificate_chain: bytes | None = None,
        private_key: bytes | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        progress_retry: RetryPolicy | None = None,
        channel: grpc.Channel | None = None,
    ) -> None:
        super().__init__(
            resolve_config(
                target=target,
                token=token,
                tls=tls,
                root_certificates=root_certificates,
                certificate_chain=certificate_chain,
                private_key=private_key,
                timeout=timeout,
                retry=retry,
                progress_retry=progress_retry,
            )
        )
        self._owns_channel = channel is None
        self._channel = channel if channel is not None else sync_channel(self._config)
        self._stub: Any = atelier_service_pb2_grpc.AtelierServiceStub(self._channel)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        """Closes the channel (unless it was passed in)."""
        if self._owns_channel:
            self._channel.close()

    def __enter__(self) -> AtelierClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # Starting work

    def generate(
        self,
        prompt: str,
        *,
        model: str | None = None,
        attachments: Iterable[Attachment] = (),
        request_id: str | None = None,
        variants: Iterable[Variant | str] = (),
        count: int | None = None,
        draft: str | None = None,
        webhook: Webhook | None = None,
        timeout: Timeout = DEFAULT,
    ) -> Version:
        """Starts a generation; returns its version 1, QUEUED. Follow it with `progress` or `wait`.

        A fan-out: `variants` (names such as "front", or `Variant`s with a prompt suffix) or `count`
        make one output each, versions 1..N of the generation, all at once. The answer is version 1;
        its `batch` names the batch, which `progress`, `wait_batch` and `get_batch` take.

        With `draft` (`drafts/{d}`, from `draft_prompt`) the version records the draft it came
        from; an empty `prompt` (or no `model`) means the draft's.

        With `webhook`, the server POSTs the version's events to its URL, signed (README, Webhooks);
        `webhook_deliveries` lists them."""
        call = calls.generate(
            prompt,
            model=model,
            attachments=attachments,
            request_id=request_id,
            variants=variants,
            count=count,
            draft=draft,
            webhook=webhook,
        )
        return self._unary(call, timeout)

    def tweak(
        self,
        name: str,
        prompt: str,
        *,
        attachments: Iterable[Attachment] = (),
        etag: str | None = None,
        model: str | None = None,
        request_id: str | None = None,
        webhook: Webhook | None = None,
        timeout: Timeout = DEFAULT,
    ) -> Version:
        """Refines a COMPLETED version inside its conversation with the model; returns the new
        version, QUEUED. With `etag`, a version changed since it was read is refused (`Aborted`);
        with `webhook`, its events are POSTed there (as `generate`'s)."""
        call = calls.tweak(
            name,
            prompt,
            attachments=attachments,
            etag=etag,
            model=model,
            request_id=request_id,
            webhook=webhook,
        )
        return self._unary(call, timeout)

    def iterate(
        self,
        parent: str,
        prompt: str,
        *,
        etag: str | None = None,
        model: str | None = None,
        request_id: str | None = None,
        webhook: Webhook | None = None,
        timeout: Timeout = DEFAULT,
    ) -> Version:
        """Makes the next version from `parent` and a modification prompt; returns it, QUEUED.
        With `webhook`, its events are POSTed there (as `generate`'s)."""
        call = calls.iterate(parent, prompt, etag=etag, model=model, request_id=request_id, webhook=webhook)
        return self._unary(call, timeout)

    def regenerate(
        self,
        name: str,
        *,
        request_id: str | None = None,
        variants: Iterable[Variant | str] = (),
        count: int | None = None,
        timeout: Timeout = DEFAULT,
    ) -> Version:
        """Runs a version's prompt again as a new attempt (a sibling version); returns it, QUEUED.
        With `variants` or `count`, several siblings at once (a batch; the first is returned).

        An upload or a merge was made by no model: `FailedPrecondition` (reason
        NOT_REGENERATABLE), and nothing is created. Upload or merge again instead."""
        return self._unary(
            calls.regenerate(name, request_id=request_id, variants=variants, count=count), timeout
        )

    def merge(
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
        return self._unary(calls.merge(ours, theirs, strategy=strategy, request_id=request_id), timeout)

    def upload(
        self,
        source: str | os.PathLike[str] | Mapping[str, bytes | str],
        *,
        description: str = "",
        request_id: str | None = None,
        timeout: Timeout = DEFAULT,
    ) -> Version:
        """Starts a generation from your own files: a directory (its regular files) or a mapping of
        path to contents. Returns version 1, COMPLETED."""
        files = upload_files(source)
        return self._unary(calls.upload_tree(files, description=description, request_id=request_id), timeout)

    def cancel(self, name: str, *, timeout: Timeout = DEFAULT) -> Version:
        """Stops a QUEUED or RUNNING version's job; returns the version. Not retried."""
        return self._unary(calls.cancel(name), timeout)

    # Following work

    def progress(
        self, name: str, *, after_seq: int = 0, timeout: Timeout = DEFAULT
    ) -> Iterator[ProgressEvent]:
        """Yields the version's events after `after_seq`, in order, until its terminal event. For a
        batch (`generations/{g}/batches/{b}`), every output's events, each tagged with its
        `version`, in order per output and as each happens, until every output has ended.

        When the connection drops (the server restarts, a proxy resets the stream) it reconnects on
        its own from the last event seen, with bounded retries and backoff: no event is missed and
        none is repeated. `timeout` bounds the whole (default: an hour). Stopping the iteration never
        affects the job.
        """
        follower = self._follow(name, after_seq=after_seq, timeout=timeout)
        while True:
            try:
                with closing(self._stream("Progress", follower.request(), follower.deadline)) as stream:
                    for message in stream:
                        event = follower.accept(message)
                        if event is None:
                            continue
                        yield event
                        if follower.finished(event):
                            return  # the last event: nothing to reconnect for, whatever the stream does next
                return
            except errors.AtelierError as exc:
                delay = follower.reconnect_delay(exc)
                if delay is None:
                    raise
            time.sleep(delay)

    def wait(self, name: str, *, timeout: Timeout = DEFAULT) -> Version:
        """Follows the version until its job ends; returns it (COMPLETED, FAILED, CANCELLED or
        NEEDS_REVIEW). Raises `WaitTimeout` if it has not ended within `timeout` seconds (default:
        an hour); the job goes on regardless."""
        limit = self._progress_timeout(timeout)
        try:
            for _ in self.progress(name, timeout=limit):
                pass
        except errors.DeadlineExceeded as exc:
            raise wait_timeout(name, limit) from exc
        return self.get(name)

    def wait_batch(self, name: str, *, timeout: Timeout = DEFAULT) -> Batch:
        """Follows a batch until every output has ended; returns it. Raises `WaitTimeout` if it has
        not ended within `timeout` seconds (default: an hour); the jobs go on regardless."""
        limit = self._progress_timeout(timeout)
        try:
            for _ in self.progress(name, timeout=limit):
                pass
        except errors.DeadlineExceeded as exc:
            raise wait_timeout(name, limit) from exc
        return self.get_batch(name)

    def get_batch(self, name: str, *, timeout: Timeout = DEFAULT) -> Batch:
        """A fan-out's outputs and their counts by state: `generations/{g}/batches/{b}`."""
        return self._unary(calls.get_batch(name), timeout)

    def estimate_cost(
        self,
        prompt: str = "",
        *,
        model: str | None = None,
        variants: Iterable[Variant | str] = (),
        count: int | None = None,
        tweak: str | None = None,
        iterate: str | None = None,
        regenerate: str | None = None,
        attachments: Iterable[Attachment] = (),
        timeout: Timeout = DEFAULT,
    ) -> CostEstimate:
        """What a request would cost before it runs: a Generate of `prompt`, or a Tweak or Iterate
        (with `prompt`) or a Regenerate of the version named by `tweak`, `iterate` or `regenerate`.
        `attachments` go with a Generate or a Tweak, and are priced as the model is sent them.
        Nothing is created; the answer lists its assumptions."""
        request = calls.estimate_request(
            prompt,
            model=model,
            variants=variants,
            count=count,
            tweak=tweak,
            iterate=iterate,
            regenerate=regenerate,
            attachments=attachments,
        )
        return self._unary(calls.estimate_cost(request), timeout)

    def usage(
        self,
        *,
        principal: str = "",
        start: datetime | None = None,
        end: datetime | None = None,
        timeout: Timeout = DEFAULT,
    ) -> Usage:
        """What was spent by principal, model and UTC day, for jobs that ended in [start, end): the
        caller's own (an admin's: everyone's, or `principal`'s)."""
        return self._unary(calls.get_usage(principal=principal, start=start, end=end), timeout)

    # Reading

    def get(self, name: str, *, timeout: Timeout = DEFAULT) -> Version:
        """The version `generations/{g}/versions/{n}`."""
        return self._unary(calls.get_version(name), timeout)

    def get_generation(self, name: str, *, timeout: Timeout = DEFAULT) -> Generation:
        """The generation `generations/{g}`."""
        return self._unary(calls.get_generation(name), timeout)

    def list_generations(
        self, *, page_size: int = 0, owner: str = "", show_deleted: bool = False, timeout: Timeout = DEFAULT
    ) -> Iterator[Generation]:
        """The caller's generations, newest first (an admin's: everyone's, or `owner`'s). With
        `show_deleted`, deleted generations not yet purged too (their `delete_time` is set). Fetches
        pages of `page_size` (0: the server's default) as the iteration goes on; `timeout` applies
        to each page."""
        pages = calls.list_generations(page_size=page_size, owner=owner, show_deleted=show_deleted)
        yield from self._paged(pages, timeout)

    def delete_generation(self, name: str, *, timeout: Timeout = DEFAULT) -> Generation:
        """Deletes a generation (soft delete): its jobs are cancelled and it answers NOT_FOUND from
        now on. Returns it with `delete_time` and `expire_time`: `undelete_generation` restores it
        until then. Not retried."""
        return self._unary(calls.delete_generation(name), timeout)

    def undelete_generation(self, name: str, *, timeout: Timeout = DEFAULT) -> Generation:
        """Restores a deleted generation before its `expire_time`; returns it. One that is not
        deleted raises `AlreadyExists`; one already purged, `NotFound`. Not retried."""
        return self._unary(calls.undelete_generation(name), timeout)

    def versions(
        self, generation: str, *, page_size: int = 0, timeout: Timeout = DEFAULT
    ) -> Iterator[Version]:
        """A generation's versions, oldest first, paging on its own."""
        yield from self._paged(calls.list_versions(generation, page_size=page_size), timeout)

    def files(
        self, version: str, *, blame: bool = False, page_size: int = 0, timeout: Timeout = DEFAULT
    ) -> Iterator[File]:
        """A COMPLETED version's files, in path order, paging on its own; with `blame=True`, each
        with the version that last changed it (`File.blame`)."""
        yield from self._paged(calls.list_files(version, page_size=page_size, blame=blame), timeout)

    def blame(
        self, version: str, path: str | None = None, *, page_size: int = 0, timeout: Timeout = DEFAULT
    ) -> Iterator[FileBlame]:
        """For each file of a COMPLETED version (or only `path`, a file or a directory), in path
        order: the version that last changed it, its kind and prompt, and when it was made."""
        yield from self._paged(calls.blame(version, path=path, page_size=page_size), timeout)

    def draft_prompt(
        self,
        text: str,
        *,
        context: str | None = None,
        model: str | None = None,
        request_id: str | None = None,
        timeout: Timeout = DEFAULT,
    ) -> Draft:
        """Asks a text model to draft a prompt for `model` (None: the default) from `text` and an
        optional context or style instruction. The draft is stored (`Draft.name`); it is not a
        version. `request_id` (default: a new UUID) makes a retry, this call's own or a repeat
        with the same id, answer the first call's draft without asking the model again."""
        call = calls.draft_prompt(text, context=context, model=model, request_id=request_id)
        return self._unary(call, timeout)

    def get_draft(self, name: str, *, timeout: Timeout = DEFAULT) -> Draft:
        """The draft `drafts/{d}`."""
        return self._unary(calls.get_draft(name), timeout)

    def drafts(self, *, page_size: int = 0, timeout: Timeout = DEFAULT) -> Iterator[Draft]:
        """The caller's drafts, newest first, paging on its own."""
        yield from self._paged(calls.list_drafts(page_size=page_size), timeout)

    def update_draft(
        self, name: str, prompt: str, *, etag: str | None = None, timeout: Timeout = DEFAULT
    ) -> Draft:
        """Replaces the draft's prompt with an edit; with `etag`, a draft changed since it was read
        is refused (`Aborted`)."""
        return self._unary(calls.update_draft(name, prompt, etag=etag), timeout)

    def delete_draft(self, name: str, *, etag: str | None = None, timeout: Timeout = DEFAULT) -> None:
        """Deletes one of your drafts for good; one a version was made from stays (`FailedPrecondition`,
        DRAFT_IN_USE), and with `etag`, a draft changed since it was read is refused (`Aborted`)."""
        self._unary(calls.delete_draft(name, etag=etag), timeout)

    def webhook_deliveries(
        self, parent: str, *, page_size: int = 0, timeout: Timeout = DEFAULT
    ) -> Iterator[WebhookDelivery]:
        """The webhook deliveries of a version or a whole generation, oldest first, each with its
        attempts, paging on its own."""
        yield from self._paged(calls.list_webhook_deliveries(parent, page_size=page_size), timeout)

    def replay_webhook_delivery(self, name: str, *, timeout: Timeout = DEFAULT) -> WebhookDelivery:
        """Sends a delivery again now (same `webhook-id` and body), whatever its state; returns it
        with the new attempt. Not retried."""
        return self._unary(calls.replay_webhook_delivery(name), timeout)

    def read_file(self, version: str, path: str, *, timeout: Timeout = DEFAULT) -> bytes:
        """One file's bytes."""
        return self._collect(calls.read_file(version, path), timeout)

    def export(
        self, version: str, directory: str | os.PathLike[str], *, timeout: Timeout = DEFAULT
    ) -> list[Path]:
        """Writes the version's whole tree under `directory` (created if needed); returns the paths
        written. A path that would land outside the directory is refused (`ValueError`), and every
        file's SHA-256 is checked (`AtelierError` with reason CHECKSUM_MISMATCH)."""
        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        return self._collect(calls.export_tree(version, root), timeout)

    def diff(
        self, base: str, target: str, *, text: bool = False, timeout: Timeout = DEFAULT
    ) -> list[FileDiff]:
        """The paths that differ from `base` to `target`, in path order; with `text=True`, unified
        diffs of text files too."""
        return self._unary(calls.diff(base, target, text=text), timeout)

    def models(self, *, timeout: Timeout = DEFAULT) -> list[Model]:
        """The models the server offers; the default one has `default=True`."""
        return self._unary(calls.list_models(), timeout)

    def limits(self, *, timeout: Timeout = DEFAULT) -> RequestLimits:
        """What the server accepts in a request: the most outputs of a fan-out, the longest
        prompt, the attachments' and trees' sizes (from ListModels)."""
        return self._unary(calls.request_limits(), timeout)

    def session(self, generation: str, *, timeout: Timeout = DEFAULT) -> Session:
        """The conversation session of a generation."""
        return self._unary(calls.get_session(generation), timeout)

    def turns(
        self, generation: str, *, version: str | None = None, page_size: int = 0, timeout: Timeout = DEFAULT
    ) -> Iterator[Turn]:
        """A session's turns in the order they were made; with `version`, only that version's branch
        (exactly the history the model saw for it)."""
        yield from self._paged(calls.list_turns(generation, version=version, page_size=page_size), timeout)

    # The I/O: every call goes through these, and so through the one error boundary.

    def _unary(self, call: calls.UnaryCall[_T], timeout: Timeout) -> _T:
        method = getattr(self._stub, call.method)

        def attempt(time_left: float | None) -> Any:
            return errors.call(method, call.request(), timeout=time_left, metadata=self._config.metadata)

        policy = self._retry_policy(call)
        return call.read(retry_call(attempt, policy=policy, deadline=self._deadline(timeout)))

    def _stream(self, method: str, request: Any, deadline: Deadline) -> Generator[Any, None, None]:
        return errors.stream(
            getattr(self._stub, method), request, timeout=deadline.remaining(), metadata=self._config.metadata
        )

    def _collect(self, call: calls.StreamCall[_T], timeout: Timeout) -> _T:
        deadline = self._deadline(timeout)

        def attempt(_: float | None) -> _T:
            sink = call.sink()
            try:
                with closing(self._stream(call.method, call.request, deadline)) as stream:
                    for response in stream:
                        sink.feed(response)
                return sink.close()
            finally:
                sink.abort()

        return retry_call(attempt, policy=self._config.retry, deadline=deadline)

    def _paged(self, pages: calls.Pages[_T], timeout: Timeout) -> Iterator[_T]:
        while (call := pages.next_call()) is not None:
            yield from self._unary(call, timeout)
