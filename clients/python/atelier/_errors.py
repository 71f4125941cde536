"""Typed exceptions, and the one boundary where `grpc.RpcError` becomes one of them."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

_E = TypeVar("_E", bound="AtelierError")

ERROR_DOMAIN = "atelier.v1"
# Errors the SDK raises itself (a wait that ran out of time, a file that failed its checksum).
SDK_DOMAIN = "atelier.sdk"


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One bad field of a request (google.rpc.BadRequest): which, and what is wrong with it."""

    field: str
    description: str


class AtelierError(Exception):
    """A failed call. `code` is the gRPC status; `reason`, `domain` and `metadata` come from the
    server's google.rpc.ErrorInfo (empty when the failure never reached the server).
    `retry_after` is the wait in seconds the server's google.rpc.RetryInfo asked for before
    trying again (None when it named none)."""

    default_code = grpc.StatusCode.UNKNOWN

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        reason: str = "",
        domain: str = "",
        metadata: Mapping[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code: grpc.StatusCode = code if code is not None else self.default_code
        self.reason = reason
        self.domain = domain
        self.metadata: dict[str, str] = dict(metadata or {})
        self.retry_after = retry_after

    def __str__(self) -> str:
        reason = f" [{self.reason}]" if self.reason else ""
        return f"{self.code.name}{reason}: {self.message}"


class InvalidArgument(AtelierError):
    """The request is malformed; `field_violations` says which fields, and why."""

    default_code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(
        self,
        message: str,
        *,
        code: grpc.StatusCode | None = None,
        reason: str = "",
        domain: str = "",
        metadata: Mapping[str, str] | None = None,
        retry_after: float | None = None,
        field_violations: tuple[FieldViolation, ...] = (),
    ) -> None:
        super().__init__(
            message, code=code, reason=reason, domain=domain, metadata=metadata, retry_after=retry_after
        )
        self.field_violations = field_violations


class NotFound(AtelierError):
    """The resource does not exist, or belongs to someone else."""

    default_code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(AtelierError):
    default_code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(AtelierError):
    """The resource is not in a state that allows the call (for example a version not COMPLETED)."""

    default_code = grpc.StatusCode.FAILED_PRECONDITION


class Aborted(AtelierError):
    """A conflict, such as a stale etag or a concurrent turn in the same session."""

    default_code = grpc.StatusCode.ABORTED


class PermissionDenied(AtelierError):
    default_code = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(AtelierError):
    """No token, or a token the server does not know."""

    default_code = grpc.StatusCode.UNAUTHENTICATED


class ResourceExhausted(AtelierError):
    """The caller is over a limit: its request rate (reason RATE_LIMITED, with `retry_after`), its
    queued jobs, its open streams or uploads. Calls the SDK retries wait `retry_after` and retry."""

    default_code = grpc.StatusCode.RESOURCE_EXHAUSTED


class Unavailable(AtelierError):
    """The server could not be reached, or went away; safe calls are retried before this is raised."""

    default_code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(AtelierError):
    """The call's deadline passed before it finished."""

    default_code = grpc.StatusCode.DEADLINE_EXCEEDED


class WaitTimeout(DeadlineExceeded):
    """`wait` gave up: the version had not ended in time. The job itself goes on."""


class Internal(AtelierError):
    default_code = grpc.StatusCode.INTERNAL


class Unimplemented(AtelierError):
    default_code = grpc.StatusCode.UNIMPLEMENTED


class Cancelled(AtelierError):
    """The call (not the job) was cancelled, usually by the caller."""

    default_code = grpc.StatusCode.CANCELLED


_BY_CODE: dict[grpc.StatusCode, type[AtelierError]] = {
    cls.default_code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        Aborted,
        PermissionDenied,
        Unauthenticated,
        ResourceExhausted,
        Unavailable,
        DeadlineExceeded,
        Internal,
        Unimplemented,
        Cancelled,
    )
}


def from_rpc_error(exc: grpc.RpcError) -> AtelierError:
    """The typed exception for a failed call, with the ErrorInfo and BadRequest it carried."""
    code = _code(exc)
    message = _details(exc)
    info = error_details_pb2.ErrorInfo()
    violations: list[FieldViolation] = []
    retry_after: float | None = None
    status = _rich_status(exc)
    if status is not None:
        message = status.message or message
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                detail.Unpack(info)
            elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad_request = error_details_pb2.BadRequest()
                detail.Unpack(bad_request)
                violations += [FieldViolation(v.field, v.description) for v in bad_request.field_violations]
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                retry_info = error_details_pb2.RetryInfo()
                detail.Unpack(retry_info)
                retry_after = retry_info.retry_delay.ToNanoseconds() / 1e9
    cls = _BY_CODE.get(code, AtelierError)
    fields: dict[str, Any] = {
        "code": code,
        "reason": info.reason,
        "domain": info.domain,
        "metadata": dict(info.metadata),
        "retry_after": retry_after,
    }
    if cls is InvalidArgument:
        fields["field_violations"] = tuple(violations)
    return cls(message, **fields)


def _code(exc: grpc.RpcError) -> grpc.StatusCode:
    code = getattr(exc, "code", None)
    value = code() if callable(code) else None
    return value if isinstance(value, grpc.StatusCode) else grpc.StatusCode.UNKNOWN


def _details(exc: grpc.RpcError) -> str:
    details = getattr(exc, "details", None)
    text = details() if callable(details) else None
    return str(text) if text else str(exc)


def _rich_status(exc: grpc.RpcError) -> Any:
    try:
        return rpc_status.from_call(exc)
    except (ValueError, AttributeError, TypeError):
        # A status detail that does not match the call's code or message, or a call
        # without trailers: keep what the plain status says.
        return None


# The wrappers below are the only places that catch grpc.RpcError.


def call(method: Callable[..., Any], request: Any, **kwargs: Any) -> Any:
    """Makes a unary (or client-streaming) call; failures raise typed exceptions."""
    try:
        return method(request, **kwargs)
    except grpc.RpcError as exc:
        raise from_rpc_error(exc) from exc


def stream(method: Callable[..., Any], request: Any, **kwargs: Any) -> Generator[Any, None, None]:
    """Iterates a server-streaming call; failures raise typed exceptions. Closing the
    iterator early cancels the call."""
    responses = call(method, request, **kwargs)
    try:
        while True:
            try:
                response = next(responses)
            except StopIteration:
                return
            except grpc.RpcError as exc:
                raise from_rpc_error(exc) from exc
            yield response
    finally:
        responses.cancel()


async def acall(method: Callable[..., Awaitable[Any]], request: Any, **kwargs: Any) -> Any:
    """The async form of `call` (grpc.aio)."""
    try:
        return await method(request, **kwargs)
    except grpc.RpcError as exc:
        raise from_rpc_error(exc) from exc


async def astream(method: Callable[..., Any], request: Any, **kwargs: Any) -> AsyncGenerator[Any, None]:
    """The async form of `stream` (grpc.aio)."""
    responses = method(request, **kwargs)
    try:
        while True:
            try:
                response = await responses.read()
            except grpc.RpcError as exc:
                raise from_rpc_error(exc) from exc
            if response is grpc.aio.EOF:
                return
            yield response
    finally:
        responses.cancel()


def sdk_error(
    cls: type[_E], message: str, *, reason: str, code: grpc.StatusCode | None = None, **metadata: str
) -> _E:
    """An error the SDK raises itself, in domain `atelier.sdk`."""
    return cls(message, code=code, reason=reason, domain=SDK_DOMAIN, metadata=metadata)
