"""The one boundary where domain errors become gRPC statuses with ErrorInfo (and BadRequest)."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from server.domain import AtelierError, ResourceExhausted

ERROR_DOMAIN = "atelier.v1"
# A status travels in trailing metadata, which clients cap (gRPC C-core, so Python: 8 KiB, past
# which the call fails RESOURCE_EXHAUSTED instead of showing the real error): an error that echoes
# a caller's input echoes a short prefix of it. The message goes twice, percent-encoded (up to three
# bytes a byte) and inside the base64 of the whole status; these sizes (UTF-8 bytes) keep the lot
# under about 5 KiB.
_MESSAGE_BYTES = 512
_VALUE_BYTES = 128
_VIOLATIONS = 8
_FIELD_BYTES = 64
_DESCRIPTION_BYTES = 160


def to_status(error: AtelierError) -> grpc.Status:
    return rpc_status.to_status(
        to_status_proto(error.code, error.message, error.reason, error.metadata, error)
    )


def to_status_proto(
    code: str,
    message: str,
    reason: str,
    metadata: dict[str, str] | None = None,
    error: AtelierError | None = None,
) -> status_pb2.Status:
    """A google.rpc.Status for a code name such as "NOT_FOUND", carrying ErrorInfo; every text in
    it is cut short enough that any client can receive it."""
    short_metadata = {key: _short(value, _VALUE_BYTES) for key, value in (metadata or {}).items()}
    details = [
        _pack(error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=short_metadata))
    ]
    if error is not None and error.violations:
        details.append(
            _pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=_short(v.field, _FIELD_BYTES),
                            description=_short(v.description, _DESCRIPTION_BYTES),
                        )
                        for v in error.violations[:_VIOLATIONS]
                    ]
                )
            )
        )
    if isinstance(error, ResourceExhausted) and error.retry_after is not None:
        delay = duration_pb2.Duration()
        delay.FromNanoseconds(max(1, round(error.retry_after * 1e9)))
        details.append(_pack(error_details_pb2.RetryInfo(retry_delay=delay)))
    return status_pb2.Status(
        code=code_pb2.Code.Value(code), message=_short(message, _MESSAGE_BYTES), details=details
    )


def _short(text: str, limit: int) -> str:
    """`text`, or as much of its start as fits in `limit` bytes of UTF-8, ending with an ellipsis."""
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    return encoded[: limit - len("…".encode())].decode(errors="ignore") + "…"


def _pack(
    message: error_details_pb2.ErrorInfo | error_details_pb2.BadRequest | error_details_pb2.RetryInfo,
) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed
