"""Table models and the stored vocabulary (states, kinds, event types).

Times are timezone-aware UTC datetimes (SQLModel's UTCDateTime column type).
"""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel


class VersionState(enum.StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    NEEDS_REVIEW = "NEEDS_REVIEW"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset(
    {VersionState.COMPLETED, VersionState.FAILED, VersionState.CANCELLED, VersionState.NEEDS_REVIEW}
)


class VersionKind(enum.StrEnum):
    GENERATE = "GENERATE"
    TWEAK = "TWEAK"
    ITERATE = "ITERATE"
    REGENERATE = "REGENERATE"
    UPLOAD = "UPLOAD"
    MERGE = "MERGE"


class EventType(enum.StrEnum):
    STATE = "STATE"
    STAGE_STARTED = "STAGE_STARTED"
    STAGE_DONE = "STAGE_DONE"
    MESSAGE = "MESSAGE"
    OUTPUT = "OUTPUT"
    # The version waits: its place in the queue, or when it should start, changed.
    QUEUED = "QUEUED"


def max_length(table: type[SQLModel], column: str) -> int:
    """How many characters `column` of `table` holds. PostgreSQL refuses a longer value and SQLite
    stores it anyway, so callers check their values against this before either sees them."""
    length = getattr(sa.inspect(table).columns[column].type, "length", None)
    if not isinstance(length, int):
        raise ValueError(f"{table.__name__}.{column} has no length")
    return length


def max_integer(table: type[SQLModel], column: str) -> int:
    """The largest value `column` of `table` holds. PostgreSQL refuses a larger one ("integer out
    of range", even in a comparison) and SQLite stores it, so callers check their values first."""
    kind = sa.inspect(table).columns[column].type
    if isinstance(kind, sa.BigInteger):
        return 2**63 - 1
    if isinstance(kind, sa.SmallInteger):
        return 2**15 - 1
    if isinstance(kind, sa.Integer):
        return 2**31 - 1
    raise ValueError(f"{table.__name__}.{column} is not an integer column")


class JobStatus(enum.StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    DONE = "DONE"


class Blob(SQLModel, table=True):
    """File contents, addressed by their SHA-256 and stored once whatever refers to them.

    A version's tree, an attachment and a turn refer to blobs by foreign key; the garbage
    collector (`delete_unused_blobs`) removes those nothing refers to.
    """

    __tablename__ = "blob"

    sha256: str = Field(primary_key=True, max_length=64)
    size: int
    data: bytes = Field(sa_type=sa.LargeBinary)
    # When the content was first stored (None: before this column existed). The collector
    # leaves young blobs alone for a grace period, for writers that store contents in one
    # transaction and refer to them in a later one.
    create_time: datetime | None = None


class Generation(SQLModel, table=True):
    __tablename__ = "generation"
    __table_args__ = (
        sa.Index("ix_generation_owner_id", "owner", "id"),
        # Retention finds generations by their last update, the purge by their expiry.
        sa.Index("ix_generation_update_time", "update_time"),
        sa.Index("ix_generation_expire_time", "expire_time"),
    )

    # Time-ordered (see ids.new_generation_id), so listing by id is listing by age.
    id: str = Field(primary_key=True, max_length=32)
    owner: str = Field(max_length=200)
    prompt: str = Field(sa_type=sa.Text)
    model: str = Field(max_length=200)
    provider: str = Field(max_length=100)
    version_count: int = 0
    create_time: datetime
    update_time: datetime
    # Set by DeleteGeneration (AIP-135 soft delete): the generation and its versions are hidden
    # from every read, and purged once `expire_time` passes unless UndeleteGeneration comes first.
    delete_time: datetime | None = None
    expire_time: datetime | None = None


class Draft(SQLModel, table=True):
    """A prompt drafted by a text model (DraftPrompt) from a caller's text, for a target model.

    Not a version: it holds no files. `prompt` starts as the model's `drafted_prompt` and is the
    caller's to edit; a version made from it names it (`Version.draft_id`).
    """

    __tablename__ = "draft"
    __table_args__ = (
        sa.Index("ix_draft_owner_id", "owner", "id"),
        # AIP-155: one request id names one draft per caller, as it names one version.
        sa.UniqueConstraint("owner", "request_id", name="uq_draft_owner_request_id"),
    )

    # Time-ordered, as generation ids are: listing by id is listing by age.
    id: str = Field(primary_key=True, max_length=32)
    owner: str = Field(max_length=200)
    # What the caller gave: its text, a context or style instruction, and the target model.
    text: str = Field(sa_type=sa.Text)
    context: str = Field(default="", sa_type=sa.Text)
    model: str = Field(max_length=200)
    # The text model that drafted, and its provider.
    drafter_model: str = Field(max_length=200)
    provider: str = Field(max_length=100)
    drafted_prompt: str = Field(sa_type=sa.Text)
    prompt: str = Field(sa_type=sa.Text)
    # What the drafting request used.
    input_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0
    # Bumped on every change; the etag is derived from it. 0: a reservation, not yet a draft: a
    # DraftPrompt with a request id holds its id while the model drafts, so that a concurrent call
    # with the same id asks no model too; no read sees it (RESERVED_DRAFT).
    revision: int = 1
    request_id: str | None = Field(default=None, max_length=200)
    # A hash of the creating request's parameters, to tell a retry from a reused request id.
    request_fingerprint: str | None = Field(default=None, max_length=64)
    create_time: datetime
    update_time: datetime


class Version(SQLModel, table=True):
    __tablename__ = "version"
    __table_args__ = (
        # A model's recent durations, for queue estimates.
        sa.Index("ix_version_model_complete_time", "model", "complete_time"),
        # Usage is summed by owner over a time range; a batch's versions are read together.
        sa.Index("ix_version_owner_complete_time", "owner", "complete_time"),
        sa.Index("ix_version_generation_batch", "generation_id", "batch_number", "number"),
        sa.UniqueConstraint("generation_id", "number", name="uq_version_generation_number"),
        # AIP-155: one request id names one version per caller.
        sa.UniqueConstraint("owner", "request_id", name="uq_version_owner_request_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    generation_id: str = Field(foreign_key="generation.id", max_length=32)
    number: int
    owner: str = Field(max_length=200)
    kind: str = Field(max_length=20)
    parent_number: int | None = None
    prompt: str = Field(sa_type=sa.Text)
    model: str = Field(max_length=200)
    provider: str = Field(max_length=100)
    state: str = Field(max_length=20)
    stage: int = 0
    total_stages: int = 0
    message: str = Field(default="", sa_type=sa.Text)
    error_code: str | None = Field(default=None, max_length=40)
    error_reason: str | None = Field(default=None, max_length=100)
    error_message: str | None = Field(default=None, sa_type=sa.Text)
    file_count: int = 0
    # Bumped on every change; the etag is derived from it.
    revision: int = 1
    request_id: str | None = Field(default=None, max_length=200)
    # A hash of the creating request's parameters, to tell a retry from a reused request id.
    request_fingerprint: str | None = Field(default=None, max_length=64)
    last_event_seq: int = 0
    # The session turn this version's request continues from (None: the start of the session),
    # and the model's answer that ended its job (set once COMPLETED). Together they place the
    # version on its branch of the conversation. (Not declared as foreign keys: turn refers
    # to version, and a cycle of foreign keys would make the tables impossible to order.)
    base_turn_id: int | None = None
    head_turn_id: int | None = None
    # The number of exchanges on the version's branch, its own included once COMPLETED.
    turn: int = 0
    # A merge's second parent.
    merge_parent_number: int | None = None
    # What the version changed against its parent.
    added_count: int = 0
    modified_count: int = 0
    deleted_count: int = 0
    # Whether a webhook_subscription row exists: its events then write deliveries. Read with the
    # statement that numbers each event, so a version without one costs no lookup.
    has_webhook: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    # The ledger: seconds spent queued, running and waiting on the model's cooldowns (all
    # attempts), how many attempts the job took, and what each request to the model used
    # ([{"input_tokens": ..., "output_tokens": ..., "thinking_tokens": ...}, ...]).
    queue_seconds: float = 0.0
    run_seconds: float = 0.0
    cooldown_seconds: float = 0.0
    attempts: int = 0
    usage: list[dict[str, float]] = Field(default_factory=list, sa_type=sa.JSON)
    # The totals of `usage` (images: those the model answered with), and what they cost in USD at
    # the model's prices when each request was made: columns, so that usage sums in SQL.
    input_tokens: int = 0
    output_tokens: int = 0
    images: int = 0
    cost: float = 0.0
    # A fan-out's output: the number of its batch's first version, and its variant's name.
    batch_number: int | None = None
    variant: str | None = Field(default=None, max_length=64)
    # How the tree is stored (see docs/STORAGE.md): a snapshot (manifest_base_id is None), or
    # the rows that differ from the tree of version `manifest_base_id`. `manifest_chain` counts
    # the deltas back to a snapshot and `manifest_delta_rows` their rows, to bound reads.
    manifest_base_id: int | None = None
    manifest_chain: int = 0
    manifest_delta_rows: int = 0
    # The draft (DraftPrompt) the version's prompt came from, if the request named one.
    draft_id: str | None = Field(default=None, foreign_key="draft.id", max_length=32)
    create_time: datetime
    update_time: datetime
    complete_time: datetime | None = None


class VersionAttachment(SQLModel, table=True):
    """An input file sent with the prompt that created a version."""

    __tablename__ = "version_attachment"
    # The garbage collector asks whether anything refers to a blob.
    __table_args__ = (sa.Index("ix_version_attachment_blob_sha256", "blob_sha256"),)

    version_id: int = Field(foreign_key="version.id", primary_key=True)
    position: int = Field(primary_key=True)
    name: str = Field(default="", max_length=1024)
    mime_type: str = Field(max_length=255)
    blob_sha256: str = Field(foreign_key="blob.sha256", max_length=64)


class ManifestEntry(SQLModel, table=True):
    """One file of a version's tree, or (in a delta) a file removed from its base: `deleted`."""

    __tablename__ = "manifest_entry"
    __table_args__ = (sa.Index("ix_manifest_entry_blob_sha256", "blob_sha256"),)

    version_id: int = Field(foreign_key="version.id", primary_key=True)
    path: str = Field(primary_key=True, max_length=1024)
    blob_sha256: str | None = Field(default=None, foreign_key="blob.sha256", max_length=64)
    size: int
    mime_type: str = Field(max_length=255)
    deleted: bool = False


class Event(SQLModel, table=True):
    """One progress event of a version; (version_id, seq) is gap-free from 1."""

    __tablename__ = "event"

    version_id: int = Field(foreign_key="version.id", primary_key=True)
    seq: int = Field(primary_key=True)
    type: str = Field(max_length=20)
    state: str = Field(max_length=20)
    stage: int = 0
    total_stages: int = 0
    message: str = Field(default="", sa_type=sa.Text)
    paths: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    error_code: str | None = Field(default=None, max_length=40)
    error_reason: str | None = Field(default=None, max_length=100)
    error_message: str | None = Field(default=None, sa_type=sa.Text)
    # On a QUEUED event: the version's place in the queue (1: next) and when it should start and end.
    queue_position: int | None = None
    estimated_start_time: datetime | None = None
    estimated_complete_time: datetime | None = None
    create_time: datetime


class Job(SQLModel, table=True):
    """The durable work item behind a QUEUED or RUNNING version."""

    __tablename__ = "job"
    __table_args__ = (
        sa.Index("ix_job_status_available", "status", "available_at"),
        # A principal's unfinished jobs, counted against its cap on queued jobs.
        sa.Index("ix_job_owner_status", "owner", "status"),
        # The scheduler's view: a model's queued jobs by principal in order, and its running ones.
        sa.Index("ix_job_status_model_owner", "status", "model", "owner", "id"),
        # One running job per session, across every server process: a conversation's turns
        # never interleave. A second claim for the session fails on this index.
        # Deleting a session (a purge) looks for jobs that refer to it.
        sa.Index("ix_job_session_id", "session_id"),
        sa.Index(
            "uq_job_running_session",
            "session_id",
            unique=True,
            sqlite_where=sa.text("status = 'RUNNING'"),
            postgresql_where=sa.text("status = 'RUNNING'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    version_id: int = Field(foreign_key="version.id", unique=True)
    session_id: str | None = Field(default=None, foreign_key="session.id", max_length=32)
    # The version's model and owner, copied here so that the scheduler counts a model's jobs and
    # takes turns between principals without reading versions.
    model: str = Field(default="", max_length=200)
    owner: str = Field(default="", max_length=200)
    status: str = Field(max_length=20)
    attempts: int = 0
    lease_owner: str | None = Field(default=None, max_length=200)
    lease_expires_at: datetime | None = None
    cancel_requested: bool = False
    available_at: datetime
    # When the job last became QUEUED, and when its current attempt was claimed (for the ledger).
    queued_at: datetime | None = None
    claimed_at: datetime | None = None
    # The queue position last reported in an event, so that replicas report each change once.
    reported_position: int | None = None
    create_time: datetime
    update_time: datetime


class ModelState(SQLModel, table=True):
    """A model's capacity, shared by every replica: its cooldown after 429s, and its budgets of
    requests and of input tokens."""

    __tablename__ = "model_state"

    model: str = Field(primary_key=True, max_length=200)
    # While set and in the future, no new job of the model starts: it cools down after a 429.
    cooldown_until: datetime | None = None
    # The current step of the cooldown's backoff, in seconds (0: the model answered last time).
    cooldown_step: float = 0.0
    # A token bucket for requests_per_minute: what is left, and when it was last filled.
    request_tokens: float = 0.0
    tokens_time: datetime | None = None
    # A token bucket for tokens_per_minute (input tokens): what is left, and when it was last
    # filled. Below zero after a request estimated above the whole budget, or one the model
    # counted above its estimate.
    input_tokens: float = 0.0
    input_tokens_time: datetime | None = None
    update_time: datetime


class ConversationSession(SQLModel, table=True):
    """The conversation with the model behind a generation, kept server-side so any process can resume it."""

    __tablename__ = "session"

    id: str = Field(primary_key=True, max_length=32)
    generation_id: str = Field(foreign_key="generation.id", unique=True, max_length=32)
    owner: str = Field(max_length=200)
    model: str = Field(max_length=200)
    system_instruction: str = Field(default="", sa_type=sa.Text)
    # Provider settings needed to resume the chat exactly (a provider-specific JSON object).
    config: dict[str, object] = Field(default_factory=dict, sa_type=sa.JSON)
    turn_count: int = 0
    create_time: datetime
    update_time: datetime


class Turn(SQLModel, table=True):
    """One message of a conversation. `parent_turn_id` makes the turns a tree, so that forks share history."""

    __tablename__ = "turn"
    __table_args__ = (
        sa.UniqueConstraint("session_id", "number", name="uq_turn_session_number"),
        # Deleting turns and versions (a purge) looks for the turns that refer to them.
        sa.Index("ix_turn_parent_turn_id", "parent_turn_id"),
        sa.Index("ix_turn_version_id", "version_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    session_id: str = Field(foreign_key="session.id", max_length=32)
    number: int
    parent_turn_id: int | None = Field(default=None, foreign_key="turn.id")
    version_id: int | None = Field(default=None, foreign_key="version.id")
    role: str = Field(max_length=20)
    # Text parts and inline data as blob references: [{"text": ...} | {"blob": sha, "mime_type": ...}].
    parts: list[dict[str, object]] = Field(default_factory=list, sa_type=sa.JSON)
    # Provider data needed to replay the turn byte-for-byte (for example thought signatures).
    provider_state: dict[str, object] = Field(default_factory=dict, sa_type=sa.JSON)
    create_time: datetime


class ApiKey(SQLModel, table=True):
    """An API key: the principal it stands for and its scopes. Only a hash of its secret is kept."""

    __tablename__ = "api_key"

    # The key's public part (the key reads `atk_<id>_<secret>`), by which it is found.
    id: str = Field(primary_key=True, max_length=32)
    principal: str = Field(max_length=200)
    # Space-separated: "read write", "read write admin".
    scopes: str = Field(max_length=100)
    secret_sha256: str = Field(max_length=64)
    create_time: datetime
    revoke_time: datetime | None = None
    # When a server last accepted the key (written at most about once a minute).
    last_used_time: datetime | None = None


class BlobPart(SQLModel, table=True):
    """One part of a blob stored in parts (a big upload, written part by part as it streams in):
    the blob's own row then holds no data, and its contents are its parts', in `position` order.
    Each part is itself a blob, and this row is what refers to it."""

    __tablename__ = "blob_part"
    __table_args__ = (sa.Index("ix_blob_part_part_sha256", "part_sha256"),)

    blob_sha256: str = Field(
        sa_column=sa.Column(sa.String(64), sa.ForeignKey("blob.sha256", ondelete="CASCADE"), primary_key=True)
    )
    position: int = Field(primary_key=True)
    part_sha256: str = Field(foreign_key="blob.sha256", max_length=64)


class TurnBlob(SQLModel, table=True):
    """A blob that a turn's parts refer to (inline data): the reference as a foreign key, so that
    the garbage collector sees it and the database refuses to lose it."""

    __tablename__ = "turn_blob"
    __table_args__ = (sa.Index("ix_turn_blob_blob_sha256", "blob_sha256"),)

    turn_id: int = Field(foreign_key="turn.id", primary_key=True)
    blob_sha256: str = Field(foreign_key="blob.sha256", primary_key=True, max_length=64)


class WebhookEventType(enum.StrEnum):
    """What in a version's life a webhook reports (the payload's type is `version.<lowercase>`)."""

    STARTED = "STARTED"
    OUTPUT = "OUTPUT"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    NEEDS_REVIEW = "NEEDS_REVIEW"


class WebhookDeliveryState(enum.StrEnum):
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    # Every attempt of the schedule failed, or the receiver answered 410 Gone.
    FAILED = "FAILED"


class WebhookSubscription(SQLModel, table=True):
    """Where a version's events go: written with the version, read with each of its events."""

    __tablename__ = "webhook_subscription"

    version_id: int = Field(foreign_key="version.id", primary_key=True)
    url: str = Field(max_length=2000)
    # WebhookEventType values.
    events: list[str] = Field(default_factory=list, sa_type=sa.JSON)


class WebhookDelivery(SQLModel, table=True):
    """One event of a version for its webhook, written in the transaction of the event itself.

    While PENDING, `next_attempt_time` is when it is due; a deliverer that claims it moves that
    time past its lease and sets `claim_token`, so a crashed deliverer's claim simply lapses.
    """

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        sa.Index("ix_webhook_delivery_state_next_attempt_time", "state", "next_attempt_time"),
        sa.Index("ix_webhook_delivery_version_id", "version_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    # The `webhook-id` header: the same for every attempt and replay.
    webhook_id: str = Field(max_length=40, unique=True)
    version_id: int = Field(foreign_key="version.id")
    event_seq: int
    event_type: str = Field(max_length=20)
    event_time: datetime
    url: str = Field(max_length=2000)
    state: str = Field(max_length=20)
    # The body sent, fixed by the first attempt (None before it).
    body: str | None = Field(default=None, sa_type=sa.Text)
    # How far along the retry schedule the delivery is (a replay starts it again).
    schedule_step: int = 0
    next_attempt_time: datetime | None = None
    claim_token: str | None = Field(default=None, max_length=40)
    deliver_time: datetime | None = None
    create_time: datetime
    update_time: datetime


class WebhookAttempt(SQLModel, table=True):
    """One POST of a delivery, and what came of it."""

    __tablename__ = "webhook_attempt"
    __table_args__ = (sa.Index("ix_webhook_attempt_delivery_id", "delivery_id"),)

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: int = Field(foreign_key="webhook_delivery.id")
    attempt_time: datetime
    duration_seconds: float = 0.0
    status_code: int | None = None
    error: str | None = Field(default=None, sa_type=sa.Text)
