"""AtelierService's per-method logic, whichever transport carries the call: authenticates, checks
every text and name, calls the domain (telling it when the caller stops waiting), converts the
answers, and records each mutating call in the audit log. A failure is raised as an AtelierError
(an unexpected one is logged and becomes INTERNAL), which each transport turns into its status
with ErrorInfo: `_grpc` for the gRPC port, `server.web` for Connect and gRPC-Web."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import (
    batch_pb2,
    draft_pb2,
    file_pb2,
    generation_pb2,
    progress_pb2,
    session_pb2,
    tree_pb2,
    upload_pb2,
    webhook_pb2,
)
from google.protobuf import empty_pb2, timestamp_pb2
from google.protobuf.message import Message

from server.api import _audit, _convert, _names
from server.api._auth import Authenticator
from server.api._call import Call
from server.api._file_urls import FileUrls
from server.api._limits import Limits, Slot
from server.api._texts import check_texts
from server.config import Settings
from server.domain import (
    READ,
    WRITE,
    ApiKeys,
    AtelierError,
    CostQuestion,
    FieldViolation,
    FileBlame,
    GenerationService,
    InvalidArgument,
    Principal,
    ResourceExhausted,
    Strategy,
    TreeEntry,
    Variant,
    VersionKind,
    VersionRef,
    WebhookEventType,
    WebhookRequest,
)
from server.files import FileContent
from server.metrics import LIMIT_REFUSALS

_log = logging.getLogger("atelier.api")
_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")

_Unary = Callable[[Any, _Req, Call, Principal], Awaitable[_Resp]]
_Stream = Callable[[Any, _Req, Call, Principal], AsyncIterator[_Resp]]
UnaryMethod = Callable[[Any, _Req, Call], Awaitable[_Resp]]
StreamMethod = Callable[[Any, _Req, Call], AsyncIterator[_Resp]]


def _internal(method: str) -> AtelierError:
    _log.exception("unexpected error in %s", method)
    return AtelierError(f"internal error in {method}; the server log has the details", reason="INTERNAL")


def _count_refusal(error: AtelierError) -> None:
    """Counts a call refused for its caller's limits, whichever transport carries it (both pass here)."""
    if isinstance(error, ResourceExhausted):
        LIMIT_REFUSALS.labels(error.reason).inc()


def _unary(scope: str) -> Callable[[_Unary[_Req, _Resp]], UnaryMethod[_Req, _Resp]]:
    """A call that reads: authenticated, its caller holding `scope`, its texts checked, and every
    failure an AtelierError."""
    return functools.partial(_call, scope=scope, audited=False)


def _mutation(handler: _Unary[_Req, _Resp]) -> UnaryMethod[_Req, _Resp]:
    """A call that writes: as `_unary` with the write scope, and recorded in the audit log
    whatever its outcome."""
    return _call(handler, scope=WRITE, audited=True)


def _upload(handler: _Unary[_Req, _Resp]) -> UnaryMethod[_Req, _Resp]:
    """A mutation that receives files (UploadTree, UploadFiles): it holds one of the caller's
    upload slots."""
    return _call(handler, scope=WRITE, audited=True, slot=Slot.UPLOAD)


def _call(
    handler: _Unary[_Req, _Resp], *, scope: str, audited: bool, slot: Slot | None = None
) -> UnaryMethod[_Req, _Resp]:
    @functools.wraps(handler)
    async def wrapper(self: AtelierMethods, request: _Req, call: Call) -> _Resp:
        principal: Principal | None = None
        response: _Resp | None = None
        outcome, reason = "OK", ""
        try:
            principal = await self._caller(call, scope)
            with self._limits.slot(slot, principal) if slot else contextlib.nullcontext():
                response = await handler(self, _checked(request), call, principal)
            return response
        except AtelierError as error:
            outcome, reason = error.code, error.reason
            _count_refusal(error)
            raise
        except asyncio.CancelledError:
            outcome = "CANCELLED"
            raise
        except Exception as exc:
            outcome, reason = "INTERNAL", "INTERNAL"
            raise _internal(handler.__name__) from exc
        finally:
            if audited:
                _audit.record(
                    principal=principal.name if principal is not None else None,
                    method=handler.__name__,
                    resource=_resource(request, response),
                    outcome=outcome,
                    reason=reason,
                )

    return wrapper


def _stream(scope: str) -> Callable[[_Stream[_Req, _Resp]], StreamMethod[_Req, _Resp]]:
    """As `_unary`, for the methods that stream their answer."""

    def decorate(handler: _Stream[_Req, _Resp]) -> StreamMethod[_Req, _Resp]:
        @functools.wraps(handler)
        async def wrapper(self: AtelierMethods, request: _Req, call: Call) -> AsyncIterator[_Resp]:
            try:
                principal = await self._caller(call, scope)
                # Released however the stream ends: a client that cancels raises CancelledError here.
                with self._limits.slot(Slot.STREAM, principal):
                    async for item in handler(self, _checked(request), call, principal):
                        yield item
            except AtelierError as error:
                _count_refusal(error)
                raise
            except (asyncio.CancelledError, GeneratorExit):
                raise
            except Exception as exc:
                raise _internal(handler.__name__) from exc

        return wrapper

    return decorate


def _checked(request: _Req) -> _Req:
    """The request, once its texts pass the one rule for texts (each message of a stream, as it comes)."""
    if isinstance(request, Message):
        check_texts(request)
        return request
    return cast(_Req, _each_checked(cast(AsyncIterator[Message], request)))


async def _each_checked(messages: AsyncIterator[Message]) -> AsyncIterator[Message]:
    async for message in messages:
        check_texts(message)
        yield message


def _resource(request: object, response: object) -> str:
    """The name of what a call made (a version, a draft), else of what it named."""
    made = getattr(response, "version", response)
    if isinstance(made, (generation_pb2.Version, draft_pb2.Draft)) and made.name:
        return made.name
    for field in ("name", "parent", "ours"):
        named = getattr(request, field, None)
        if isinstance(named, str) and named:
            return named
    return ""


def _webhook(request: pb.GenerateRequest | pb.TweakRequest | pb.IterateRequest) -> WebhookRequest | None:
    """The request's webhook, if it has one."""
    if not request.HasField("webhook"):
        return None
    webhook = request.webhook
    if not webhook.url:
        raise InvalidArgument(
            "the webhook has no url",
            reason="WEBHOOK_URL_NOT_ALLOWED",
            violations=[FieldViolation("webhook.url", "must be an http(s) URL the server allows")],
        )
    events: set[WebhookEventType] = set()
    for index, value in enumerate(webhook.events):
        name = webhook_pb2.WebhookEventType.Name(value) if value in _WEBHOOK_EVENT_NUMBERS else ""
        if not name or value == webhook_pb2.WEBHOOK_EVENT_TYPE_UNSPECIFIED:
            raise InvalidArgument(
                f"webhook.events[{index}] is {value}, not an event a webhook reports",
                reason="INVALID_WEBHOOK_EVENT",
                violations=[FieldViolation(f"webhook.events[{index}]", "must be a WebhookEventType, not 0")],
            )
        events.add(WebhookEventType(name.removeprefix("WEBHOOK_EVENT_TYPE_")))
    return WebhookRequest(url=webhook.url, events=frozenset(events))


_WEBHOOK_EVENT_NUMBERS = frozenset(webhook_pb2.WebhookEventType.values())


def _attachments(attachments: Iterable[file_pb2.Attachment]) -> list[FileContent]:
    return [FileContent(a.name, a.mime_type, a.data) for a in attachments]


class AtelierMethods:
    """One method per RPC of AtelierService, named as the RPC, taking its request and the `Call`."""

    def __init__(
        self,
        *,
        service: GenerationService,
        api_keys: ApiKeys,
        settings: Settings,
        file_urls: FileUrls | None = None,
    ) -> None:
        self._service = service
        self._settings = settings
        self._auth = Authenticator(settings=settings, api_keys=api_keys)
        self._file_urls = file_urls
        self._limits = Limits(settings)

    async def _files(
        self,
        call: Call,
        ref: VersionRef,
        entries: Sequence[TreeEntry],
        contents: Mapping[str, bytes] | None = None,
        blames: Sequence[FileBlame | None] | None = None,
    ) -> list[file_pb2.File]:
        """The files as messages, with their URLs (when the web port is on), images' sizes and,
        when given (one per entry), which version last changed each."""
        pixels = await self._service.image_sizes(entries, contents=contents)
        urls = self._file_urls
        return [
            _convert.file_to_proto(
                entry,
                download_url=urls.url(ref, entry.path, base=call.web_base()) if urls is not None else "",
                pixels=pixels.get(entry.blob_sha256),
                blame=blames[index] if blames is not None else None,
            )
            for index, entry in enumerate(entries)
        ]

    async def _caller(self, call: Call, scope: str) -> Principal:
        """The authenticated caller, holding `scope` and within its request rate (the same
        limiter whichever transport carries the call)."""
        principal = await self._auth.authenticate(call.metadata())
        principal.require(scope)
        self._limits.admit(principal)
        return principal

    @_mutation
    async def Generate(
        self, request: pb.GenerateRequest, call: Call, principal: Principal
    ) -> generation_pb2.Version:
        version = await self._service.generate(
            caller=principal,
            prompt=request.prompt,
            model=request.model,
            request_id=request.request_id,
            attachments=_attachments(request.attachments),
            draft_id=_names.parse_draft_name(request.draft, field="draft") if request.draft else None,
            deadline=call.deadline(),
            variants=_variants(request.variants),
            count=request.count if request.HasField("count") else None,
            webhook=_webhook(request),
        )
        return _convert.version_to_proto(version)

    @_mutation
    async def Tweak(
        self, request: pb.TweakRequest, call: Call, principal: Principal
    ) -> generation_pb2.Version:
        version = await self._service.tweak(
            caller=principal,
            parent=_names.parse_version_name(request.name),
            prompt=request.prompt,
            model=request.model,
            request_id=request.request_id,
            etag=request.etag,
            attachments=_attachments(request.attachments),
            deadline=call.deadline(),
            webhook=_webhook(request),
        )
        return _convert.version_to_proto(version)

    @_mutation
    async def Regenerate(
        self, request: pb.RegenerateRequest, call: Call, principal: Principal
    ) -> generation_pb2.Version:
        version = await self._service.regenerate(
            caller=principal,
            version=_names.parse_version_name(request.name),
            request_id=request.request_id,
            deadline=call.deadline(),
            variants=_variants(request.variants),
            count=request.count if request.HasField("count") else None,
        )
        return _convert.version_to_proto(version)

    @_mutation
    async def Iterate(
        self, request: pb.IterateRequest, call: Call, principal: Principal
    ) -> generation_pb2.Version:
        version = await self._service.iterate(
            caller=principal,
            parent=_names.parse_version_name(request.parent, field="parent"),
            prompt=request.prompt,
            model=request.model,
            request_id=request.request_id,
            etag=request.etag,
            deadline=call.deadline(),
            webhook=_webhook(request),
        )
        return _convert.version_to_proto(version)

    @_stream(READ)
    async def Progress(
        self, request: pb.ProgressRequest, call: Call, principal: Principal
    ) -> AsyncIterator[progress_pb2.ProgressEvent]:
        if _names.is_batch_name(request.name):
            async for message in self._batch_progress(request, principal):
                yield message
            return
        ref = _names.parse_version_name(request.name)
        if request.after_seq < 0:
            raise InvalidArgument(
                f"after_seq is {request.after_seq}; it must not be negative",
                reason="INVALID_CURSOR",
                violations=[FieldViolation("after_seq", "must be 0 or a seq from an earlier event")],
            )
        if request.resume_token:
            raise InvalidArgument(
                "resume_token resumes a batch's stream; a version's resumes with after_seq",
                reason="INVALID_CURSOR",
                violations=[FieldViolation("resume_token", "must be empty when name is a version")],
            )
        name = _names.version_name(ref.generation_id, ref.number)
        # A client that goes away cancels only this generator, never the job.
        async for event in self._service.progress(caller=principal, ref=ref, after_seq=request.after_seq):
            yield _convert.event_to_proto(event, name)

    async def _batch_progress(
        self, request: pb.ProgressRequest, principal: Principal
    ) -> AsyncIterator[progress_pb2.ProgressEvent]:
        ref = _names.parse_batch_name(request.name)
        if request.after_seq:
            raise InvalidArgument(
                "after_seq resumes a version's stream; a batch's resumes with resume_token",
                reason="INVALID_CURSOR",
                violations=[FieldViolation("after_seq", "must be 0 when name is a batch")],
            )
        name = _names.batch_name(ref.generation_id, ref.number)
        async for event in self._service.batch_progress(
            caller=principal, ref=ref, resume_token=request.resume_token
        ):
            yield _convert.batch_event_to_proto(event, generation_id=ref.generation_id, batch=name)

    @_mutation
    async def CancelVersion(
        self, request: pb.CancelVersionRequest, call: Call, principal: Principal
    ) -> generation_pb2.Version:
        ref = _names.parse_version_name(request.name)
        version = await self._service.cancel(caller=principal, ref=ref, deadline=call.deadline())
        return _convert.version_to_proto(version)

    @_unary(READ)
    async def GetVersion(
        self, request: pb.GetVersionRequest, call: Call, principal: Principal
    ) -> generation_pb2.Version:
        ref = _names.parse_version_name(request.name)
        return _convert.version_to_proto(await self._service.get_version(caller=principal, ref=ref))

    @_unary(READ)
    async def ListVersions(
        self, request: pb.ListVersionsRequest, call: Call, principal: Principal
    ) -> pb.ListVersionsResponse:
        generation_id = _names.parse_generation_name(request.parent, field="parent")
        size = _names.page_size(request.page_size)
        scope = f"versions:{generation_id}"
        after = _names.decode_page_token(request.page_token, scope, int)
        versions = await self._service.list_versions(
            caller=principal,
            generation_id=generation_id,
            after_number=after or 0,
            limit=size + 1,
        )
        page, token = _names.page_of(versions, size, scope, lambda item: item.number)
        return pb.ListVersionsResponse(
            versions=[_convert.version_to_proto(v) for v in page], next_page_token=token
        )

    @_unary(READ)
    async def GetGeneration(
        self, request: pb.GetGenerationRequest, call: Call, principal: Principal
    ) -> generation_pb2.Generation:
        generation_id = _names.parse_generation_name(request.name)
        generation = await self._service.get_generation(caller=principal, generation_id=generation_id)
        return _convert.generation_to_proto(generation)

    @_unary(READ)
    async def ListGenerations(
        self, request: pb.ListGenerationsRequest, call: Call, principal: Principal
    ) -> pb.ListGenerationsResponse:
        size = _names.page_size(request.page_size)
        # A page token is only good for the list it came from.
        scope = f"generations:{request.owner}" if request.owner else "generations"
        if request.show_deleted:
            scope += "+deleted"
        before = _names.decode_page_token(request.page_token, scope, str)
        generations = await self._service.list_generations(
            caller=principal,
            owner=request.owner,
            before_id=before,
            limit=size + 1,
            show_deleted=request.show_deleted,
        )
        page, token = _names.page_of(generations, size, scope, lambda item: item.id)
        return pb.ListGenerationsResponse(
            generations=[_convert.generation_to_proto(g) for g in page], next_page_token=token
        )

    @_mutation
    async def DeleteGeneration(
        self, request: pb.DeleteGenerationRequest, call: Call, principal: Principal
    ) -> generation_pb2.Generation:
        generation_id = _names.parse_generation_name(request.name)
        generation = await self._service.delete_generation(
            caller=principal, generation_id=generation_id, deadline=call.deadline()
        )
        return _convert.generation_to_proto(generation)

    @_mutation
    async def UndeleteGeneration(
        self, request: pb.UndeleteGenerationRequest, call: Call, principal: Principal
    ) -> generation_pb2.Generation:
        generation_id = _names.parse_generation_name(request.name)
        generation = await self._service.undelete_generation(
            caller=principal, generation_id=generation_id, deadline=call.deadline()
        )
        return _convert.generation_to_proto(generation)

    @_unary(READ)
    async def ListFiles(
        self, request: pb.ListFilesRequest, call: Call, principal: Principal
    ) -> pb.ListFilesResponse:
        ref = _names.parse_version_name(request.parent, field="parent")
        size = _names.page_size(request.page_size)
        scope = f"files:{ref.generation_id}/{ref.number}"
        after = _names.decode_page_token(request.page_token, scope, str)
        entries = await self._service.list_files(
            caller=principal, ref=ref, after_path=after, limit=size + 1, with_blame=request.include_blame
        )
        page, token = _names.page_of(entries, size, scope, lambda item: item[0].path)
        entries_page, blames = [entry for entry, _ in page], [blame for _, blame in page]
        files = await self._files(call, ref, entries_page, blames=blames)
        return pb.ListFilesResponse(files=files, next_page_token=token)

    @_stream(READ)
    async def ReadFile(
        self, request: pb.ReadFileRequest, call: Call, principal: Principal
    ) -> AsyncIterator[pb.ReadFileResponse]:
        ref = _names.parse_version_name(request.name)
        if not request.path:
            raise InvalidArgument(
                "path is empty",
                reason="INVALID_PATH",
                violations=[FieldViolation("path", "must name a file")],
            )
        entry, data = await self._service.read_file(caller=principal, ref=ref, path=request.path)
        chunk = self._service.read_chunk_bytes
        (file,) = await self._files(call, ref, [entry], {entry.blob_sha256: data})
        yield pb.ReadFileResponse(file=file, data=data[:chunk], offset=0)
        for offset in range(chunk, len(data), chunk):
            yield pb.ReadFileResponse(data=data[offset : offset + chunk], offset=offset)

    @_unary(READ)
    async def ListModels(
        self, request: pb.ListModelsRequest, call: Call, principal: Principal
    ) -> pb.ListModelsResponse:
        views = await self._service.list_models()
        return pb.ListModelsResponse(
            models=[_convert.model_to_proto(view) for view in views],
            default_model=next(view.config.name for view in views if view.default),
            limits=_convert.request_limits_to_proto(self._settings),
        )

    @_unary(READ)
    async def GetSession(
        self, request: pb.GetSessionRequest, call: Call, principal: Principal
    ) -> session_pb2.Session:
        generation_id = _names.parse_session_name(request.name)
        conversation = await self._service.get_conversation(caller=principal, generation_id=generation_id)
        return _convert.session_to_proto(conversation)

    @_unary(READ)
    async def ListTurns(
        self, request: pb.ListTurnsRequest, call: Call, principal: Principal
    ) -> pb.ListTurnsResponse:
        generation_id = _names.parse_session_name(request.parent, field="parent")
        branch_of = _names.parse_version_name(request.version, field="version") if request.version else None
        if branch_of is not None and branch_of.generation_id != generation_id:
            raise InvalidArgument(
                "version must be a version of the session's generation",
                reason="INVALID_NAME",
                violations=[FieldViolation("version", f"must start with generations/{generation_id}/")],
            )
        size = _names.page_size(request.page_size)
        scope = f"turns:{generation_id}:{request.version}"
        after = _names.decode_page_token(request.page_token, scope, int)
        turns = await self._service.list_turns(
            caller=principal,
            generation_id=generation_id,
            after_number=after or 0,
            limit=size + 1,
            branch_of=branch_of,
        )
        page, token = _names.page_of(turns, size, scope, lambda item: item.number)
        return pb.ListTurnsResponse(
            turns=[_convert.turn_to_proto(turn, generation_id=generation_id) for turn in page],
            next_page_token=token,
        )

    @_unary(READ)
    async def Diff(self, request: pb.DiffRequest, call: Call, principal: Principal) -> pb.DiffResponse:
        changes = await self._service.diff(
            caller=principal,
            base=_names.parse_version_name(request.base, field="base"),
            target=_names.parse_version_name(request.target, field="target"),
            include_text_diffs=request.include_text_diffs,
        )
        return pb.DiffResponse(files=[_convert.file_diff_to_proto(change, text) for change, text in changes])

    @_stream(READ)
    async def ExportTree(
        self, request: pb.ExportTreeRequest, call: Call, principal: Principal
    ) -> AsyncIterator[pb.ExportTreeResponse]:
        chunk = self._service.read_chunk_bytes
        ref = _names.parse_version_name(request.name)
        async for entry, data in self._service.export(caller=principal, ref=ref):
            (file,) = await self._files(call, ref, [entry], {entry.blob_sha256: data})
            yield pb.ExportTreeResponse(file=file, data=data[:chunk], offset=0)
            for offset in range(chunk, len(data), chunk):
                yield pb.ExportTreeResponse(data=data[offset : offset + chunk], offset=offset)

    @_upload
    async def UploadTree(
        self, request: AsyncIterator[pb.UploadTreeRequest], call: Call, principal: Principal
    ) -> generation_pb2.Version:
        request_id, description = "", ""
        upload = self._service.start_upload()
        first = True
        async for message in request:
            if first:
                request_id, description, first = message.request_id, message.description, False
                # Refused at once, before any file is stored, rather than after the whole upload.
                self._service.check_upload_description(description)
            if message.HasField("file"):
                await upload.start_file(message.file.path, message.file.mime_type)
            if message.data:
                await upload.write(message.data)
        version = await self._service.finish_upload(
            upload,
            caller=principal,
            description=description,
            request_id=request_id,
            deadline=call.deadline(),
        )
        return _convert.version_to_proto(version)

    @_mutation
    async def Merge(self, request: pb.MergeRequest, call: Call, principal: Principal) -> pb.MergeResponse:
        strategy = {
            tree_pb2.MERGE_STRATEGY_OURS: Strategy.OURS,
            tree_pb2.MERGE_STRATEGY_THEIRS: Strategy.THEIRS,
        }.get(request.strategy, Strategy.NONE)
        version, conflicts = await self._service.merge(
            caller=principal,
            ours=_names.parse_version_name(request.ours, field="ours"),
            theirs=_names.parse_version_name(request.theirs, field="theirs"),
            strategy=strategy,
            request_id=request.request_id,
            deadline=call.deadline(),
        )
        return pb.MergeResponse(
            version=_convert.version_to_proto(version) if version else None,
            conflicts=[_convert.conflict_to_proto(c) for c in conflicts],
        )

    @_unary(READ)
    async def ListWebhookDeliveries(
        self,
        request: webhook_pb2.ListWebhookDeliveriesRequest,
        call: Call,
        principal: Principal,
    ) -> webhook_pb2.ListWebhookDeliveriesResponse:
        generation_id, number = _names.parse_generation_or_version_name(request.parent)
        size = _names.page_size(request.page_size)
        scope = f"webhookDeliveries:{request.parent}"
        after = _names.decode_page_token(request.page_token, scope, int)
        found = await self._service.list_webhook_deliveries(
            caller=principal, generation_id=generation_id, number=number, after_id=after or 0, limit=size + 1
        )
        page, token = _names.page_of(found, size, scope, lambda item: item[0])
        return webhook_pb2.ListWebhookDeliveriesResponse(
            deliveries=[_convert.webhook_delivery_to_proto(delivery) for _, delivery in page],
            next_page_token=token,
        )

    @_mutation
    async def ReplayWebhookDelivery(
        self,
        request: webhook_pb2.ReplayWebhookDeliveryRequest,
        call: Call,
        principal: Principal,
    ) -> webhook_pb2.WebhookDelivery:
        ref, webhook_id = _names.parse_webhook_delivery_name(request.name)
        delivery = await self._service.replay_webhook_delivery(
            caller=principal, ref=ref, webhook_id=webhook_id
        )
        return _convert.webhook_delivery_to_proto(delivery)

    @_upload
    async def UploadFiles(
        self, request: upload_pb2.UploadFilesRequest, call: Call, principal: Principal
    ) -> generation_pb2.Version:
        # The tree's limits (files, sizes, paths) are the domain's, as for UploadTree.
        version = await self._service.upload(
            caller=principal,
            description=request.description,
            request_id=request.request_id,
            files=[FileContent(file.path, file.mime_type, file.data) for file in request.files],
            deadline=call.deadline(),
        )
        return _convert.version_to_proto(version)

    @_unary(READ)
    async def GetBatch(
        self, request: pb.GetBatchRequest, call: Call, principal: Principal
    ) -> batch_pb2.Batch:
        batch = await self._service.get_batch(caller=principal, ref=_names.parse_batch_name(request.name))
        return _convert.batch_to_proto(batch)

    @_unary(READ)
    async def EstimateCost(
        self, request: pb.EstimateCostRequest, call: Call, principal: Principal
    ) -> pb.EstimateCostResponse:
        estimate = await self._service.estimate_cost(caller=principal, question=_cost_question(request))
        return _convert.estimate_to_proto(estimate)

    @_unary(READ)
    async def GetUsage(
        self, request: pb.GetUsageRequest, call: Call, principal: Principal
    ) -> pb.GetUsageResponse:
        start = _time(request, "start_time")
        end = _time(request, "end_time")
        if start is not None and end is not None and end <= start:
            raise InvalidArgument(
                "end_time is not after start_time",
                reason="INVALID_TIME_RANGE",
                violations=[FieldViolation("end_time", "must be after start_time")],
            )
        rows = await self._service.usage(caller=principal, principal=request.principal, start=start, end=end)
        return _convert.usage_to_proto(rows)

    @_mutation
    async def DraftPrompt(
        self, request: pb.DraftPromptRequest, call: Call, principal: Principal
    ) -> draft_pb2.Draft:
        draft = await self._service.draft_prompt(
            caller=principal,
            text=request.text,
            context=request.context,
            model=request.model,
            request_id=request.request_id,
            deadline=call.deadline(),
        )
        return _convert.draft_to_proto(draft)

    @_unary(READ)
    async def GetDraft(
        self, request: pb.GetDraftRequest, call: Call, principal: Principal
    ) -> draft_pb2.Draft:
        draft_id = _names.parse_draft_name(request.name)
        return _convert.draft_to_proto(await self._service.get_draft(caller=principal, draft_id=draft_id))

    @_unary(READ)
    async def ListDrafts(
        self, request: pb.ListDraftsRequest, call: Call, principal: Principal
    ) -> pb.ListDraftsResponse:
        size = _names.page_size(request.page_size)
        scope = "drafts"
        before = _names.decode_page_token(request.page_token, scope, str)
        drafts = await self._service.list_drafts(caller=principal, before_id=before, limit=size + 1)
        page, token = _names.page_of(drafts, size, scope, lambda item: item.id)
        return pb.ListDraftsResponse(drafts=[_convert.draft_to_proto(d) for d in page], next_page_token=token)

    @_mutation
    async def UpdateDraft(
        self, request: pb.UpdateDraftRequest, call: Call, principal: Principal
    ) -> draft_pb2.Draft:
        draft = await self._service.update_draft(
            caller=principal,
            draft_id=_names.parse_draft_name(request.name),
            prompt=request.prompt,
            etag=request.etag,
            deadline=call.deadline(),
        )
        return _convert.draft_to_proto(draft)

    @_unary(READ)
    async def Blame(self, request: pb.BlameRequest, call: Call, principal: Principal) -> pb.BlameResponse:
        ref = _names.parse_version_name(request.name)
        size = _names.page_size(request.page_size)
        # The path by its hash: a token holds its scope, and a path may be long.
        narrowed = hashlib.sha256(request.path.encode()).hexdigest()[:16] if request.path else ""
        scope = f"blame:{ref.generation_id}/{ref.number}:{narrowed}"
        after = _names.decode_page_token(request.page_token, scope, str)
        blames = await self._service.blame(
            caller=principal, ref=ref, path=request.path, after_path=after, limit=size + 1
        )
        page, token = _names.page_of(blames, size, scope, lambda item: item.path)
        return pb.BlameResponse(files=[_convert.blame_to_proto(b) for b in page], next_page_token=token)

    @_mutation
    async def DeleteDraft(
        self, request: pb.DeleteDraftRequest, call: Call, principal: Principal
    ) -> empty_pb2.Empty:
        await self._service.delete_draft(
            caller=principal,
            draft_id=_names.parse_draft_name(request.name),
            etag=request.etag,
            deadline=call.deadline(),
        )
        return empty_pb2.Empty()


def _time(request: pb.GetUsageRequest, field: str) -> datetime | None:
    """The request's timestamp `field` (None when unset), refused when protobuf cannot hold it as a
    time (seconds outside years 1 to 9999, or nanos outside a second)."""
    if not request.HasField(field):
        return None
    try:
        return cast(timestamp_pb2.Timestamp, getattr(request, field)).ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidArgument(
            f"{field} is not a valid time: {exc}",
            reason="INVALID_TIME_RANGE",
            violations=[FieldViolation(field, "must be a time between the years 1 and 9999")],
        ) from exc


def _variants(variants: Iterable[batch_pb2.Variant]) -> list[Variant]:
    return [Variant(name=v.name, prompt_suffix=v.prompt_suffix) for v in variants]


def _cost_question(request: pb.EstimateCostRequest) -> CostQuestion:
    """The request EstimateCost prices, as the domain asks it."""
    which = request.WhichOneof("request")
    if which == "generate":
        generate = request.generate
        return CostQuestion(
            kind=VersionKind.GENERATE,
            prompt=generate.prompt,
            model=generate.model,
            variants=_variants(generate.variants),
            count=generate.count if generate.HasField("count") else None,
            attachments=_attachments(generate.attachments),
        )
    if which == "tweak":
        tweak = request.tweak
        base = _names.parse_version_name(tweak.name, field="tweak.name")
        return CostQuestion(
            kind=VersionKind.TWEAK,
            prompt=tweak.prompt,
            model=tweak.model,
            base=base,
            attachments=_attachments(tweak.attachments),
        )
    if which == "iterate":
        iterate = request.iterate
        base = _names.parse_version_name(iterate.parent, field="iterate.parent")
        return CostQuestion(kind=VersionKind.ITERATE, prompt=iterate.prompt, model=iterate.model, base=base)
    if which == "regenerate":
        regenerate = request.regenerate
        return CostQuestion(
            kind=VersionKind.REGENERATE,
            prompt="",
            base=_names.parse_version_name(regenerate.name, field="regenerate.name"),
            variants=_variants(regenerate.variants),
            count=regenerate.count if regenerate.HasField("count") else None,
        )
    raise InvalidArgument(
        "no request to price: set one of generate, tweak, iterate or regenerate",
        reason="MISSING_REQUEST",
        violations=[FieldViolation("request", "must be one of generate, tweak, iterate, regenerate")],
    )
