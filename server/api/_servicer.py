"""AtelierService: authenticates, validates names, calls the domain, converts the answers."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeVar

import grpc
from atelier.v1 import atelier_service_pb2 as pb
from atelier.v1 import atelier_service_pb2_grpc, file_pb2, generation_pb2, progress_pb2, session_pb2, tree_pb2
from grpc_status import rpc_status

from server.api import _convert, _names
from server.api._auth import Authenticator
from server.api._errors import to_status, to_status_proto
from server.config import Settings
from server.domain import AtelierError, FieldViolation, GenerationService, InvalidArgument, Strategy
from server.files import FileContent

_log = logging.getLogger("atelier.api")
_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")

_Unary = Callable[[Any, _Req, grpc.aio.ServicerContext, str], Awaitable[_Resp]]
_Stream = Callable[[Any, _Req, grpc.aio.ServicerContext, str], AsyncIterator[_Resp]]


async def _abort_internal(context: grpc.aio.ServicerContext, method: str) -> None:
    _log.exception("unexpected error in %s", method)
    status = to_status_proto(
        "INTERNAL", f"internal error in {method}; the server log has the details", "INTERNAL"
    )
    await context.abort_with_status(rpc_status.to_status(status))


def _unary(handler: _Unary[_Req, _Resp]) -> Callable[[Any, _Req, grpc.aio.ServicerContext], Awaitable[_Resp]]:
    """Authenticates the caller and turns every failure into a status with ErrorInfo (never UNKNOWN)."""

    @functools.wraps(handler)
    async def wrapper(self: AtelierServicer, request: _Req, context: grpc.aio.ServicerContext) -> _Resp:
        try:
            principal = self._auth.principal(context.invocation_metadata())
            return await handler(self, request, context, principal)
        except AtelierError as error:
            await context.abort_with_status(to_status(error))
        except (grpc.aio.AbortError, asyncio.CancelledError):
            raise
        except Exception:
            await _abort_internal(context, handler.__name__)
        raise AssertionError("unreachable: abort_with_status raises")

    return wrapper


def _stream(
    handler: _Stream[_Req, _Resp],
) -> Callable[[Any, _Req, grpc.aio.ServicerContext], AsyncIterator[_Resp]]:
    @functools.wraps(handler)
    async def wrapper(
        self: AtelierServicer, request: _Req, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[_Resp]:
        try:
            principal = self._auth.principal(context.invocation_metadata())
            async for item in handler(self, request, context, principal):
                yield item
        except AtelierError as error:
            await context.abort_with_status(to_status(error))
        except (grpc.aio.AbortError, asyncio.CancelledError):
            raise
        except Exception:
            await _abort_internal(context, handler.__name__)

    return wrapper


def _attachments(attachments: Iterable[file_pb2.Attachment]) -> list[FileContent]:
    return [FileContent(a.name, a.mime_type, a.data) for a in attachments]


class AtelierServicer(atelier_service_pb2_grpc.AtelierServiceServicer):
    def __init__(self, *, service: GenerationService, settings: Settings) -> None:
        self._service = service
        self._settings = settings
        self._auth = Authenticator(settings.principals_by_token)

    @_unary
    async def Generate(
        self, request: pb.GenerateRequest, context: grpc.aio.ServicerContext, principal: str
    ) -> generation_pb2.Version:
        version = await self._service.generate(
            owner=principal,
            prompt=request.prompt,
            model=request.model,
            request_id=request.request_id,
            attachments=_attachments(request.attachments),
        )
        return _convert.version_to_proto(version)

    @_unary
    async def Tweak(
        self, request: pb.TweakRequest, context: grpc.aio.ServicerContext, principal: str
    ) -> generation_pb2.Version:
        version = await self._service.tweak(
            owner=principal,
            parent=_names.parse_version_name(request.name),
            prompt=request.prompt,
            model=request.model,
            request_id=request.request_id,
            etag=request.etag,
            attachments=_attachments(request.attachments),
        )
        return _convert.version_to_proto(version)

    @_unary
    async def Regenerate(
        self, request: pb.RegenerateRequest, context: grpc.aio.ServicerContext, principal: str
    ) -> generation_pb2.Version:
        version = await self._service.regenerate(
            owner=principal, version=_names.parse_version_name(request.name), request_id=request.request_id
        )
        return _convert.version_to_proto(version)

    @_unary
    async def Iterate(
        self, request: pb.IterateRequest, context: grpc.aio.ServicerContext, principal: str
    ) -> generation_pb2.Version:
        version = await self._service.iterate(
            owner=principal,
            parent=_names.parse_version_name(request.parent, field="parent"),
            prompt=request.prompt,
            model=request.model,
            request_id=request.request_id,
            etag=request.etag,
        )
        return _convert.version_to_proto(version)

    @_stream
    async def Progress(
        self, request: pb.ProgressRequest, context: grpc.aio.ServicerContext, principal: str
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
        async for event in self._service.progress(owner=principal, ref=ref, after_seq=request.after_seq):
            yield _convert.event_to_proto(event, name)

    @_unary
    async def CancelVersion(
        self, request: pb.CancelVersionRequest, context: grpc.aio.ServicerContext, principal: str
    ) -> generation_pb2.Version:
        ref = _names.parse_version_name(request.name)
        return _convert.version_to_proto(await self._service.cancel(owner=principal, ref=ref))

    @_unary
    async def GetVersion(
        self, request: pb.GetVersionRequest, context: grpc.aio.ServicerContext, principal: str
    ) -> generation_pb2.Version:
        ref = _names.parse_version_name(request.name)
        return _convert.version_to_proto(await self._service.get_version(owner=principal, ref=ref))

    @_unary
    async def ListVersions(
        self, request: pb.ListVersionsRequest, context: grpc.aio.ServicerContext, principal: str
    ) -> pb.ListVersionsResponse:
        generation_id = _names.parse_generation_name(request.parent, field="parent")
        size = _names.page_size(request.page_size)
        scope = f"versions:{generation_id}"
        after = _names.decode_page_token(request.page_token, scope)
        versions = await self._service.list_versions(
            owner=principal,
            generation_id=generation_id,
            after_number=after if isinstance(after, int) else 0,
            limit=size + 1,
        )
        page, token = _names.page_of(versions, size, scope, lambda item: item.number)
        return pb.ListVersionsResponse(
            versions=[_convert.version_to_proto(v) for v in page], next_page_token=token
        )

    @_unary
    async def GetGeneration(
        self, request: pb.GetGenerationRequest, context: grpc.aio.ServicerContext, principal: str
    ) -> generation_pb2.Generation:
        generation_id = _names.parse_generation_name(request.name)
        generation = await self._service.get_generation(owner=principal, generation_id=generation_id)
        return _convert.generation_to_proto(generation)

    @_unary
    async def ListGenerations(
        self, request: pb.ListGenerationsRequest, context: grpc.aio.ServicerContext, principal: str
    ) -> pb.ListGenerationsResponse:
        size = _names.page_size(request.page_size)
        scope = "generations+deleted" if request.show_deleted else "generations"
        before = _names.decode_page_token(request.page_token, scope)
        generations = await self._service.list_generations(
            owner=principal,
            before_id=before if isinstance(before, str) else None,
            limit=size + 1,
            show_deleted=request.show_deleted,
        )
        page, token = _names.page_of(generations, size, scope, lambda item: item.id)
        return pb.ListGenerationsResponse(
            generations=[_convert.generation_to_proto(g) for g in page], next_page_token=token
        )

    @_unary
    async def DeleteGeneration(
        self, request: pb.DeleteGenerationRequest, context: grpc.aio.ServicerContext, principal: str
    ) -> generation_pb2.Generation:
        generation_id = _names.parse_generation_name(request.name)
        generation = await self._service.delete_generation(owner=principal, generation_id=generation_id)
        return _convert.generation_to_proto(generation)

    @_unary
    async def UndeleteGeneration(
        self, request: pb.UndeleteGenerationRequest, context: grpc.aio.ServicerContext, principal: str
    ) -> generation_pb2.Generation:
        generation_id = _names.parse_generation_name(request.name)
        generation = await self._service.undelete_generation(owner=principal, generation_id=generation_id)
        return _convert.generation_to_proto(generation)

    @_unary
    async def ListFiles(
        self, request: pb.ListFilesRequest, context: grpc.aio.ServicerContext, principal: str
    ) -> pb.ListFilesResponse:
        ref = _names.parse_version_name(request.parent, field="parent")
        size = _names.page_size(request.page_size)
        scope = f"files:{ref.generation_id}/{ref.number}"
        after = _names.decode_page_token(request.page_token, scope)
        entries = await self._service.list_files(
            owner=principal, ref=ref, after_path=after if isinstance(after, str) else None, limit=size + 1
        )
        page, token = _names.page_of(entries, size, scope, lambda item: item.path)
        return pb.ListFilesResponse(files=[_convert.file_to_proto(e) for e in page], next_page_token=token)

    @_stream
    async def ReadFile(
        self, request: pb.ReadFileRequest, context: grpc.aio.ServicerContext, principal: str
    ) -> AsyncIterator[pb.ReadFileResponse]:
        ref = _names.parse_version_name(request.name)
        if not request.path:
            raise InvalidArgument(
                "path is empty",
                reason="INVALID_PATH",
                violations=[FieldViolation("path", "must name a file")],
            )
        entry, data = await self._service.read_file(owner=principal, ref=ref, path=request.path)
        chunk = self._service.read_chunk_bytes
        yield pb.ReadFileResponse(file=_convert.file_to_proto(entry), data=data[:chunk], offset=0)
        for offset in range(chunk, len(data), chunk):
            yield pb.ReadFileResponse(data=data[offset : offset + chunk], offset=offset)

    @_unary
    async def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext, principal: str
    ) -> pb.ListModelsResponse:
        views = await self._service.list_models()
        return pb.ListModelsResponse(
            models=[_convert.model_to_proto(view) for view in views],
            default_model=next(view.config.name for view in views if view.default),
        )

    @_unary
    async def GetSession(
        self, request: pb.GetSessionRequest, context: grpc.aio.ServicerContext, principal: str
    ) -> session_pb2.Session:
        generation_id = _names.parse_session_name(request.name)
        conversation = await self._service.get_conversation(owner=principal, generation_id=generation_id)
        return _convert.session_to_proto(conversation)

    @_unary
    async def ListTurns(
        self, request: pb.ListTurnsRequest, context: grpc.aio.ServicerContext, principal: str
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
        after = _names.decode_page_token(request.page_token, scope)
        turns = await self._service.list_turns(
            owner=principal,
            generation_id=generation_id,
            after_number=after if isinstance(after, int) else 0,
            limit=size + 1,
            branch_of=branch_of,
        )
        page, token = _names.page_of(turns, size, scope, lambda item: item.number)
        return pb.ListTurnsResponse(
            turns=[_convert.turn_to_proto(turn, generation_id=generation_id) for turn in page],
            next_page_token=token,
        )

    @_unary
    async def Diff(
        self, request: pb.DiffRequest, context: grpc.aio.ServicerContext, principal: str
    ) -> pb.DiffResponse:
        changes = await self._service.diff(
            owner=principal,
            base=_names.parse_version_name(request.base, field="base"),
            target=_names.parse_version_name(request.target, field="target"),
            include_text_diffs=request.include_text_diffs,
        )
        return pb.DiffResponse(files=[_convert.file_diff_to_proto(change, text) for change, text in changes])

    @_stream
    async def ExportTree(
        self, request: pb.ExportTreeRequest, context: grpc.aio.ServicerContext, principal: str
    ) -> AsyncIterator[pb.ExportTreeResponse]:
        chunk = self._service.read_chunk_bytes
        async for entry, data in self._service.export(
            owner=principal, ref=_names.parse_version_name(request.name)
        ):
            yield pb.ExportTreeResponse(file=_convert.file_to_proto(entry), data=data[:chunk], offset=0)
            for offset in range(chunk, len(data), chunk):
                yield pb.ExportTreeResponse(data=data[offset : offset + chunk], offset=offset)

    @_unary
    async def UploadTree(
        self,
        request: AsyncIterator[pb.UploadTreeRequest],
        context: grpc.aio.ServicerContext,
        principal: str,
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
            owner=principal,
            description=description,
            request_id=request_id,
            files=[FileContent(path, mime_type, bytes(data)) for path, mime_type, data in files],
        )
        return _convert.version_to_proto(version)

    @_unary
    async def Merge(
        self, request: pb.MergeRequest, context: grpc.aio.ServicerContext, principal: str
    ) -> pb.MergeResponse:
        strategy = {
            tree_pb2.MERGE_STRATEGY_OURS: Strategy.OURS,
            tree_pb2.MERGE_STRATEGY_THEIRS: Strategy.THEIRS,
        }.get(request.strategy, Strategy.NONE)
        version, conflicts = await self._service.merge(
            owner=principal,
            ours=_names.parse_version_name(request.ours, field="ours"),
            theirs=_names.parse_version_name(request.theirs, field="theirs"),
            strategy=strategy,
            request_id=request.request_id,
        )
        return pb.MergeResponse(
            version=_convert.version_to_proto(version) if version else None,
            conflicts=[_convert.conflict_to_proto(c) for c in conflicts],
        )
