"""What the domain hands to the API: generations, versions, their progress events and conversations.

These are plain, immutable values made from stored rows. They carry what a caller may see
and nothing of how it is stored (no database ids, owners or manifest bookkeeping), so the
API converts them to messages without knowing the tables.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import storage
from server.config import ModelConfig

# The stored vocabulary is the domain's vocabulary: the same names, the same values.
VersionState = storage.VersionState
VersionKind = storage.VersionKind
EventType = storage.EventType
ErrorDetail = storage.ErrorDetail
TreeEntry = storage.TreeEntry
WebhookEventType = storage.WebhookEventType
WebhookDeliveryState = storage.WebhookDeliveryState

# Only these states have files that can be read.
READABLE_STATES = frozenset({VersionState.COMPLETED, VersionState.NEEDS_REVIEW})


@dataclass(frozen=True, slots=True)
class VersionRef:
    """Names one version: `generations/{generation_id}/versions/{number}`."""

    generation_id: str
    number: int


@dataclass(frozen=True, slots=True)
class Generation:
    id: str
    owner: str
    prompt: str
    model: str
    provider: str
    version_count: int
    create_time: datetime
    update_time: datetime
    # Set while the generation is soft-deleted: when, and when it will be purged.
    delete_time: datetime | None = None
    expire_time: datetime | None = None


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """What one request to the model used."""

    input_tokens: int
    output_tokens: int
    thinking_tokens: int
    cost: float = 0.0
    images: int = 0


@dataclass(frozen=True, slots=True)
class Ledger:
    """What a version's job took, over all its attempts."""

    queue_seconds: float
    run_seconds: float
    cooldown_seconds: float
    attempts: int
    usage: tuple[TokenUsage, ...]
    # Totals over `usage` (output tokens: thinking included), and their cost in USD.
    input_tokens: int = 0
    output_tokens: int = 0
    images: int = 0
    cost: float = 0.0


@dataclass(frozen=True, slots=True)
class QueueEstimate:
    """Where a QUEUED version stands: its place (1: next), and when it should start and end."""

    position: int
    start_time: datetime | None
    complete_time: datetime | None


@dataclass(frozen=True, slots=True)
class Version:
    generation_id: str
    number: int
    kind: VersionKind
    # The version this one was made from (a merge's `ours`), and a merge's `theirs`.
    parent_number: int | None
    merge_parent_number: int | None
    prompt: str
    model: str
    provider: str
    state: VersionState
    stage: int
    total_stages: int
    message: str
    error: ErrorDetail | None
    file_count: int
    etag: str
    request_id: str | None
    last_event_seq: int
    turn: int
    added_count: int
    modified_count: int
    deleted_count: int
    create_time: datetime
    update_time: datetime
    complete_time: datetime | None
    ledger: Ledger
    # Set only while QUEUED, when the runner has looked at the queue.
    queue: QueueEstimate | None = None
    # A fan-out's output: its batch (the number of the batch's first version) and variant.
    batch_number: int | None = None
    variant: str | None = None
    # The draft the prompt came from (DraftPrompt), if the request named one.
    draft_id: str | None = None

    @property
    def ref(self) -> VersionRef:
        return VersionRef(self.generation_id, self.number)


@dataclass(frozen=True, slots=True)
class BatchRef:
    """Names one batch: `generations/{generation_id}/batches/{number}` (its first version's number)."""

    generation_id: str
    number: int


@dataclass(frozen=True, slots=True)
class BatchCounts:
    """How many of a batch's outputs are in each state."""

    queued: int = 0
    running: int = 0
    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    needs_review: int = 0

    @property
    def total(self) -> int:
        return self.queued + self.running + self.completed + self.failed + self.cancelled + self.needs_review

    @property
    def done(self) -> bool:
        return self.queued + self.running == 0

    @classmethod
    def of(cls, states: Iterable[VersionState]) -> BatchCounts:
        counted = Counter(states)
        return cls(
            queued=counted[VersionState.QUEUED],
            running=counted[VersionState.RUNNING],
            completed=counted[VersionState.COMPLETED],
            failed=counted[VersionState.FAILED],
            cancelled=counted[VersionState.CANCELLED],
            needs_review=counted[VersionState.NEEDS_REVIEW],
        )


@dataclass(frozen=True, slots=True)
class Batch:
    ref: BatchRef
    versions: tuple[Version, ...]

    @property
    def counts(self) -> BatchCounts:
        return BatchCounts.of(v.state for v in self.versions)


@dataclass(frozen=True, slots=True)
class BatchEvent:
    """An output's event on a batch's Progress stream: the output, the batch's counts once the
    event is counted, and the cursor that resumes the stream after it."""

    version_number: int
    event: ProgressEvent
    counts: BatchCounts
    resume_token: str


@dataclass(frozen=True, slots=True)
class UsageRow:
    """What one principal spent on one model on one UTC day."""

    principal: str
    model: str
    day: str
    versions: int
    input_tokens: int
    output_tokens: int
    images: int
    cost: float


@dataclass(frozen=True, slots=True)
class Draft:
    """A prompt a text model drafted from a caller's text (DraftPrompt); not a version."""

    id: str
    owner: str
    text: str
    context: str
    # The model the prompt is for, and the text model that drafted it.
    model: str
    drafter_model: str
    # The draft now (as the caller edited it), and as the model drafted it.
    prompt: str
    drafted_prompt: str
    usage: TokenUsage
    etag: str
    create_time: datetime
    update_time: datetime
    # The request id (AIP-155) that made it, if any.
    request_id: str | None = None


@dataclass(frozen=True, slots=True)
class FileBlame:
    """The version that last changed a file (added it, or wrote new contents), and why."""

    path: str
    version: VersionRef
    kind: VersionKind
    prompt: str
    create_time: datetime


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """One event in a version's life; `seq` numbers a version's events 1, 2, 3, ... without gaps."""

    seq: int
    type: EventType
    state: VersionState
    stage: int
    total_stages: int
    message: str
    paths: tuple[str, ...]
    error: ErrorDetail | None
    create_time: datetime
    # On a QUEUED event.
    queue: QueueEstimate | None = None


@dataclass(frozen=True, slots=True)
class ModelView:
    """A model clients may ask for, with what it is doing now across every replica."""

    config: ModelConfig
    default: bool
    jobs_in_flight: int
    jobs_queued: int
    cooldown_until: datetime | None


@dataclass(frozen=True, slots=True)
class Conversation:
    """The conversation with the model behind a generation (the API's Session)."""

    generation_id: str
    model: str
    system_instruction: str
    turn_count: int
    create_time: datetime
    update_time: datetime


@dataclass(frozen=True, slots=True)
class TurnPart:
    text: str
    # Inline data, by its MIME type, size and SHA-256 (the bytes are a stored blob).
    mime_type: str
    size: int
    sha256: str
    thought: bool


@dataclass(frozen=True, slots=True)
class Turn:
    number: int
    role: str
    parts: tuple[TurnPart, ...]
    # The turn before this one on its branch, and the version whose job added it.
    parent_number: int | None
    version_number: int | None
    create_time: datetime


@dataclass(frozen=True, slots=True)
class WebhookAttempt:
    attempt_time: datetime
    duration_seconds: float
    # None: the receiver gave no answer (`error` says why).
    status_code: int | None
    error: str


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """One event of a version for its webhook; `webhook_id` is the `webhook-id` header."""

    generation_id: str
    version_number: int
    webhook_id: str
    event_type: WebhookEventType
    url: str
    state: WebhookDeliveryState
    event_time: datetime
    next_attempt_time: datetime | None
    deliver_time: datetime | None
    attempts: tuple[WebhookAttempt, ...]


def webhook_delivery_of(view: storage.DeliveryView) -> WebhookDelivery:
    row = view.delivery
    state = WebhookDeliveryState(row.state)
    return WebhookDelivery(
        generation_id=view.generation_id,
        version_number=view.version_number,
        webhook_id=row.webhook_id,
        event_type=WebhookEventType(row.event_type),
        url=row.url,
        state=state,
        event_time=row.event_time,
        next_attempt_time=row.next_attempt_time if state == WebhookDeliveryState.PENDING else None,
        deliver_time=row.deliver_time,
        attempts=tuple(
            WebhookAttempt(a.attempt_time, a.duration_seconds, a.status_code, a.error or "")
            for a in view.attempts
        ),
    )


def version_etag(revision: int) -> str:
    return f'W/"{revision}"'


def version_of(row: storage.Version, queue: storage.QueueEstimate | None = None) -> Version:
    return Version(
        generation_id=row.generation_id,
        number=row.number,
        kind=VersionKind(row.kind),
        parent_number=row.parent_number,
        merge_parent_number=row.merge_parent_number,
        prompt=row.prompt,
        model=row.model,
        provider=row.provider,
        state=VersionState(row.state),
        stage=row.stage,
        total_stages=row.total_stages,
        message=row.message,
        error=_error(row.error_code, row.error_reason, row.error_message),
        file_count=row.file_count,
        etag=version_etag(row.revision),
        request_id=row.request_id,
        last_event_seq=row.last_event_seq,
        turn=row.turn,
        added_count=row.added_count,
        modified_count=row.modified_count,
        deleted_count=row.deleted_count,
        create_time=row.create_time,
        update_time=row.update_time,
        complete_time=row.complete_time,
        ledger=Ledger(
            queue_seconds=row.queue_seconds,
            run_seconds=row.run_seconds,
            cooldown_seconds=row.cooldown_seconds,
            attempts=row.attempts,
            usage=tuple(
                TokenUsage(
                    input_tokens=int(usage.get("input_tokens", 0)),
                    output_tokens=int(usage.get("output_tokens", 0)),
                    thinking_tokens=int(usage.get("thinking_tokens", 0)),
                    cost=float(usage.get("cost", 0.0)),
                    images=int(usage.get("images", 0)),
                )
                for usage in row.usage
            ),
            input_tokens=row.input_tokens,
            output_tokens=row.output_tokens,
            images=row.images,
            cost=row.cost,
        ),
        queue=_queue(queue) if row.state == VersionState.QUEUED else None,
        batch_number=row.batch_number,
        variant=row.variant,
        draft_id=row.draft_id,
    )


def draft_of(row: storage.Draft) -> Draft:
    return Draft(
        id=row.id,
        owner=row.owner,
        text=row.text,
        context=row.context,
        model=row.model,
        drafter_model=row.drafter_model,
        prompt=row.prompt,
        drafted_prompt=row.drafted_prompt,
        usage=TokenUsage(row.input_tokens, row.output_tokens, row.thinking_tokens),
        etag=version_etag(row.revision),
        create_time=row.create_time,
        update_time=row.update_time,
        request_id=row.request_id,
    )


def blame_of(path: str, row: storage.Version) -> FileBlame:
    return FileBlame(
        path=path,
        version=VersionRef(row.generation_id, row.number),
        kind=VersionKind(row.kind),
        prompt=row.prompt,
        create_time=row.create_time,
    )


def _queue(estimate: storage.QueueEstimate | None) -> QueueEstimate | None:
    if estimate is None:
        return None
    return QueueEstimate(estimate.position, estimate.start_time, estimate.complete_time)


def generation_of(row: storage.Generation) -> Generation:
    return Generation(
        id=row.id,
        owner=row.owner,
        prompt=row.prompt,
        model=row.model,
        provider=row.provider,
        version_count=row.version_count,
        create_time=row.create_time,
        update_time=row.update_time,
        delete_time=row.delete_time,
        expire_time=row.expire_time,
    )


def event_of(row: storage.Event) -> ProgressEvent:
    return ProgressEvent(
        seq=row.seq,
        type=EventType(row.type),
        state=VersionState(row.state),
        stage=row.stage,
        total_stages=row.total_stages,
        message=row.message,
        paths=tuple(row.paths),
        error=_error(row.error_code, row.error_reason, row.error_message),
        create_time=row.create_time,
        queue=QueueEstimate(row.queue_position, row.estimated_start_time, row.estimated_complete_time)
        if row.queue_position is not None
        else None,
    )


def conversation_of(row: storage.ConversationSession) -> Conversation:
    return Conversation(
        generation_id=row.generation_id,
        model=row.model,
        system_instruction=row.system_instruction,
        turn_count=row.turn_count,
        create_time=row.create_time,
        update_time=row.update_time,
    )


def turn_of(row: storage.Turn, *, parent_number: int | None, version_number: int | None) -> Turn:
    return Turn(
        number=row.number,
        role=row.role,
        parts=tuple(
            TurnPart(
                text=str(part.get("text", "")),
                mime_type=str(part.get("mime_type", "")),
                size=int(str(part.get("size", 0))),
                sha256=str(part.get("blob", "")),
                thought=bool(part.get("thought", False)),
            )
            for part in row.parts
        ),
        parent_number=parent_number,
        version_number=version_number,
        create_time=row.create_time,
    )


def _error(code: str | None, reason: str | None, message: str | None) -> ErrorDetail | None:
    if code is None:
        return None
    return ErrorDetail(code=code, reason=reason or "UNKNOWN_REASON", message=message or "")
