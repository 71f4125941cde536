"""Domain errors. Each names its gRPC status code and a machine-readable reason;
the API layer turns them into a status with google.rpc.ErrorInfo (and BadRequest)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True, slots=True)
class FieldViolation:
    field: str
    description: str


class AtelierError(Exception):
    code: ClassVar[str] = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        metadata: Mapping[str, str] | None = None,
        violations: Sequence[FieldViolation] = (),
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.metadata = dict(metadata or {})
        self.violations = tuple(violations)


class InvalidArgument(AtelierError):
    code = "INVALID_ARGUMENT"


class NotFound(AtelierError):
    code = "NOT_FOUND"


class AlreadyExists(AtelierError):
    code = "ALREADY_EXISTS"


class FailedPrecondition(AtelierError):
    code = "FAILED_PRECONDITION"


class Aborted(AtelierError):
    code = "ABORTED"


class Unauthenticated(AtelierError):
    code = "UNAUTHENTICATED"


class DeadlineExceeded(AtelierError):
    code = "DEADLINE_EXCEEDED"


class Cancelled(AtelierError):
    code = "CANCELLED"


class PermissionDenied(AtelierError):
    """The caller is known, but its credentials do not carry the scope the call needs."""

    code = "PERMISSION_DENIED"


class Unavailable(AtelierError):
    code = "UNAVAILABLE"


class ResourceExhausted(AtelierError):
    """The caller is over one of its limits (server/api/_limits.py, the queued-jobs cap).
    `retry_after`, when known, is how many seconds until trying again can succeed: the status
    carries it as google.rpc.RetryInfo."""

    code = "RESOURCE_EXHAUSTED"

    def __init__(
        self,
        message: str,
        *,
        reason: str,
        metadata: Mapping[str, str] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, reason=reason, metadata=metadata)
        self.retry_after = retry_after
