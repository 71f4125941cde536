"""Claiming a job: taking its lease, and gathering what its run needs, in one transaction."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import storage
from server.domain import conversation
from server.domain._recent import LoadedTree
from server.domain.jobs._job import MERGE_STAGE, SAVE_STAGE, JobContext, RunningJob
from server.files import FileContent
from server.providers import JobKind, ProviderError, ProviderRequest, Turn

_log = logging.getLogger("atelier.jobs")


def claim(
    ctx: JobContext, limits: Mapping[str, int | None], limit: int, tx: storage.Transaction
) -> list[RunningJob | storage.ClaimedJob]:
    """Claims up to `limit` jobs (storage.claim_jobs: models' limits, principals' turns) and marks
    each version RUNNING, in one transaction.

    A job that cannot start at all comes back as its bare claim, FAILED in the same transaction.
    """
    claims = storage.claim_jobs(
        tx,
        worker=ctx.worker,
        lease=ctx.lease,
        limit=limit,
        max_concurrent=limits,
        max_per_principal=ctx.settings.max_in_flight_per_principal,
    )
    return [_start(ctx, tx, claimed) for claimed in claims]


def _start(
    ctx: JobContext, tx: storage.Transaction, claimed: storage.ClaimedJob
) -> RunningJob | storage.ClaimedJob:
    version = storage.get_version_by_id(tx, claimed.version_id)
    # _prepare only reads, until its last step records the RUNNING event, so a failure leaves
    # nothing of its own to undo.
    try:
        return _prepare(ctx, tx, claimed, version)
    except ProviderError as exc:
        error = storage.ErrorDetail(code=exc.code, reason=exc.reason, message=exc.message)
    except storage.StorageError:
        raise  # the database's doing, not the job's: the claim is tried again later
    except Exception as exc:
        # Left QUEUED, the job would be claimed again at once, failing the same way, ahead
        # of every job queued after it.
        _log.exception("could not start the job of version id %s", claimed.version_id)
        error = storage.ErrorDetail(
            code="INTERNAL", reason="JOB_NOT_STARTED", message=f"the job could not be started: {exc!r}"
        )
    storage.end_job(
        tx,
        job_id=claimed.job_id,
        version=version,
        state=storage.VersionState.FAILED,
        message=f"Failed: {error.message}",
        error=error,
    )
    return claimed


def _prepare(
    ctx: JobContext, tx: storage.Transaction, claimed: storage.ClaimedJob, version: storage.Version
) -> RunningJob:
    assert version.id is not None
    attachments = storage.list_attachments(tx, version_id=version.id)
    contents = storage.read_blobs(tx, (a.blob_sha256 for a in attachments))
    parent: storage.Version | None = None
    source_files: list[FileContent] = []
    parent_tree: LoadedTree | None = None
    if version.parent_number is not None:
        parent = storage.get_version(
            tx, owner=version.owner, generation_id=version.generation_id, number=version.parent_number
        )
        assert parent is not None and parent.id is not None
        parent_tree = ctx.recent.tree(parent.id)
        if parent_tree is None:
            entries = storage.read_tree(tx, version_id=parent.id)
            files = storage.read_blobs(tx, (e.blob_sha256 for e in entries.values()))
            parent_tree = LoadedTree(entries, files)
        source_files = parent_tree.files()
    history: Sequence[Turn] | None = None
    if version.base_turn_id is not None:
        history = ctx.recent.branch(version.base_turn_id)
    if history is None:
        history = conversation.history(tx, head_turn_id=version.base_turn_id)
    conversation_row = storage.get_conversation(tx, owner=version.owner, generation_id=version.generation_id)
    request = ProviderRequest(
        kind=JobKind(version.kind.lower()),
        prompt=version.prompt,
        model=version.model,
        attachments=[FileContent(a.name, a.mime_type, contents[a.blob_sha256]) for a in attachments],
        source_files=source_files,
        history=history,
        system_instruction=conversation_row.system_instruction if conversation_row else "",
    )
    provider = ctx.providers.get(version.provider)  # raises ProviderError if not configured
    titles = [
        *provider.stage_titles(request),
        *([MERGE_STAGE] if parent_tree is not None else []),
        SAVE_STAGE,
    ]
    running = storage.append_event(
        tx,
        version=version,
        type=storage.EventType.STATE,
        state=storage.VersionState.RUNNING,
        stage=0,
        total_stages=len(titles),
        message=f"Running (attempt {claimed.attempt})",
    )
    return RunningJob(
        claimed=claimed,
        version=version,
        session_id=conversation_row.id if conversation_row else None,
        request=request,
        provider=provider,
        parent=parent,
        parent_tree=parent_tree,
        titles=titles,
        running=running,
        stored_seq=running.seq,
    )
