"""The one boundary where domain errors become gRPC statuses with ErrorInfo (and BadRequest)."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from server.domain import AtelierError

ERROR_DOMAIN = "atelier.v1"


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
    """A google.rpc.Status for a code name such as "NOT_FOUND", carrying ErrorInfo."""
    details = [
        _pack(error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN, metadata=metadata or {}))
    ]
    if error is not None and error.violations:
        details.append(
            _pack(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                        for v in error.violations
                    ]
                )
            )
        )
    return status_pb2.Status(code=code_pb2.Code.Value(code), message=message, details=details)


def _pack(message: error_details_pb2.ErrorInfo | error_details_pb2.BadRequest) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed
