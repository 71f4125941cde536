"""The domain: generations, versions, their jobs and conversations, in plain Python.

It knows nothing of gRPC (the API translates to it) and nothing of SQL (it calls storage's
verbs in storage's transactions). What the API needs is exported here.
"""

from server.domain import bounds
from server.domain._lru import LRU
from server.domain.api_keys import ApiKeyInfo, ApiKeys, NewApiKey
from server.domain.deadlines import NO_DEADLINE, Deadline
from server.domain.errors import (
    Aborted,
    AlreadyExists,
    AtelierError,
    Cancelled,
    DeadlineExceeded,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
)
from server.domain.events import EventHub
from server.domain.generations import GenerationService
from server.domain.jobs import JobRunner
from server.domain.principals import ADMIN, READ, WRITE, Principal
from server.domain.replicas import follow_other_replicas, poll_followed_versions
from server.domain.resources import (
    Conversation,
    Draft,
    ErrorDetail,
    EventType,
    FileBlame,
    Generation,
    Ledger,
    ModelView,
    ProgressEvent,
    QueueEstimate,
    TokenUsage,
    TreeEntry,
    Turn,
    TurnPart,
    Version,
    VersionKind,
    VersionRef,
    VersionState,
    WebhookAttempt,
    WebhookDelivery,
    WebhookDeliveryState,
    WebhookEventType,
)
from server.domain.trees import Change, Conflict, ConflictKind, PathDiff, Strategy
from server.domain.webhooks import RenderVersion, WebhookDeliverer, WebhookRequest

__all__ = [
    "ADMIN",
    "LRU",
    "NO_DEADLINE",
    "READ",
    "WRITE",
    "Aborted",
    "AlreadyExists",
    "ApiKeyInfo",
    "ApiKeys",
    "AtelierError",
    "Cancelled",
    "Change",
    "Conflict",
    "ConflictKind",
    "Conversation",
    "Deadline",
    "DeadlineExceeded",
    "Draft",
    "ErrorDetail",
    "EventHub",
    "EventType",
    "FailedPrecondition",
    "FieldViolation",
    "FileBlame",
    "Generation",
    "GenerationService",
    "InvalidArgument",
    "JobRunner",
    "Ledger",
    "ModelView",
    "NewApiKey",
    "NotFound",
    "PathDiff",
    "PermissionDenied",
    "Principal",
    "ProgressEvent",
    "QueueEstimate",
    "RenderVersion",
    "Strategy",
    "TokenUsage",
    "TreeEntry",
    "Turn",
    "TurnPart",
    "Unauthenticated",
    "Unavailable",
    "Version",
    "VersionKind",
    "VersionRef",
    "VersionState",
    "WebhookAttempt",
    "WebhookDeliverer",
    "WebhookDelivery",
    "WebhookDeliveryState",
    "WebhookEventType",
    "WebhookRequest",
    "bounds",
    "follow_other_replicas",
    "poll_followed_versions",
]
