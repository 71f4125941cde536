"""The SDK's own types: what callers get back, never the generated messages."""

from __future__ import annotations

import enum
import mimetypes
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path


class VersionState(enum.Enum):
    """The life of a version's job. COMPLETED, FAILED, CANCELLED and NEEDS_REVIEW are terminal."""

    UNSPECIFIED = "UNSPECIFIED"
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    NEEDS_REVIEW = "NEEDS_REVIEW"

    @property
    def terminal(self) -> bool:
        """Whether a version in this state never changes state again."""
        return self in _TERMINAL


_TERMINAL = frozenset(
    {VersionState.COMPLETED, VersionState.FAILED, VersionState.CANCELLED, VersionState.NEEDS_REVIEW}
)


class VersionKind(enum.Enum):
    """How a version came to be."""

    UNSPECIFIED = "UNSPECIFIED"
    GENERATE = "GENERATE"
    TWEAK = "TWEAK"
    ITERATE = "ITERATE"
    REGENERATE = "REGENERATE"
    UPLOAD = "UPLOAD"
    MERGE = "MERGE"


class ProgressEventType(enum.Enum):
    """What a progress event reports."""

    UNSPECIFIED = "UNSPECIFIED"
    STATE = "STATE"
    STAGE_STARTED = "STAGE_STARTED"
    STAGE_DONE = "STAGE_DONE"
    MESSAGE = "MESSAGE"
    OUTPUT = "OUTPUT"
    QUEUED = "QUEUED"


class TurnRole(enum.Enum):
    """Who spoke a turn of the conversation."""

    UNSPECIFIED = "UNSPECIFIED"
    USER = "USER"
    MODEL = "MODEL"


class FileChange(enum.Enum):
    """How a path differs between two versions."""

    UNSPECIFIED = "UNSPECIFIED"
    ADDED = "ADDED"
    REMOVED = "REMOVED"
    MODIFIED = "MODIFIED"


class ConflictKind(enum.Enum):
    """Why Merge could not take a path from either side."""

    UNSPECIFIED = "UNSPECIFIED"
    BOTH_CHANGED = "BOTH_CHANGED"
    CHANGED_AND_DELETED = "CHANGED_AND_DELETED"
    BOTH_ADDED = "BOTH_ADDED"


class MergeStrategy(enum.Enum):
    """How Merge resolves conflicts: take our side, or theirs. `None` (the default) reports them."""

    OURS = "OURS"
    THEIRS = "THEIRS"


class WebhookEventType(enum.Enum):
    """What in a version's life a webhook reports (the payload's `type`: `version.started`, ...)."""

    UNSPECIFIED = "UNSPECIFIED"
    STARTED = "STARTED"
    OUTPUT = "OUTPUT"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    NEEDS_REVIEW = "NEEDS_REVIEW"


class WebhookDeliveryState(enum.Enum):
    """Where one webhook delivery stands: PENDING (an attempt is due), DELIVERED (a 2xx answer) or
    FAILED (every attempt failed; `replay_webhook_delivery` tries again)."""

    UNSPECIFIED = "UNSPECIFIED"
    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class ErrorStatus:
    """Why a version FAILED or was CANCELLED: a status code name, a message and the ErrorInfo."""

    code: str
    message: str
    reason: str = ""
    domain: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ModelUsage:
    """The tokens one request to a model used, as the model reported them."""

    input_tokens: int = 0
    output_tokens: int = 0
    thinking_tokens: int = 0
    # What the request cost (USD; thinking tokens are billed as output), and the images it made.
    cost: float = 0.0
    images: int = 0


@dataclass(frozen=True, slots=True)
class Ledger:
    """What a version's job took, over all its attempts; filled in as attempts end.

    `cooldown_time` is the part of running spent waiting for the model: its cooldowns after a 429,
    and its budgets of requests and input tokens per minute.
    `usage` has one entry per request to the model, in the order they were made.
    """

    queue_time: timedelta = timedelta()
    run_time: timedelta = timedelta()
    cooldown_time: timedelta = timedelta()
    attempts: int = 0
    usage: tuple[ModelUsage, ...] = ()
    # Totals over `usage` (output tokens: thinking included), and what they cost in USD at the
    # model's prices when each request was made.
    input_tokens: int = 0
    output_tokens: int = 0
    images: int = 0
    cost: float = 0.0

    @property
    def total_usage(self) -> ModelUsage:
        """The tokens of every request, summed."""
        return ModelUsage(
            input_tokens=sum(u.input_tokens for u in self.usage),
            output_tokens=sum(u.output_tokens for u in self.usage),
            thinking_tokens=sum(u.thinking_tokens for u in self.usage),
        )


@dataclass(frozen=True, slots=True)
class Version:
    """One revision of a generation's file tree (`generations/{g}/versions/{n}`)."""

    name: str
    number: int
    kind: VersionKind
    state: VersionState
    prompt: str
    model: str
    parent: str | None = None
    merge_parent: str | None = None
    stage: int = 0
    total_stages: int = 0
    message: str = ""
    error: ErrorStatus | None = None
    file_count: int = 0
    etag: str = ""
    request_id: str | None = None
    last_event_seq: int = 0
    turn: int = 0
    added_count: int = 0
    modified_count: int = 0
    deleted_count: int = 0
    create_time: datetime | None = None
    update_time: datetime | None = None
    complete_time: datetime | None = None
    # While QUEUED: the place in the model's queue (1: next; 0 when not queued, or not looked at
    # yet), and when the job should start and end (None when the server cannot estimate it).
    queue_position: int = 0
    estimated_start_time: datetime | None = None
    estimated_complete_time: datetime | None = None
    ledger: Ledger = field(default_factory=Ledger)
    # A fan-out's output: its batch (`generations/{g}/batches/{b}`) and its variant's name.
    batch: str | None = None
    variant: str | None = None
    # The draft the prompt came from (`drafts/{d}`), when Generate named one.
    draft: str | None = None

    @property
    def generation(self) -> str:
        """The generation the version belongs to: `generations/{g}`."""
        return self.name.rsplit("/versions/", 1)[0]

    @property
    def done(self) -> bool:
        """Whether the version's job has ended (its state is terminal)."""
        return self.state.terminal


@dataclass(frozen=True, slots=True)
class Generation:
    """One lineage of work, started by Generate (`generations/{g}`)."""

    name: str
    prompt: str
    model: str
    provider: str
    version_count: int
    latest_version: str
    session: str
    create_time: datetime | None = None
    update_time: datetime | None = None
    # The principal that owns it (an admin sees everyone's).
    owner: str = ""
    # Set while it is deleted: when it was, and when it is purged for good unless undeleted first.
    delete_time: datetime | None = None
    expire_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class FileBlame:
    """Which version last changed a file (added it, or wrote new contents), and why."""

    path: str
    version: str
    kind: VersionKind
    prompt: str
    create_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class File:
    """One file of a version's tree; `blame` is set when asked for (`files(..., blame=True)`)."""

    path: str
    size: int
    sha256: str
    mime_type: str
    # A signed URL that serves the file over HTTP with no credentials, until it expires ("" when
    # the server has no web port); an image's size in pixels (0 for other files).
    download_url: str = ""
    width: int = 0
    height: int = 0
    blame: FileBlame | None = None


@dataclass(frozen=True, slots=True)
class Draft:
    """A prompt a text model drafted from the caller's text (`drafts/{d}`); not a version.

    `prompt` is the draft now (edited or not); `drafted_prompt` what the model wrote.
    """

    name: str
    text: str
    context: str
    model: str
    drafter_model: str
    prompt: str
    drafted_prompt: str
    edited: bool = False
    owner: str = ""
    etag: str = ""
    usage: ModelUsage = field(default_factory=ModelUsage)
    create_time: datetime | None = None
    update_time: datetime | None = None
    # The request id that created the draft (the SDK makes one per call when you give none).
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """One event in a version's life. A version's events are numbered 1, 2, 3, ... with no gaps."""

    seq: int
    version: str
    type: ProgressEventType
    state: VersionState
    stage: int = 0
    total_stages: int = 0
    message: str = ""
    paths: tuple[str, ...] = ()
    error: ErrorStatus | None = None
    create_time: datetime | None = None
    # On a QUEUED event: the version's place in the queue (1: next), and when it should start and end.
    queue_position: int = 0
    estimated_start_time: datetime | None = None
    estimated_complete_time: datetime | None = None
    # On a batch's stream: the batch, its counts once this event is counted, and the token that
    # resumes the stream after this event.
    batch: str | None = None
    batch_counts: BatchCounts | None = None
    resume_token: str = ""

    @property
    def terminal(self) -> bool:
        """Whether this is the version's last event (its state is terminal)."""
        return self.state.terminal


@dataclass(frozen=True, slots=True)
class Variant:
    """One output of a fan-out: a short name (`front`), a text added to the prompt, or both. A name
    alone is also the text; a text alone is named by its position (`1`, `2`, ...)."""

    name: str = ""
    prompt_suffix: str = ""


@dataclass(frozen=True, slots=True)
class BatchCounts:
    """How many of a batch's outputs are in each state."""

    queued: int = 0
    running: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    needs_review: int = 0
    total: int = 0

    @property
    def done(self) -> bool:
        """Whether every output has ended."""
        return self.queued + self.running == 0


@dataclass(frozen=True, slots=True)
class Batch:
    """A fan-out's outputs (`generations/{g}/batches/{b}`): sibling versions, in variant order."""

    name: str
    versions: tuple[Version, ...]
    counts: BatchCounts
    done: bool


@dataclass(frozen=True, slots=True)
class Price:
    """What a model costs (in `currency`, USD), and what EstimateCost assumes one call answers."""

    input_per_million_tokens: float = 0.0
    output_per_million_tokens: float = 0.0
    per_image: float = 0.0
    currency: str = "USD"
    estimated_output_tokens: int = 0
    estimated_images: int = 0


@dataclass(frozen=True, slots=True)
class CostEstimate:
    """What a request would cost before it runs, and what the estimate assumed."""

    model: str
    price: Price
    outputs: int
    calls: int
    input_tokens: int
    # Whether the model's own token counter counted the input (else: estimated).
    input_tokens_counted: bool
    output_tokens: int
    images: int
    cost: float
    currency: str
    assumptions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class UsageRow:
    """What one principal spent on one model on one UTC day (`YYYY-MM-DD`)."""

    principal: str
    model: str
    day: str
    versions: int
    input_tokens: int
    output_tokens: int
    images: int
    cost: float


@dataclass(frozen=True, slots=True)
class Usage:
    """GetUsage's answer: rows by day, principal and model, and their total cost."""

    rows: tuple[UsageRow, ...]
    total_cost: float
    currency: str


@dataclass(frozen=True, slots=True)
class ModelStatus:
    """A model's jobs right now, across every server sharing one database.

    `cooldown_until` is set while the model cools down after its provider refused a request (429):
    no job starts before then, and running ones wait rather than fail.
    """

    jobs_in_flight: int = 0
    jobs_queued: int = 0
    cooldown_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Model:
    """A model that Generate, Tweak and Iterate can be asked to use.

    `max_concurrent` (calls in flight), `requests_per_minute` and `tokens_per_minute` (input
    tokens, estimated before each request and corrected by the model's count) hold across every
    server sharing one database; None means the model has no limit of its own (its provider's
    quota still applies).
    """

    name: str
    provider: str
    display_name: str
    output_modalities: tuple[str, ...] = ()
    default: bool = False
    max_concurrent: int | None = None
    requests_per_minute: int | None = None
    status: ModelStatus = field(default_factory=ModelStatus)
    price: Price = field(default_factory=Price)
    tokens_per_minute: int | None = None


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """What the server accepts in a request (its settings), so that a client can check before it
    sends; over a limit, a request fails with InvalidArgument and a reason that names it. Sizes
    are in bytes; `max_attachment_bytes` 0 means no attachment is accepted."""

    # The most outputs one fan-out (variants or a count) may ask for.
    max_batch_size: int
    # The longest prompt, in UTF-8 bytes.
    max_prompt_bytes: int
    # A request's attachments, all together.
    max_attachment_bytes: int
    # The largest gRPC message the server receives or sends.
    max_message_bytes: int
    # The largest file, the most bytes and the most files a version's tree may hold.
    max_file_bytes: int
    max_tree_bytes: int
    max_tree_files: int


@dataclass(frozen=True, slots=True)
class Session:
    """The conversation with the model behind a generation (`generations/{g}/session`)."""

    name: str
    generation: str
    model: str
    system_instruction: str
    turn_count: int
    create_time: datetime | None = None
    update_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class TurnPart:
    """Text, or inline data (stored once as a blob: its MIME type, size and SHA-256)."""

    text: str = ""
    mime_type: str = ""
    size: int = 0
    sha256: str = ""
    thought: bool = False


@dataclass(frozen=True, slots=True)
class Turn:
    """One message of the conversation; `parent` links it to the turn before it on its branch."""

    name: str
    number: int
    role: TurnRole
    parts: tuple[TurnPart, ...] = ()
    parent: str | None = None
    version: str | None = None
    create_time: datetime | None = None

    @property
    def text(self) -> str:
        """The text of the turn's answer parts (thinking left out), joined."""
        return "".join(part.text for part in self.parts if not part.thought)


@dataclass(frozen=True, slots=True)
class FileDiff:
    """One path that differs between two versions. `base` is None when ADDED, `target` when REMOVED."""

    path: str
    change: FileChange
    base: File | None = None
    target: File | None = None
    unified_diff: str = ""


@dataclass(frozen=True, slots=True)
class MergeConflict:
    """A path Merge could not resolve. Each side's file is None where that side has none."""

    path: str
    kind: ConflictKind
    base: File | None = None
    ours: File | None = None
    theirs: File | None = None


@dataclass(frozen=True, slots=True)
class MergeResult:
    """The merged version, or (when there are conflicts and no strategy) the conflicts."""

    version: Version | None
    conflicts: tuple[MergeConflict, ...] = ()

    @property
    def merged(self) -> bool:
        """Whether a merged version was written."""
        return self.version is not None


@dataclass(frozen=True, slots=True)
class Webhook:
    """Where the server POSTs a new version's events, signed (README, Webhooks). No `events`:
    STARTED and every terminal one. The server must allow the URL (else `InvalidArgument`, reason
    WEBHOOK_URL_NOT_ALLOWED) and have a secret (else `FailedPrecondition`, WEBHOOKS_DISABLED)."""

    url: str
    events: tuple[WebhookEventType, ...] = ()


@dataclass(frozen=True, slots=True)
class WebhookAttempt:
    """One POST of a delivery: the receiver's HTTP status (0 when it gave none), or why it failed."""

    attempt_time: datetime | None = None
    duration: timedelta = timedelta()
    status_code: int = 0
    error: str = ""


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """One event of a version, sent (or to be sent) to its webhook, with every attempt, oldest
    first (`generations/{g}/versions/{n}/webhookDeliveries/{d}`; {d} is the `webhook-id` header)."""

    name: str
    event_type: WebhookEventType
    url: str
    state: WebhookDeliveryState
    event_time: datetime | None = None
    # While PENDING: when the next attempt is due; once DELIVERED: when a receiver answered 2xx.
    next_attempt_time: datetime | None = None
    deliver_time: datetime | None = None
    attempts: tuple[WebhookAttempt, ...] = ()


@dataclass(frozen=True, slots=True)
class Attachment:
    """An input file sent with a prompt. `Attachment.from_path` reads one from disk."""

    name: str
    mime_type: str
    data: bytes

    @classmethod
    def from_path(cls, path: str | Path, *, mime_type: str | None = None) -> Attachment:
        """Reads a file; the MIME type is guessed from its name unless given."""
        source = Path(path)
        # The server guesses the MIME type of an uploaded file, but refuses an attachment without one.
        guessed = mimetypes.guess_type(source.name, strict=False)[0] or "application/octet-stream"
        return cls(source.name, mime_type or guessed, source.read_bytes())
