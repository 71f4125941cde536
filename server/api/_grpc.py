"""The gRPC port's face of AtelierService: each RPC calls the shared per-method logic
(`AtelierMethods`) and turns its AtelierError into a status with ErrorInfo."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import grpc
from atelier.v1 import atelier_service_pb2, atelier_service_pb2_grpc

from server.api._errors import to_status
from server.api._methods import AtelierMethods
from server.domain import AtelierError, Deadline

_SERVICE = atelier_service_pb2.DESCRIPTOR.services_by_name["AtelierService"]


class _GrpcCall:
    def __init__(self, context: grpc.aio.ServicerContext) -> None:
        self._context = context

    def metadata(self) -> Sequence[tuple[str, str | bytes]]:
        return tuple(self._context.invocation_metadata() or ())

    def deadline(self) -> Deadline:
        gone = threading.Event()
        self._context.add_done_callback(lambda _: gone.set())
        return Deadline.after(self._context.time_remaining(), cancelled=gone.is_set)

    def web_base(self) -> str | None:
        return None


def _unary(method: Callable[..., Any]) -> Callable[..., Any]:
    async def handler(request: object, context: grpc.aio.ServicerContext) -> object:
        try:
            return await method(request, _GrpcCall(context))
        except AtelierError as error:
            await context.abort_with_status(to_status(error))
            raise AssertionError("unreachable: abort_with_status raises") from error

    return handler


def _streaming(method: Callable[..., Any]) -> Callable[..., Any]:
    async def handler(request: object, context: grpc.aio.ServicerContext) -> AsyncIterator[object]:
        try:
            async for item in method(request, _GrpcCall(context)):
                yield item
        except AtelierError as error:
            await context.abort_with_status(to_status(error))

    return handler


class AtelierServicer(atelier_service_pb2_grpc.AtelierServiceServicer):
    """AtelierService on gRPC: every RPC of the service, none written twice."""

    def __init__(self, methods: AtelierMethods) -> None:
        for rpc in _SERVICE.methods:
            method = getattr(methods, rpc.name)
            setattr(self, rpc.name, (_streaming if rpc.server_streaming else _unary)(method))
