"""Atelier's storage: SQLModel tables and the verbs that read and write them.

Every verb takes the `Transaction` it runs in, opened with `Database.write()` or
`Database.read()`, so the transaction's scope is visible where it is used. Nothing here
knows about gRPC, and nothing outside this package imports SQLAlchemy or SQLModel:
storage raises its own errors (`StorageError` and its subclasses).
"""

from storage._blobs import FileContent, put_blobs, read_blob, read_blobs, sha256_hex
from storage._clock import utcnow
from storage._conversations import (
    NewTurn,
    branch_turns,
    get_conversation,
    list_turns,
    record_exchange,
    turn_numbers,
    version_numbers,
)
from storage._database import Database, Transaction
from storage._errors import (
    RequestIdTaken,
    StateConflict,
    StorageError,
    StorageUnavailable,
    WriteConflict,
)
from storage._events import ErrorDetail, EventDraft, append_event, append_events, list_events
from storage._generations import create_generation, get_generation, list_generations
from storage._jobs import (
    ClaimedJob,
    claim_job,
    end_job,
    expired_jobs,
    finish_job,
    has_queued_job,
    holds_lease,
    job_for_version,
    renew_lease,
    request_cancel,
    requeue_job,
)
from storage._models import (
    TERMINAL_STATES,
    Blob,
    ConversationSession,
    Event,
    EventType,
    Generation,
    Job,
    JobStatus,
    ManifestEntry,
    Turn,
    Version,
    VersionAttachment,
    VersionKind,
    VersionState,
)
from storage._notifications import EVENTS_CHANNEL, JOBS_CHANNEL, PROCESS_TAG
from storage._trees import (
    TreeEntry,
    get_manifest_entry,
    list_manifest,
    read_tree,
    store_files,
    write_changes,
    write_tree,
)
from storage._versions import (
    create_version,
    find_version_by_request_id,
    get_version,
    get_version_by_id,
    list_attachments,
    list_versions,
)

__all__ = [
    "EVENTS_CHANNEL",
    "JOBS_CHANNEL",
    "PROCESS_TAG",
    "TERMINAL_STATES",
    "Blob",
    "ClaimedJob",
    "ConversationSession",
    "Database",
    "ErrorDetail",
    "Event",
    "EventDraft",
    "EventType",
    "FileContent",
    "Generation",
    "Job",
    "JobStatus",
    "ManifestEntry",
    "NewTurn",
    "RequestIdTaken",
    "StateConflict",
    "StorageError",
    "StorageUnavailable",
    "Transaction",
    "TreeEntry",
    "Turn",
    "Version",
    "VersionAttachment",
    "VersionKind",
    "VersionState",
    "WriteConflict",
    "append_event",
    "append_events",
    "branch_turns",
    "claim_job",
    "create_generation",
    "create_version",
    "end_job",
    "expired_jobs",
    "find_version_by_request_id",
    "finish_job",
    "get_conversation",
    "get_generation",
    "get_manifest_entry",
    "get_version",
    "get_version_by_id",
    "has_queued_job",
    "holds_lease",
    "job_for_version",
    "list_attachments",
    "list_events",
    "list_generations",
    "list_manifest",
    "list_turns",
    "list_versions",
    "put_blobs",
    "read_blob",
    "read_blobs",
    "read_tree",
    "record_exchange",
    "renew_lease",
    "request_cancel",
    "requeue_job",
    "sha256_hex",
    "store_files",
    "turn_numbers",
    "utcnow",
    "version_numbers",
    "write_changes",
    "write_tree",
]
