"""What each call sends and how its answer reads, built without I/O: both clients make these calls,
and differ only in how they wait for them (`AtelierClient` blocks, `AsyncAtelierClient` awaits)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from atelier import _convert as convert
from atelier._errors import AtelierError
from atelier._files import TreeWriter
from atelier._retry import Deadline, RetryPolicy, RetryState
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
from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import file_pb2, webhook_pb2

_T = TypeVar("_T")
_T_co = TypeVar("_T_co", covariant=True)

CHUNK_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class UnaryCall(Generic[_T]):
    """A unary (or client-streaming) call: its method, its request, and how its response reads.

    `request` makes the request of one attempt: a client stream is used up by an attempt, so a
    retry needs a fresh one (a unary request is the same message every time). `retry=False` for
    the calls that are not safe to repeat.
    """

    method: str
    request: Callable[[], Any]
    read: Callable[[Any], _T]
    retry: bool = True


def _call(method: str, request: Any, read: Callable[[Any], _T], *, retry: bool = True) -> UnaryCall[_T]:
    """A unary call that sends the same request on every attempt."""
    return UnaryCall(method, lambda: request, read, retry)


class Sink(Protocol[_T_co]):
    """Where the responses of a server stream go, until it ends (`close`) or fails (`abort`)."""

    def feed(self, response: Any) -> None: ...

    def close(self) -> _T_co: ...

    def abort(self) -> None: ...


@dataclass(frozen=True, slots=True)
class StreamCall(Generic[_T]):
    """A server-streaming call read to its end into one result. A retry starts the stream over,
    into a fresh sink."""

    method: str
    request: Any
    sink: Callable[[], Sink[_T]]


class Pages(Generic[_T]):
    """A List call read page by page: the call for each next page, and the items of each page."""

    def __init__(
        self, method: str, request: Any, *, page_size: int, items: Callable[[Any], Iterable[_T]]
    ) -> None:
        request.page_size = page_size
        self._method = method
        self._request = request
        self._items = items
        self._done = False

    def next_call(self) -> UnaryCall[list[_T]] | None:
        """The call for the next page; None after the last page."""
        return None if self._done else _call(self._method, self._request, self._read_page)

    def _read_page(self, response: Any) -> list[_T]:
        if response.next_page_token:
            self._request.page_token = response.next_page_token
        else:
            self._done = True
        return list(self._items(response))


def is_batch(name: str) -> bool:
    return "/batches/" in name


class ProgressFollower:
    """A Progress call across reconnects: the request that resumes after the last event seen, the
    events not seen yet, and whether (and when) to reconnect after a failure. A batch's stream
    resumes with the last event's resume token, and ends once every output has ended."""

    def __init__(
        self, name: str, *, after_seq: int, policy: RetryPolicy, deadline: Deadline, resume_token: str = ""
    ) -> None:
        self._name = name
        self.deadline = deadline
        self._last = after_seq
        self._resume_token = resume_token
        # A batch's outputs: the last seq yielded of each.
        self._last_of: dict[str, int] = {}
        self._retries = RetryState(policy, deadline)

    def request(self) -> pb.ProgressRequest:
        if is_batch(self._name):
            return pb.ProgressRequest(name=self._name, resume_token=self._resume_token)
        return pb.ProgressRequest(name=self._name, after_seq=self._last)

    def accept(self, message: Any) -> ProgressEvent | None:
        """The event of a message, or None for an event already yielded (a reconnect replays some)."""
        event = convert.convert_progress_event(message)
        if is_batch(self._name):
            if event.seq <= self._last_of.get(event.version, 0):
                return None
            self._last_of[event.version] = event.seq
            self._resume_token = event.resume_token
        elif event.seq <= self._last:
            return None
        self._last = event.seq
        self._retries.reset()
        return event

    def finished(self, event: ProgressEvent) -> bool:
        """Whether `event` is the stream's last: a version's terminal event, or the event that
        ends a batch's last running output."""
        if is_batch(self._name):
            return event.batch_counts is not None and event.batch_counts.done
        return event.terminal

    def reconnect_delay(self, exc: AtelierError) -> float | None:
        """How long to wait before reconnecting after `exc`; None to give up."""
        return self._retries.next_delay(exc)


class _Bytes:
    """A ReadFile stream's chunks, joined."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def feed(self, response: Any) -> None:
        self._chunks.append(response.data)

    def close(self) -> bytes:
        return b"".join(self._chunks)

    def abort(self) -> None:
        pass


def new_request_id() -> str:
    return str(uuid.uuid4())


def session_name(generation: str) -> str:
    return generation if generation.endswith("/session") else f"{generation}/session"


# Starting work. Every call that starts work carries a request id, made once per call when the
# caller gave none, so that a retry cannot start a second job.


def generate(
    prompt: str,
    *,
    model: str | None,
    attachments: Iterable[Attachment],
    request_id: str | None,
    variants: Iterable[Variant | str] = (),
    count: int | None = None,
    draft: str | None = None,
    webhook: Webhook | None = None,
) -> UnaryCall[Version]:
    request = generate_request(prompt, model=model, attachments=attachments, variants=variants, count=count)
    request.request_id = request_id or new_request_id()
    request.draft = draft or ""
    _subscribe(request, webhook)
    return _call("Generate", request, convert.convert_version)


def generate_request(
    prompt: str,
    *,
    model: str | None,
    attachments: Iterable[Attachment] = (),
    variants: Iterable[Variant | str] = (),
    count: int | None = None,
) -> pb.GenerateRequest:
    request = pb.GenerateRequest(
        prompt=prompt,
        model=model or "",
        attachments=convert.attachments_to_proto(attachments),
        variants=convert.variants_to_proto(variants),
    )
    if count is not None:
        request.count = count
    return request


def tweak(
    name: str,
    prompt: str,
    *,
    attachments: Iterable[Attachment],
    etag: str | None,
    model: str | None,
    request_id: str | None,
    webhook: Webhook | None = None,
) -> UnaryCall[Version]:
    request = pb.TweakRequest(
        name=name,
        prompt=prompt,
        attachments=convert.attachments_to_proto(attachments),
        etag=etag or "",
        model=model or "",
        request_id=request_id or new_request_id(),
    )
    _subscribe(request, webhook)
    return _call("Tweak", request, convert.convert_version)


def iterate(
    parent: str,
    prompt: str,
    *,
    etag: str | None,
    model: str | None,
    request_id: str | None,
    webhook: Webhook | None = None,
) -> UnaryCall[Version]:
    request = pb.IterateRequest(
        parent=parent,
        prompt=prompt,
        etag=etag or "",
        model=model or "",
        request_id=request_id or new_request_id(),
    )
    _subscribe(request, webhook)
    return _call("Iterate", request, convert.convert_version)


def _subscribe(
    request: pb.GenerateRequest | pb.TweakRequest | pb.IterateRequest, webhook: Webhook | None
) -> None:
    subscription = convert.webhook_to_proto(webhook)
    if subscription is not None:
        request.webhook.CopyFrom(subscription)


def regenerate(
    name: str, *, request_id: str | None, variants: Iterable[Variant | str] = (), count: int | None = None
) -> UnaryCall[Version]:
    request = regenerate_request(name, variants=variants, count=count)
    request.request_id = request_id or new_request_id()
    return _call("Regenerate", request, convert.convert_version)


def regenerate_request(
    name: str, *, variants: Iterable[Variant | str] = (), count: int | None = None
) -> pb.RegenerateRequest:
    request = pb.RegenerateRequest(name=name, variants=convert.variants_to_proto(variants))
    if count is not None:
        request.count = count
    return request


def merge(
    ours: str, theirs: str, *, strategy: MergeStrategy | None, request_id: str | None
) -> UnaryCall[MergeResult]:
    request = pb.MergeRequest(
        ours=ours,
        theirs=theirs,
        strategy=convert.merge_strategy_to_proto(strategy),
        request_id=request_id or new_request_id(),
    )
    return _call("Merge", request, convert.convert_merge_response)


def upload_tree(
    files: Sequence[tuple[str, bytes]], *, description: str, request_id: str | None
) -> UnaryCall[Version]:
    """A retry sends the whole upload again, with the same request id."""
    key = request_id or new_request_id()
    return UnaryCall(
        "UploadTree",
        lambda: upload_requests(files, request_id=key, description=description),
        convert.convert_version,
    )


def upload_requests(
    files: Sequence[tuple[str, bytes]], *, request_id: str, description: str
) -> Iterator[pb.UploadTreeRequest]:
    """The UploadTree messages: the first names the upload, then each file starts with its path,
    and its bytes follow in chunks. The MIME type is left empty: the server guesses it, with the one
    table it uses for every file."""
    yield pb.UploadTreeRequest(request_id=request_id, description=description)
    for path, data in files:
        yield pb.UploadTreeRequest(file=file_pb2.File(path=path), data=data[:CHUNK_BYTES])
        for offset in range(CHUNK_BYTES, len(data), CHUNK_BYTES):
            yield pb.UploadTreeRequest(data=data[offset : offset + CHUNK_BYTES])


def cancel(name: str) -> UnaryCall[Version]:
    return _call("CancelVersion", pb.CancelVersionRequest(name=name), convert.convert_version, retry=False)


# Reading


def get_version(name: str) -> UnaryCall[Version]:
    return _call("GetVersion", pb.GetVersionRequest(name=name), convert.convert_version)


def get_generation(name: str) -> UnaryCall[Generation]:
    return _call("GetGeneration", pb.GetGenerationRequest(name=name), convert.convert_generation)


def list_generations(*, page_size: int, owner: str = "", show_deleted: bool = False) -> Pages[Generation]:
    return Pages(
        "ListGenerations",
        pb.ListGenerationsRequest(owner=owner, show_deleted=show_deleted),
        page_size=page_size,
        items=lambda response: (convert.convert_generation(g) for g in response.generations),
    )


def delete_generation(name: str) -> UnaryCall[Generation]:
    # Deleting twice answers NOT_FOUND the second time, so a retry after a lost answer would
    # report a failure for a delete that happened: not retried.
    request = pb.DeleteGenerationRequest(name=name)
    return _call("DeleteGeneration", request, convert.convert_generation, retry=False)


def undelete_generation(name: str) -> UnaryCall[Generation]:
    request = pb.UndeleteGenerationRequest(name=name)
    return _call("UndeleteGeneration", request, convert.convert_generation, retry=False)


def list_versions(generation: str, *, page_size: int) -> Pages[Version]:
    return Pages(
        "ListVersions",
        pb.ListVersionsRequest(parent=generation),
        page_size=page_size,
        items=lambda response: (convert.convert_version(v) for v in response.versions),
    )


def list_files(version: str, *, page_size: int, blame: bool = False) -> Pages[File]:
    return Pages(
        "ListFiles",
        pb.ListFilesRequest(parent=version, include_blame=blame),
        page_size=page_size,
        items=lambda response: (convert.convert_file(f) for f in response.files),
    )


def blame(version: str, *, path: str | None, page_size: int) -> Pages[FileBlame]:
    return Pages(
        "Blame",
        pb.BlameRequest(name=version, path=path or ""),
        page_size=page_size,
        items=lambda response: (convert.convert_blame(b) for b in response.files),
    )


def draft_prompt(
    text: str, *, context: str | None, model: str | None, request_id: str | None
) -> UnaryCall[Draft]:
    # The request id makes a retry answer the first attempt's draft, not ask the model again.
    request = pb.DraftPromptRequest(
        text=text, context=context or "", model=model or "", request_id=request_id or new_request_id()
    )
    return _call("DraftPrompt", request, convert.convert_draft)


def get_draft(name: str) -> UnaryCall[Draft]:
    return _call("GetDraft", pb.GetDraftRequest(name=name), convert.convert_draft)


def list_drafts(*, page_size: int) -> Pages[Draft]:
    return Pages(
        "ListDrafts",
        pb.ListDraftsRequest(),
        page_size=page_size,
        items=lambda response: (convert.convert_draft(d) for d in response.drafts),
    )


def update_draft(name: str, prompt: str, *, etag: str | None) -> UnaryCall[Draft]:
    request = pb.UpdateDraftRequest(name=name, prompt=prompt, etag=etag or "")
    return _call("UpdateDraft", request, convert.convert_draft)


def delete_draft(name: str, *, etag: str | None) -> UnaryCall[None]:
    # Not retried, as DeleteGeneration: a retry after a lost answer would say NOT_FOUND.
    request = pb.DeleteDraftRequest(name=name, etag=etag or "")
    return _call("DeleteDraft", request, lambda _: None, retry=False)


def list_webhook_deliveries(parent: str, *, page_size: int) -> Pages[WebhookDelivery]:
    return Pages(
        "ListWebhookDeliveries",
        webhook_pb2.ListWebhookDeliveriesRequest(parent=parent),
        page_size=page_size,
        items=lambda response: (convert.convert_webhook_delivery(d) for d in response.deliveries),
    )


def replay_webhook_delivery(name: str) -> UnaryCall[WebhookDelivery]:
    # Each replay POSTs once more; the receiver dedupes on the webhook id, but a retry after a lost
    # answer would still send twice: not retried.
    request = webhook_pb2.ReplayWebhookDeliveryRequest(name=name)
    return _call("ReplayWebhookDelivery", request, convert.convert_webhook_delivery, retry=False)


def read_file(version: str, path: str) -> StreamCall[bytes]:
    return StreamCall("ReadFile", pb.ReadFileRequest(name=version, path=path), _Bytes)


def export_tree(version: str, root: Path) -> StreamCall[list[Path]]:
    return StreamCall("ExportTree", pb.ExportTreeRequest(name=version), lambda: TreeWriter(root))


def diff(base: str, target: str, *, text: bool) -> UnaryCall[list[FileDiff]]:
    request = pb.DiffRequest(base=base, target=target, include_text_diffs=text)
    return _call("Diff", request, lambda response: [convert.convert_file_diff(f) for f in response.files])


def get_batch(name: str) -> UnaryCall[Batch]:
    return _call("GetBatch", pb.GetBatchRequest(name=name), convert.convert_batch)


def estimate_cost(request: pb.EstimateCostRequest) -> UnaryCall[CostEstimate]:
    return _call("EstimateCost", request, convert.convert_estimate)


def estimate_request(
    prompt: str,
    *,
    model: str | None,
    variants: Iterable[Variant | str],
    count: int | None,
    tweak: str | None,
    iterate: str | None,
    regenerate: str | None,
    attachments: Iterable[Attachment] = (),
) -> pb.EstimateCostRequest:
    """The request to price: a Generate of `prompt`, or a Tweak, Iterate or Regenerate of the
    version named by `tweak`, `iterate` or `regenerate` (at most one). `attachments` go with a
    Generate or a Tweak (an Iterate takes none; a Regenerate sends its version's own again)."""
    bases = [name for name in (tweak, iterate, regenerate) if name]
    if len(bases) > 1:
        raise ValueError("name at most one of tweak, iterate and regenerate")
    attached = list(attachments)
    if attached and (iterate or regenerate):
        raise ValueError("attachments go with a Generate or a Tweak, not an Iterate or a Regenerate")
    if tweak:
        return pb.EstimateCostRequest(
            tweak=pb.TweakRequest(
                name=tweak,
                prompt=prompt,
                model=model or "",
                attachments=convert.attachments_to_proto(attached),
            )
        )
    if iterate:
        return pb.EstimateCostRequest(
            iterate=pb.IterateRequest(parent=iterate, prompt=prompt, model=model or "")
        )
    if regenerate:
        return pb.EstimateCostRequest(
            regenerate=regenerate_request(regenerate, variants=variants, count=count)
        )
    generate = generate_request(prompt, model=model, attachments=attached, variants=variants, count=count)
    return pb.EstimateCostRequest(generate=generate)


def get_usage(*, principal: str, start: datetime | None, end: datetime | None) -> UnaryCall[Usage]:
    request = pb.GetUsageRequest(principal=principal)
    if start is not None:
        request.start_time.FromDatetime(start)
    if end is not None:
        request.end_time.FromDatetime(end)
    return _call("GetUsage", request, convert.convert_usage)


def list_models() -> UnaryCall[list[Model]]:
    return _call(
        "ListModels",
        pb.ListModelsRequest(),
        lambda response: [convert.convert_model(m) for m in response.models],
    )


def request_limits() -> UnaryCall[RequestLimits]:
    return _call(
        "ListModels", pb.ListModelsRequest(), lambda response: convert.convert_request_limits(response.limits)
    )


def get_session(generation: str) -> UnaryCall[Session]:
    request = pb.GetSessionRequest(name=session_name(generation))
    return _call("GetSession", request, convert.convert_session)


def list_turns(generation: str, *, version: str | None, page_size: int) -> Pages[Turn]:
    return Pages(
        "ListTurns",
        pb.ListTurnsRequest(parent=session_name(generation), version=version or ""),
        page_size=page_size,
        items=lambda response: (convert.convert_turn(t) for t in response.turns),
    )
