"""AtelierService over Connect and gRPC-Web: each RPC calls the shared per-method logic
(`AtelierMethods`, as the gRPC port does) and turns its AtelierError into a Connect error whose
details carry the same google.rpc.ErrorInfo (and BadRequest) as the gRPC status."""

from __future__ import annotations

import re
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextvars import ContextVar
from typing import Any

from atelier.v1 import atelier_service_pb2
from connectrpc.request import RequestContext

from server.api import AtelierMethods
from server.domain import AtelierError, Deadline
from server.web._codecs import CODECS
from server.web._errors import connect_error
from server.web._generated.atelier_service_connect import AtelierServiceASGIApplication

_SERVICE = atelier_service_pb2.DESCRIPTOR.services_by_name["AtelierService"]
# The web port's base URL as the current request reached it, and whether its caller has gone
# (set by the web app for each request).
REQUEST_BASE: ContextVar[str | None] = ContextVar("atelier_request_base", default=None)
CALLER_GONE: ContextVar[threading.Event | None] = ContextVar("atelier_caller_gone", default=None)


class _ConnectCall:
    def __init__(self, context: RequestContext[Any, Any]) -> None:
        self._context = context

    def metadata(self) -> Sequence[tuple[str, str | bytes]]:
        return [(key.lower(), value) for key, value in self._context.request_headers().allitems()]

    def deadline(self) -> Deadline:
        remaining = self._context.timeout_ms()
        gone = CALLER_GONE.get() or threading.Event()
        return Deadline.after(None if remaining is None else remaining / 1000, cancelled=gone.is_set)

    def web_base(self) -> str | None:
        return REQUEST_BASE.get()


def _unary(method: Callable[..., Any]) -> Callable[..., Any]:
    async def handler(request: object, context: RequestContext[Any, Any]) -> object:
        try:
            return await method(request, _ConnectCall(context))
        except AtelierError as error:
            raise connect_error(error) from error

    return handler


def _streaming(method: Callable[..., Any]) -> Callable[..., Any]:
    async def handler(request: object, context: RequestContext[Any, Any]) -> AsyncIterator[object]:
        try:
            async for item in method(request, _ConnectCall(context)):
                yield item
        except AtelierError as error:
            raise connect_error(error) from error

    return handler


class _ConnectService:
    """The generated handlers' service: one attribute per RPC, in the generator's snake_case."""

    def __init__(self, methods: AtelierMethods) -> None:
        for rpc in _SERVICE.methods:
            method = getattr(methods, rpc.name)
            snake = re.sub(r"(?<!^)(?=[A-Z])", "_", rpc.name).lower()
            setattr(self, snake, (_streaming if rpc.server_streaming else _unary)(method))


def connect_app(methods: AtelierMethods, *, max_message_bytes: int) -> AtelierServiceASGIApplication:
    """The ASGI application that answers `/atelier.v1.AtelierService/{Method}` in the Connect
    protocol (JSON or binary, unary and streaming) and in gRPC-Web."""
    return AtelierServiceASGIApplication(
        _ConnectService(methods),  # type: ignore[arg-type]
        read_max_bytes=max_message_bytes,
        codecs=CODECS,
    )
