"""Pure conversions between the generated atelier.v1 messages and the SDK's types."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TypeVar

from google.protobuf import timestamp_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from atelier._types import (
    Attachment,
    Batch,
    BatchCounts,
    ConflictKind,
    CostEstimate,
    Draft,
    ErrorStatus,
    File,
    FileBlame,
    FileChange,
    FileDiff,
    Generation,
    Ledger,
    MergeConflict,
    MergeResult,
    MergeStrategy,
    Model,
    ModelStatus,
    ModelUsage,
    Price,
    ProgressEvent,
    ProgressEventType,
    RequestLimits,
    Session,
    Turn,
    TurnPart,
    TurnRole,
    Usage,
    UsageRow,
    Variant,
    Version,
    VersionKind,
    VersionState,
    Webhook,
    WebhookAttempt,
    WebhookDelivery,
    WebhookDeliveryState,
    WebhookEventType,
)
from atelier.v1 import (
    atelier_service_pb2,
    batch_pb2,
    blame_pb2,
    cost_pb2,
    draft_pb2,
    file_pb2,
    generation_pb2,
    model_pb2,
    progress_pb2,
    session_pb2,
    tree_pb2,
    webhook_pb2,
)

_E = TypeVar(
    "_E",
    VersionState,
    VersionKind,
    ProgressEventType,
    TurnRole,
    FileChange,
    ConflictKind,
    MergeStrategy,
    WebhookEventType,
    WebhookDeliveryState,
)


def _enum(cls: type[_E], wire_name: str, prefix: str) -> _E:
    # A value this SDK does not know yet (a newer server) reads as UNSPECIFIED rather than failing.
    try:
        return cls(wire_name.removeprefix(prefix))
    except ValueError:
        return cls("UNSPECIFIED")


def _name_or_none(value: str) -> str | None:
    return value or None


def convert_timestamp(stamp: timestamp_pb2.Timestamp, present: bool) -> datetime | None:
    """An aware UTC datetime, or None when the field is unset."""
    if not present:
        return None
    return stamp.ToDatetime(tzinfo=UTC)


def _limit_or_none(value: int) -> int | None:
    # 0 on the wire: the model has no limit of its own.
    return value or None


def convert_error_status(status: status_pb2.Status) -> ErrorStatus:
    info = error_details_pb2.ErrorInfo()
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            detail.Unpack(info)
            break
    try:
        code = code_pb2.Code.Name(status.code)
    except ValueError:
        code = str(status.code)
    return ErrorStatus(
        code=code,
        message=status.message,
        reason=info.reason,
        domain=info.domain,
        metadata=dict(info.metadata),
    )


def convert_version(message: generation_pb2.Version) -> Version:
    return Version(
        name=message.name,
        number=message.number,
        kind=_enum(VersionKind, generation_pb2.VersionKind.Name(message.kind), "VERSION_KIND_"),
        state=convert_version_state(message.state),
        prompt=message.prompt,
        model=message.model,
        parent=_name_or_none(message.parent),
        merge_parent=_name_or_none(message.merge_parent),
        stage=message.stage,
        total_stages=message.total_stages,
        message=message.message,
        error=convert_error_status(message.error) if message.HasField("error") else None,
        file_count=message.file_count,
        etag=message.etag,
        request_id=_name_or_none(message.request_id),
        last_event_seq=message.last_event_seq,
        turn=message.turn,
        added_count=message.added_count,
        modified_count=message.modified_count,
        deleted_count=message.deleted_count,
        create_time=convert_timestamp(message.create_time, message.HasField("create_time")),
        update_time=convert_timestamp(message.update_time, message.HasField("update_time")),
        complete_time=convert_timestamp(message.complete_time, message.HasField("complete_time")),
        queue_position=message.queue_position,
        estimated_start_time=convert_timestamp(
            message.estimated_start_time, message.HasField("estimated_start_time")
        ),
        estimated_complete_time=convert_timestamp(
            message.estimated_complete_time, message.HasField("estimated_complete_time")
        ),
        ledger=convert_ledger(message.ledger),
        batch=_name_or_none(message.batch),
        variant=_name_or_none(message.variant),
        draft=_name_or_none(message.draft),
    )


def convert_ledger(message: generation_pb2.Ledger) -> Ledger:
    return Ledger(
        queue_time=message.queue_duration.ToTimedelta(),
        run_time=message.run_duration.ToTimedelta(),
        cooldown_time=message.cooldown_duration.ToTimedelta(),
        attempts=message.attempts,
        usage=tuple(
            ModelUsage(
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                thinking_tokens=usage.thinking_tokens,
                cost=usage.cost,
                images=usage.images,
            )
            for usage in message.usage
        ),
        input_tokens=message.input_tokens,
        output_tokens=message.output_tokens,
        images=message.images,
        cost=message.cost,
    )


def convert_version_state(value: int) -> VersionState:
    try:
        wire_name = generation_pb2.VersionState.Name(value)
    except ValueError:
        return VersionState.UNSPECIFIED
    return _enum(VersionState, wire_name, "VERSION_STATE_")


def convert_generation(message: generation_pb2.Generation) -> Generation:
    return Generation(
        name=message.name,
        prompt=message.prompt,
        model=message.model,
        provider=message.provider,
        version_count=message.version_count,
        latest_version=message.latest_version,
        session=message.session,
        create_time=convert_timestamp(message.create_time, message.HasField("create_time")),
        update_time=convert_timestamp(message.update_time, message.HasField("update_time")),
        owner=message.owner,
        delete_time=convert_timestamp(message.delete_time, message.HasField("delete_time")),
        expire_time=convert_timestamp(message.expire_time, message.HasField("expire_time")),
    )


def convert_file(message: file_pb2.File) -> File:
    return File(
        path=message.path,
        size=message.size,
        sha256=message.sha256,
        mime_type=message.mime_type,
        download_url=message.download_url,
        width=message.width,
        height=message.height,
        blame=convert_blame(message.blame) if message.HasField("blame") else None,
    )


def convert_blame(message: blame_pb2.FileBlame) -> FileBlame:
    return FileBlame(
        path=message.path,
        version=message.version,
        kind=_enum(VersionKind, generation_pb2.VersionKind.Name(message.kind), "VERSION_KIND_"),
        prompt=message.prompt,
        create_time=convert_timestamp(message.create_time, message.HasField("create_time")),
    )


def convert_draft(message: draft_pb2.Draft) -> Draft:
    return Draft(
        name=message.name,
        text=message.text,
        context=message.context,
        model=message.model,
        drafter_model=message.drafter_model,
        prompt=message.prompt,
        drafted_prompt=message.drafted_prompt,
        edited=message.edited,
        owner=message.owner,
        etag=message.etag,
        usage=ModelUsage(
            input_tokens=message.usage.input_tokens,
            output_tokens=message.usage.output_tokens,
            thinking_tokens=message.usage.thinking_tokens,
        ),
        create_time=convert_timestamp(message.create_time, message.HasField("create_time")),
        update_time=convert_timestamp(message.update_time, message.HasField("update_time")),
        request_id=_name_or_none(message.request_id),
    )


def _optional_file(present: bool, message: file_pb2.File) -> File | None:
    return convert_file(message) if present else None


def convert_progress_event(message: progress_pb2.ProgressEvent) -> ProgressEvent:
    return ProgressEvent(
        seq=message.seq,
        version=message.version,
        type=_enum(
            ProgressEventType, progress_pb2.ProgressEventType.Name(message.type), "PROGRESS_EVENT_TYPE_"
        ),
        state=convert_version_state(message.state),
        stage=message.stage,
        total_stages=message.total_stages,
        message=message.message,
        paths=tuple(message.paths),
        error=convert_error_status(message.error) if message.HasField("error") else None,
        create_time=convert_timestamp(message.create_time, message.HasField("create_time")),
        queue_position=message.queue_position,
        estimated_start_time=convert_timestamp(
            message.estimated_start_time, message.HasField("estimated_start_time")
        ),
        estimated_complete_time=convert_timestamp(
            message.estimated_complete_time, message.HasField("estimated_complete_time")
        ),
        batch=_name_or_none(message.batch),
        batch_counts=convert_batch_counts(message.batch_counts) if message.HasField("batch_counts") else None,
        resume_token=message.resume_token,
    )


def convert_batch_counts(message: batch_pb2.BatchCounts) -> BatchCounts:
    return BatchCounts(
        queued=message.queued,
        running=message.running,
        completed=message.completed,
        failed=message.failed,
        cancelled=message.cancelled,
        needs_review=message.needs_review,
        total=message.total,
    )


def convert_batch(message: batch_pb2.Batch) -> Batch:
    return Batch(
        name=message.name,
        versions=tuple(convert_version(v) for v in message.versions),
        counts=convert_batch_counts(message.counts),
        done=message.done,
    )


def variants_to_proto(variants: Iterable[Variant | str]) -> list[batch_pb2.Variant]:
    """Variants as messages; a plain string is a variant's name."""
    return [
        batch_pb2.Variant(name=v)
        if isinstance(v, str)
        else batch_pb2.Variant(name=v.name, prompt_suffix=v.prompt_suffix)
        for v in variants
    ]


def convert_price(message: cost_pb2.Price) -> Price:
    return Price(
        input_per_million_tokens=message.input_per_million_tokens,
        output_per_million_tokens=message.output_per_million_tokens,
        per_image=message.per_image,
        currency=message.currency or "USD",
        estimated_output_tokens=message.estimated_output_tokens,
        estimated_images=message.estimated_images,
    )


def convert_estimate(message: atelier_service_pb2.EstimateCostResponse) -> CostEstimate:
    return CostEstimate(
        model=message.model,
        price=convert_price(message.price),
        outputs=message.outputs,
        calls=message.calls,
        input_tokens=message.input_tokens,
        input_tokens_counted=message.input_tokens_counted,
        output_tokens=message.output_tokens,
        images=message.images,
        cost=message.cost,
        currency=message.currency,
        assumptions=tuple(message.assumptions),
    )


def convert_usage(message: atelier_service_pb2.GetUsageResponse) -> Usage:
    return Usage(
        rows=tuple(
            UsageRow(
                principal=row.principal,
                model=row.model,
                day=row.day,
                versions=row.versions,
                input_tokens=row.input_tokens,
                output_tokens=row.output_tokens,
                images=row.images,
                cost=row.cost,
            )
            for row in message.rows
        ),
        total_cost=message.total_cost,
        currency=message.currency,
    )


def convert_request_limits(message: atelier_service_pb2.RequestLimits) -> RequestLimits:
    return RequestLimits(
        max_batch_size=message.max_batch_size,
        max_prompt_bytes=message.max_prompt_bytes,
        max_attachment_bytes=message.max_attachment_bytes,
        max_message_bytes=message.max_message_bytes,
        max_file_bytes=message.max_file_bytes,
        max_tree_bytes=message.max_tree_bytes,
        max_tree_files=message.max_tree_files,
    )


def convert_model(message: model_pb2.Model) -> Model:
    return Model(
        name=message.name,
        provider=message.provider,
        display_name=message.display_name,
        output_modalities=tuple(message.output_modalities),
        default=message.default,
        max_concurrent=_limit_or_none(message.max_concurrent),
        requests_per_minute=_limit_or_none(message.requests_per_minute),
        tokens_per_minute=_limit_or_none(message.tokens_per_minute),
        status=ModelStatus(
            jobs_in_flight=message.status.jobs_in_flight,
            jobs_queued=message.status.jobs_queued,
            cooldown_until=convert_timestamp(
                message.status.cooldown_end_time, message.status.HasField("cooldown_end_time")
            ),
        ),
        price=convert_price(message.price),
    )


def convert_session(message: session_pb2.Session) -> Session:
    return Session(
        name=message.name,
        generation=message.generation,
        model=message.model,
        system_instruction=message.system_instruction,
        turn_count=message.turn_count,
        create_time=convert_timestamp(message.create_time, message.HasField("create_time")),
        update_time=convert_timestamp(message.update_time, message.HasField("update_time")),
    )


def convert_turn(message: session_pb2.Turn) -> Turn:
    return Turn(
        name=message.name,
        number=message.number,
        role=_enum(TurnRole, session_pb2.TurnRole.Name(message.role), "TURN_ROLE_"),
        parts=tuple(
            TurnPart(
                text=part.text,
                mime_type=part.mime_type,
                size=part.size,
                sha256=part.sha256,
                thought=part.thought,
            )
            for part in message.parts
        ),
        parent=_name_or_none(message.parent),
        version=_name_or_none(message.version),
        create_time=convert_timestamp(message.create_time, message.HasField("create_time")),
    )


def convert_file_diff(message: tree_pb2.FileDiff) -> FileDiff:
    return FileDiff(
        path=message.path,
        change=_enum(FileChange, tree_pb2.FileChange.Name(message.change), "FILE_CHANGE_"),
        base=_optional_file(message.HasField("base"), message.base),
        target=_optional_file(message.HasField("target"), message.target),
        unified_diff=message.unified_diff,
    )


def convert_merge_conflict(message: tree_pb2.MergeConflict) -> MergeConflict:
    return MergeConflict(
        path=message.path,
        kind=_enum(ConflictKind, tree_pb2.ConflictKind.Name(message.kind), "CONFLICT_KIND_"),
        base=_optional_file(message.HasField("base"), message.base),
        ours=_optional_file(message.HasField("ours"), message.ours),
        theirs=_optional_file(message.HasField("theirs"), message.theirs),
    )


def convert_merge_response(message: atelier_service_pb2.MergeResponse) -> MergeResult:
    return MergeResult(
        version=convert_version(message.version) if message.HasField("version") else None,
        conflicts=tuple(convert_merge_conflict(c) for c in message.conflicts),
    )


def convert_webhook_delivery(message: webhook_pb2.WebhookDelivery) -> WebhookDelivery:
    return WebhookDelivery(
        name=message.name,
        event_type=_enum(
            WebhookEventType, webhook_pb2.WebhookEventType.Name(message.event_type), "WEBHOOK_EVENT_TYPE_"
        ),
        url=message.url,
        state=_enum(
            WebhookDeliveryState,
            webhook_pb2.WebhookDeliveryState.Name(message.state),
            "WEBHOOK_DELIVERY_STATE_",
        ),
        event_time=convert_timestamp(message.event_time, message.HasField("event_time")),
        next_attempt_time=convert_timestamp(message.next_attempt_time, message.HasField("next_attempt_time")),
        deliver_time=convert_timestamp(message.deliver_time, message.HasField("deliver_time")),
        attempts=tuple(
            WebhookAttempt(
                attempt_time=convert_timestamp(a.attempt_time, a.HasField("attempt_time")),
                duration=a.duration.ToTimedelta(),
                status_code=a.status_code,
                error=a.error,
            )
            for a in message.attempts
        ),
    )


# The other direction: the SDK's inputs as wire messages.


def webhook_to_proto(webhook: Webhook | None) -> webhook_pb2.WebhookSubscription | None:
    if webhook is None:
        return None
    events = [f"WEBHOOK_EVENT_TYPE_{WebhookEventType(e).value}" for e in webhook.events]
    return webhook_pb2.WebhookSubscription(url=webhook.url, events=events)


def attachments_to_proto(attachments: Iterable[Attachment]) -> list[file_pb2.Attachment]:
    return [file_pb2.Attachment(name=a.name, mime_type=a.mime_type, data=a.data) for a in attachments]


def merge_strategy_to_proto(strategy: MergeStrategy | None) -> str:
    """The wire enum's name (the generated constructors take names as well as numbers)."""
    return f"MERGE_STRATEGY_{strategy.value if strategy is not None else 'UNSPECIFIED'}"
