"""Domain errors as Connect errors: the same code, message and details (ErrorInfo, BadRequest) as
the gRPC port's status (server.api's one boundary makes both)."""

from __future__ import annotations

from connectrpc.code import Code
from connectrpc.errors import ConnectError

from server.api import to_status_proto
from server.domain import AtelierError


def connect_error(error: AtelierError) -> ConnectError:
    status = to_status_proto(error.code, error.message, error.reason, error.metadata, error)
    # gRPC spells it CANCELLED, Connect "canceled"; every other code is the same word.
    code = Code.CANCELED if error.code == "CANCELLED" else Code(error.code.lower())
    return ConnectError(code, status.message, details=list(status.details))
