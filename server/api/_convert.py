"""Pure conversions from the domain's values to atelier.v1 messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

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
from google.protobuf import duration_pb2, json_format, timestamp_pb2
from google.rpc import status_pb2

from server.api._errors import to_status_proto
from server.api._names import batch_name, draft_name, generation_name, session_name, turn_name, version_name
from server.config import ModelConfig, Settings
from server.domain import (
    CURRENCY,
    Batch,
    BatchCounts,
    BatchEvent,
    Conflict,
    Conversation,
    Draft,
    ErrorDetail,
    Estimate,
    FileBlame,
    Generation,
    Ledger,
    ModelView,
    PathDiff,
    ProgressEvent,
    TokenUsage,
    TreeEntry,
    Turn,
    UsageRow,
    Version,
    WebhookDelivery,
)

_EPOCH = datetime(1970, 1, 1)
_EPOCH_UTC = _EPOCH.replace(tzinfo=UTC)


def _timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    # What Timestamp.FromDatetime computes (a naive time is UTC), at under half its cost: every
    # progress event sent carries one or three.
    if value is None:
        return None
    since = value - (_EPOCH if value.tzinfo is None else _EPOCH_UTC)
    seconds = since.days * 86400 + since.seconds
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=since.microseconds * 1000)


def _duration(seconds: float) -> duration_pb2.Duration:
    duration = duration_pb2.Duration()
    duration.FromTimedelta(timedelta(seconds=seconds))
    return duration


def _ledger(ledger: Ledger) -> generation_pb2.Ledger:
    return generation_pb2.Ledger(
        queue_duration=_duration(ledger.queue_seconds),
        run_duration=_duration(ledger.run_seconds),
        cooldown_duration=_duration(ledger.cooldown_seconds),
        attempts=ledger.attempts,
        usage=[_usage(usage) for usage in ledger.usage],
        input_tokens=ledger.input_tokens,
        output_tokens=ledger.output_tokens,
        images=ledger.images,
        cost=ledger.cost,
    )


def _usage(usage: TokenUsage) -> generation_pb2.ModelUsage:
    return generation_pb2.ModelUsage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        thinking_tokens=usage.thinking_tokens,
        cost=usage.cost,
        images=usage.images,
    )


def _error(error: ErrorDetail | None) -> status_pb2.Status | None:
    if error is None:
        return None
    return to_status_proto(error.code, error.message, error.reason)


def version_to_proto(version: Version) -> generation_pb2.Version:
    return generation_pb2.Version(
        name=version_name(version.generation_id, version.number),
        number=version.number,
        kind=f"VERSION_KIND_{version.kind}",
        parent=version_name(version.generation_id, version.parent_number) if version.parent_number else "",
        prompt=version.prompt,
        model=version.model,
        state=f"VERSION_STATE_{version.state}",
        stage=version.stage,
        total_stages=version.total_stages,
        message=version.message,
        error=_error(version.error),
        file_count=version.file_count,
        etag=version.etag,
        turn=version.turn,
        added_count=version.added_count,
        modified_count=version.modified_count,
        deleted_count=version.deleted_count,
        merge_parent=version_name(version.generation_id, version.merge_parent_number)
        if version.merge_parent_number
        else "",
        request_id=version.request_id or "",
        last_event_seq=version.last_event_seq,
        create_time=_timestamp(version.create_time),
        update_time=_timestamp(version.update_time),
        complete_time=_timestamp(version.complete_time),
        queue_position=version.queue.position if version.queue else 0,
        estimated_start_time=_timestamp(version.queue.start_time) if version.queue else None,
        estimated_complete_time=_timestamp(version.queue.complete_time) if version.queue else None,
        ledger=_ledger(version.ledger),
        batch=batch_name(version.generation_id, version.batch_number) if version.batch_number else "",
        variant=version.variant or "",
        draft=draft_name(version.draft_id) if version.draft_id else "",
    )


def generation_to_proto(generation: Generation) -> generation_pb2.Generation:
    return generation_pb2.Generation(
        name=generation_name(generation.id),
        prompt=generation.prompt,
        model=generation.model,
        provider=generation.provider,
        version_count=generation.version_count,
        latest_version=version_name(generation.id, generation.version_count),
        session=f"{generation_name(generation.id)}/session",
        create_time=_timestamp(generation.create_time),
        update_time=_timestamp(generation.update_time),
        owner=generation.owner,
        delete_time=_timestamp(generation.delete_time),
        expire_time=_timestamp(generation.expire_time),
    )


def event_to_proto(event: ProgressEvent, version: str) -> progress_pb2.ProgressEvent:
    return progress_pb2.ProgressEvent(
        seq=event.seq,
        version=version,
        type=f"PROGRESS_EVENT_TYPE_{event.type}",
        state=f"VERSION_STATE_{event.state}",
        stage=event.stage,
        total_stages=event.total_stages,
        message=event.message,
        paths=event.paths,
        error=_error(event.error),
        create_time=_timestamp(event.create_time),
        queue_position=event.queue.position if event.queue else 0,
        estimated_start_time=_timestamp(event.queue.start_time) if event.queue else None,
        estimated_complete_time=_timestamp(event.queue.complete_time) if event.queue else None,
    )


def batch_event_to_proto(event: BatchEvent, *, generation_id: str, batch: str) -> progress_pb2.ProgressEvent:
    message = event_to_proto(event.event, version_name(generation_id, event.version_number))
    message.batch = batch
    message.batch_counts.CopyFrom(counts_to_proto(event.counts))
    message.resume_token = event.resume_token
    return message


def counts_to_proto(counts: BatchCounts) -> batch_pb2.BatchCounts:
    return batch_pb2.BatchCounts(
        queued=counts.queued,
        running=counts.running,
        completed=counts.completed,
        failed=counts.failed,
        cancelled=counts.cancelled,
        needs_review=counts.needs_review,
        total=counts.total,
    )


def batch_to_proto(batch: Batch) -> batch_pb2.Batch:
    counts = batch.counts
    return batch_pb2.Batch(
        name=batch_name(batch.ref.generation_id, batch.ref.number),
        versions=[version_to_proto(version) for version in batch.versions],
        counts=counts_to_proto(counts),
        done=counts.done,
    )


def price_to_proto(model: ModelConfig) -> cost_pb2.Price:
    return cost_pb2.Price(
        input_per_million_tokens=model.input_price_per_million,
        output_per_million_tokens=model.output_price_per_million,
        per_image=model.image_price,
        currency=CURRENCY,
        estimated_output_tokens=model.estimated_output_tokens,
        estimated_images=model.estimated_images,
    )


def estimate_to_proto(estimate: Estimate) -> atelier_service_pb2.EstimateCostResponse:
    return atelier_service_pb2.EstimateCostResponse(
        model=estimate.model.name,
        price=price_to_proto(estimate.model),
        outputs=estimate.outputs,
        calls=estimate.calls,
        input_tokens=estimate.input_tokens,
        input_tokens_counted=estimate.input_tokens_counted,
        output_tokens=estimate.output_tokens,
        images=estimate.images,
        cost=estimate.cost,
        currency=CURRENCY,
        assumptions=estimate.assumptions,
    )


def usage_to_proto(rows: list[UsageRow]) -> atelier_service_pb2.GetUsageResponse:
    return atelier_service_pb2.GetUsageResponse(
        rows=[
            cost_pb2.UsageRow(
                principal=row.principal,
                model=row.model,
                day=row.day,
                versions=row.versions,
                input_tokens=row.input_tokens,
                output_tokens=row.output_tokens,
                images=row.images,
                cost=row.cost,
            )
            for row in rows
        ],
        total_cost=sum(row.cost for row in rows),
        currency=CURRENCY,
    )


def file_to_proto(
    entry: TreeEntry,
    *,
    download_url: str = "",
    pixels: tuple[int, int] | None = None,
    blame: FileBlame | None = None,
) -> file_pb2.File:
    width, height = pixels or (0, 0)
    return file_pb2.File(
        path=entry.path,
        size=entry.size,
        sha256=entry.blob_sha256,
        mime_type=entry.mime_type,
        download_url=download_url,
        width=width,
        height=height,
        blame=blame_to_proto(blame) if blame is not None else None,
    )


def blame_to_proto(blame: FileBlame) -> blame_pb2.FileBlame:
    return blame_pb2.FileBlame(
        path=blame.path,
        version=version_name(blame.version.generation_id, blame.version.number),
        kind=f"VERSION_KIND_{blame.kind}",
        prompt=blame.prompt,
        create_time=_timestamp(blame.create_time),
    )


def draft_to_proto(draft: Draft) -> draft_pb2.Draft:
    return draft_pb2.Draft(
        name=draft_name(draft.id),
        text=draft.text,
        context=draft.context,
        model=draft.model,
        drafter_model=draft.drafter_model,
        prompt=draft.prompt,
        drafted_prompt=draft.drafted_prompt,
        edited=draft.prompt != draft.drafted_prompt,
        owner=draft.owner,
        create_time=_timestamp(draft.create_time),
        update_time=_timestamp(draft.update_time),
        usage=_usage(draft.usage),
        etag=draft.etag,
        request_id=draft.request_id or "",
    )


def request_limits_to_proto(settings: Settings) -> atelier_service_pb2.RequestLimits:
    return atelier_service_pb2.RequestLimits(
        max_batch_size=settings.max_batch_size,
        max_prompt_bytes=settings.max_prompt_bytes,
        max_attachment_bytes=settings.max_attachment_bytes,
        max_message_bytes=settings.max_message_bytes,
        max_file_bytes=settings.max_file_bytes,
        max_tree_bytes=settings.max_tree_bytes,
        max_tree_files=settings.max_tree_files,
    )


def model_to_proto(view: ModelView) -> model_pb2.Model:
    model = view.config
    return model_pb2.Model(
        name=model.name,
        provider=model.provider,
        display_name=model.display_name,
        output_modalities=model.output_modalities,
        default=view.default,
        max_concurrent=model.max_concurrent or 0,
        requests_per_minute=model.requests_per_minute or 0,
        tokens_per_minute=model.tokens_per_minute or 0,
        status=model_pb2.ModelStatus(
            jobs_in_flight=view.jobs_in_flight,
            jobs_queued=view.jobs_queued,
            cooldown_end_time=_timestamp(view.cooldown_until),
        ),
        price=price_to_proto(model),
    )


def session_to_proto(conversation: Conversation) -> session_pb2.Session:
    return session_pb2.Session(
        name=session_name(conversation.generation_id),
        generation=generation_name(conversation.generation_id),
        model=conversation.model,
        system_instruction=conversation.system_instruction,
        turn_count=conversation.turn_count,
        create_time=_timestamp(conversation.create_time),
        update_time=_timestamp(conversation.update_time),
    )


def turn_to_proto(turn: Turn, *, generation_id: str) -> session_pb2.Turn:
    return session_pb2.Turn(
        name=turn_name(generation_id, turn.number),
        number=turn.number,
        role=f"TURN_ROLE_{turn.role.upper()}",
        parts=[
            session_pb2.TurnPart(
                text=part.text,
                mime_type=part.mime_type,
                size=part.size,
                sha256=part.sha256,
                thought=part.thought,
            )
            for part in turn.parts
        ],
        parent=turn_name(generation_id, turn.parent_number) if turn.parent_number else "",
        version=version_name(generation_id, turn.version_number) if turn.version_number else "",
        create_time=_timestamp(turn.create_time),
    )


def file_diff_to_proto(change: PathDiff, unified_diff: str) -> tree_pb2.FileDiff:
    return tree_pb2.FileDiff(
        path=change.path,
        change=f"FILE_CHANGE_{change.change}",
        base=file_to_proto(change.base) if change.base else None,
        target=file_to_proto(change.target) if change.target else None,
        unified_diff=unified_diff,
    )


def conflict_to_proto(conflict: Conflict) -> tree_pb2.MergeConflict:
    return tree_pb2.MergeConflict(
        path=conflict.path,
        kind=f"CONFLICT_KIND_{conflict.kind}",
        base=file_to_proto(conflict.base) if conflict.base else None,
        ours=file_to_proto(conflict.ours) if conflict.ours else None,
        theirs=file_to_proto(conflict.theirs) if conflict.theirs else None,
    )


def version_json(version: Version) -> dict[str, Any]:
    """The version as the API shows it, in the proto's JSON mapping (a webhook's `data`)."""
    return json_format.MessageToDict(version_to_proto(version))


def webhook_delivery_name(generation_id: str, number: int, webhook_id: str) -> str:
    return f"{version_name(generation_id, number)}/webhookDeliveries/{webhook_id}"


def webhook_delivery_to_proto(delivery: WebhookDelivery) -> webhook_pb2.WebhookDelivery:
    return webhook_pb2.WebhookDelivery(
        name=webhook_delivery_name(delivery.generation_id, delivery.version_number, delivery.webhook_id),
        event_type=f"WEBHOOK_EVENT_TYPE_{delivery.event_type}",
        url=delivery.url,
        state=f"WEBHOOK_DELIVERY_STATE_{delivery.state}",
        event_time=_timestamp(delivery.event_time),
        next_attempt_time=_timestamp(delivery.next_attempt_time),
        deliver_time=_timestamp(delivery.deliver_time),
        attempts=[
            webhook_pb2.WebhookAttempt(
                attempt_time=_timestamp(attempt.attempt_time),
                duration=_duration(attempt.duration_seconds),
                status_code=attempt.status_code or 0,
                error=attempt.error,
            )
            for attempt in delivery.attempts
        ],
    )
