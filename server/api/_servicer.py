"""AtelierService: authenticates, checks every text and name, calls the domain (telling it when the
caller stops waiting), converts the answers, and records each mutating call in the audit log."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeVar, cast

import grpc
from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import (
    atelier_service_pb2_grpc,
    draft_pb2,
    file_pb2,
    generation_pb2,
    progress_pb2,
    session_pb2,
    tree_pb2,
)
from google.protobuf.message import Message
from grpc_status import rpc_status

from server.api import _audit, _convert, _names
from server.api._auth import Authenticator
from server.api._errors import to_status, to_status_proto
from server.api._texts import check_texts
from server.config import Settings
from server.domain import (
    READ,
    WRITE,
    ApiKeys,
    AtelierError,
    Deadline,
    FieldViolation,
    GenerationService,
    InvalidArgument,
    Principal,
    Strategy,
)
from server.files import FileContent

_log = logging.getLogger("atelier.api")
_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")

_Unary = Callable[[Any, _Req, grpc.aio.ServicerContext, Principal], Awaitable[_Resp]]
_Stream = Callable[[Any, _Req, grpc.aio.ServicerContext, Principal], AsyncIterator[_Resp]]
_UnaryMethod = Callable[[Any, _Req, grpc.aio.ServicerContext], Awaitable[_Resp]]
_StreamMethod = Callable[[Any, _Req, grpc.aio.ServicerContext], AsyncIterator[_Resp]]


async def _abort_internal(context: grpc.aio.ServicerContext, method: str) -> None:
    _log.exception("unexpected error in %s", method)
    status = to_status_proto(
        "INTERNAL", f"internal error in {method}; the server log has the details", "INTERNAL"
    )
    await context.abort_with_status(rpc_status.to_status(status))


def _unary(scope: str) -> Callable[[_Unary[_Req, _Resp]], _UnaryMethod[_Req, _Resp]]:
    """A call that reads: authenticated, its caller holding `scope`, its texts checked, and every
    failure a status with ErrorInfo (never UNKNOWN)."""
    return functools.partial(_call, scope=scope, audited=False)


def _mutation(handler: _Unary[_Req, _Resp]) -> _UnaryMethod[_Req, _Resp]:
    """A call that writes: as `_unary` with the write scope, and recorded in the audit log
    whatever its outcome."""
    return _call(handler, scope=WRITE, audited=True)


def _call(handler: _Unary[_Req, _Resp], *, scope: str, audited: bool) -> _UnaryMethod[_Req, _Resp]:
    @functools.wraps(handler)
    async def wrapper(self: AtelierServicer, request: _Req, context: grpc.aio.ServicerContext) -> _Resp:
        principal: Principal | None = None
        response: _Resp | None = None
        outcome, reason = "OK", ""
        try:
            principal = await self._caller(context, scope)
            response = await handler(self, _checked(request), context, principal)
            return response
        except AtelierError as error:
            outcome, reason = error.code, error.reason
            await context.abort_with_status(to_status(error))
        except asyncio.CancelledError:
            outcome = "CANCELLED"
            raise
        except grpc.aio.AbortError:
            raise
        except Exception:
            outcome, reason = "INTERNAL", "INTERNAL"
            await _abort_internal(context, handler.__name__)
        finally:
            if audited:
                _audit.record(
                    principal=principal.name if principal is not None else None,
                    method=handler.__name__,
                    resource=_resource(request, response),
                    outcome=outcome,
                    reason=reason,
                )
        raise AssertionError("unreachable: abort_with_status raises")

    return wrapper


def _stream(scope: str) -> Callable[[_Stream[_Req, _Resp]], _StreamMethod[_Req, _Resp]]:
    """As `_unary`, for the methods that stream their answer."""

    def decorate(handler: _Stream[_Req, _Resp]) -> _StreamMethod[_Req, _Resp]:
        @functools.wraps(handler)
        async def wrapper(
            self: AtelierServicer, request: _Req, context: grpc.aio.ServicerContext
        ) -> AsyncIterator[_Resp]:
            try:
                principal = await self._caller(context, scope)
                async for item in handler(self, _checked(request), context, principal):
                    yield item
            except AtelierError as error:
                await context.abort_with_status(to_status(error))
            except (grpc.aio.AbortError, asyncio.CancelledError):
                raise
            except Exception:
                await _abort_internal(context, handler.__name__)

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


def _deadline(context: grpc.aio.ServicerContext) -> Deadline:
    """When the caller stops waiting (its deadline, or its cancelling), for the domain's writes."""
    gone = threading.Event()
    context.add_done_callback(lambda _: gone.set())
    return Deadline.after(context.time_remaining(), cancelled=gone.is_set)


def _attachments(attachments: Iterable[file_pb2.Attachment]) -> list[FileContent]:
    return [FileContent(a.name, a.mime_type, a.data) for a in attachments]


class AtelierServicer(atelier_service_pb2_grpc.AtelierServiceServicer):
    def __init__(self, *, service: GenerationService, api_keys: ApiKeys, settings: Settings) -> None:
        self._service = service
        self._settings = settings
        self._auth = Authenticator(settings=settings, api_keys=api_keys)

    async def _caller(self, context: grpc.aio.ServicerContext, scope: str) -> Principal:
        principal = await self._auth.authenticate(context.invocation_metadata())
        principal.require(scope)
        return principal

    @_mutation
    async def Generate(
        self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> generation_pb2.Version:
        version = await self._service.generate(
            caller=principal,
            prompt=request.prompt,
            model=request.model,
            request_id=request.request_id,
            attachments=_attachments(request.attachments),
            draft_id=_names.parse_draft_name(request.draft, field="draft") if request.draft else None,
            deadline=_deadline(context),
        )
        return _convert.version_to_proto(version)

    @_mutation
    async def Tweak(
        self, request: pb.TweakRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> generation_pb2.Version:
        version = await self._service.tweak(
            caller=principal,
            parent=_names.parse_version_name(request.name),
            prompt=request.prompt,
            model=request.model,
            request_id=request.request_id,
            etag=request.etag,
            attachments=_attachments(request.attachments),
            deadline=_deadline(context),
        )
        return _convert.version_to_proto(version)

    @_mutation
    async def Regenerate(
        self, request: pb.RegenerateRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> generation_pb2.Version:
        version = await self._service.regenerate(
            caller=principal,
            version=_names.parse_version_name(request.name),
            request_id=request.request_id,
            deadline=_deadline(context),
        )
        return _convert.version_to_proto(version)

    @_mutation
    async def Iterate(
        self, request: pb.IterateRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> generation_pb2.Version:
        version = await self._service.iterate(
            caller=principal,
            parent=_names.parse_version_name(request.parent, field="parent"),
            prompt=request.prompt,
            model=request.model,
            request_id=request.request_id,
            etag=request.etag,
            deadline=_deadline(context),
        )
        return _convert.version_to_proto(version)

    @_stream(READ)
    async def Progress(
        self, request: pb.ProgressRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> AsyncIterator[progress_pb2.ProgressEvent]:
        ref = _names.parse_version_name(request.name)
        if request.after_seq < 0:
            raise InvalidArgument(
                f"after_seq is {request.after_seq}; it must not be negative",
                reason="INVALID_CURSOR",
                violations=[FieldViolation("after_seq", "must be 0 or a seq from an earlier event")],
            )
        name = _names.version_name(ref.generation_id, ref.number)
        # A client that goes away cancels only this generator, never the job.
        async for event in self._service.progress(caller=principal, ref=ref, after_seq=request.after_seq):
            yield _convert.event_to_proto(event, name)

    @_mutation
    async def CancelVersion(
        self, request: pb.CancelVersionRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> generation_pb2.Version:
        ref = _names.parse_version_name(request.name)
        version = await self._service.cancel(caller=principal, ref=ref, deadline=_deadline(context))
        return _convert.version_to_proto(version)

    @_unary(READ)
    async def GetVersion(
        self, request: pb.GetVersionRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> generation_pb2.Version:
        ref = _names.parse_version_name(request.name)
        return _convert.version_to_proto(await self._service.get_version(caller=principal, ref=ref))

    @_unary(READ)
    async def ListVersions(
        self, request: pb.ListVersionsRequest, context: grpc.aio.ServicerContext, principal: Principal
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
        self, request: pb.GetGenerationRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> generation_pb2.Generation:
        generation_id = _names.parse_generation_name(request.name)
        generation = await self._service.get_generation(caller=principal, generation_id=generation_id)
        return _convert.generation_to_proto(generation)

    @_unary(READ)
    async def ListGenerations(
        self, request: pb.ListGenerationsRequest, context: grpc.aio.ServicerContext, principal: Principal
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
        self, request: pb.DeleteGenerationRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> generation_pb2.Generation:
        generation_id = _names.parse_generation_name(request.name)
        generation = await self._service.delete_generation(
            caller=principal, generation_id=generation_id, deadline=_deadline(context)
        )
        return _convert.generation_to_proto(generation)

    @_mutation
    async def UndeleteGeneration(
        self, request: pb.UndeleteGenerationRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> generation_pb2.Generation:
        generation_id = _names.parse_generation_name(request.name)
        generation = await self._service.undelete_generation(
            caller=principal, generation_id=generation_id, deadline=_deadline(context)
        )
        return _convert.generation_to_proto(generation)

    @_unary(READ)
    async def ListFiles(
        self, request: pb.ListFilesRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> pb.ListFilesResponse:
        ref = _names.parse_version_name(request.parent, field="parent")
        size = _names.page_size(request.page_size)
        scope = f"files:{ref.generation_id}/{ref.number}"
        after = _names.decode_page_token(request.page_token, scope, str)
        entries = await self._service.list_files(
            caller=principal, ref=ref, after_path=after, limit=size + 1, with_blame=request.include_blame
        )
        page, token = _names.page_of(entries, size, scope, lambda item: item[0].path)
        return pb.ListFilesResponse(
            files=[_convert.file_to_proto(entry, blame) for entry, blame in page], next_page_token=token
        )

    @_stream(READ)
    async def ReadFile(
        self, request: pb.ReadFileRequest, context: grpc.aio.ServicerContext, principal: Principal
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
        yield pb.ReadFileResponse(file=_convert.file_to_proto(entry), data=data[:chunk], offset=0)
        for offset in range(chunk, len(data), chunk):
            yield pb.ReadFileResponse(data=data[offset : offset + chunk], offset=offset)

    @_unary(READ)
    async def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> pb.ListModelsResponse:
        views = await self._service.list_models()
        return pb.ListModelsResponse(
            models=[_convert.model_to_proto(view) for view in views],
            default_model=next(view.config.name for view in views if view.default),
        )

    @_unary(READ)
    async def GetSession(
        self, request: pb.GetSessionRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> session_pb2.Session:
        generation_id = _names.parse_session_name(request.name)
        conversation = await self._service.get_conversation(caller=principal, generation_id=generation_id)
        return _convert.session_to_proto(conversation)

    @_unary(READ)
    async def ListTurns(
        self, request: pb.ListTurnsRequest, context: grpc.aio.ServicerContext, principal: Principal
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
    async def Diff(
        self, request: pb.DiffRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> pb.DiffResponse:
        changes = await self._service.diff(
            caller=principal,
            base=_names.parse_version_name(request.base, field="base"),
            target=_names.parse_version_name(request.target, field="target"),
            include_text_diffs=request.include_text_diffs,
        )
        return pb.DiffResponse(files=[_convert.file_diff_to_proto(change, text) for change, text in changes])

    @_stream(READ)
    async def ExportTree(
        self, request: pb.ExportTreeRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> AsyncIterator[pb.ExportTreeResponse]:
        chunk = self._service.read_chunk_bytes
        async for entry, data in self._service.export(
            caller=principal, ref=_names.parse_version_name(request.name)
        ):
            yield pb.ExportTreeResponse(file=_convert.file_to_proto(entry), data=data[:chunk], offset=0)
            for offset in range(chunk, len(data), chunk):
                yield pb.ExportTreeResponse(data=data[offset : offset + chunk], offset=offset)

    @_mutation
    async def UploadTree(
        self,
        request: AsyncIterator[pb.UploadTreeRequest],
        context: grpc.aio.ServicerContext,
        principal: Principal,
    ) -> generation_pb2.Version:
        request_id, description = "", ""
        files: list[tuple[str, str, bytearray]] = []
        total, limit = 0, self._settings.max_tree_bytes
        first = True
        async for message in request:
            if first:
                request_id, description, first = message.request_id, message.description, False
            if message.HasField("file"):
                # An empty MIME type is guessed from the path where the tree is built.
                files.append((message.file.path, message.file.mime_type, bytearray()))
            if message.data:
                if not files:
                    raise InvalidArgument(
                        "data arrived before any file was started",
                        reason="UPLOAD_DATA_WITHOUT_FILE",
                        violations=[FieldViolation("file", "must be set before the file's data")],
                    )
                total += len(message.data)
                if total > limit:
                    raise InvalidArgument(
                        f"the upload is over the limit of {limit} bytes",
                        reason="TREE_TOO_LARGE",
                        violations=[FieldViolation("data", f"the tree must be at most {limit} bytes")],
                    )
                files[-1][2].extend(message.data)
        version = await self._service.upload(
            caller=principal,
            description=description,
            request_id=request_id,
            files=[FileContent(path, mime_type, bytes(data)) for path, mime_type, data in files],
            deadline=_deadline(context),
        )
        return _convert.version_to_proto(version)

    @_mutation
    async def Merge(
        self, request: pb.MergeRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> pb.MergeResponse:
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
            deadline=_deadline(context),
        )
        return pb.MergeResponse(
            version=_convert.version_to_proto(version) if version else None,
            conflicts=[_convert.conflict_to_proto(c) for c in conflicts],
        )

    @_mutation
    async def DraftPrompt(
        self, request: pb.DraftPromptRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> draft_pb2.Draft:
        draft = await self._service.draft_prompt(
            caller=principal,
            text=request.text,
            context=request.context,
            model=request.model,
            deadline=_deadline(context),
        )
        return _convert.draft_to_proto(draft)

    @_unary(READ)
    async def GetDraft(
        self, request: pb.GetDraftRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> draft_pb2.Draft:
        draft_id = _names.parse_draft_name(request.name)
        return _convert.draft_to_proto(await self._service.get_draft(caller=principal, draft_id=draft_id))

    @_unary(READ)
    async def ListDrafts(
        self, request: pb.ListDraftsRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> pb.ListDraftsResponse:
        size = _names.page_size(request.page_size)
        scope = "drafts"
        before = _names.decode_page_token(request.page_token, scope, str)
        drafts = await self._service.list_drafts(caller=principal, before_id=before, limit=size + 1)
        page, token = _names.page_of(drafts, size, scope, lambda item: item.id)
        return pb.ListDraftsResponse(drafts=[_convert.draft_to_proto(d) for d in page], next_page_token=token)

    @_mutation
    async def UpdateDraft(
        self, request: pb.UpdateDraftRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> draft_pb2.Draft:
        draft = await self._service.update_draft(
            caller=principal,
            draft_id=_names.parse_draft_name(request.name),
            prompt=request.prompt,
            etag=request.etag,
            deadline=_deadline(context),
        )
        return _convert.draft_to_proto(draft)

    @_unary(READ)
    async def Blame(
        self, request: pb.BlameRequest, context: grpc.aio.ServicerContext, principal: Principal
    ) -> pb.BlameResponse:
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
