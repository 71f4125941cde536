"""Settling a job: its end, its last events and (if it is kept) its result, in one transaction.

A reader sees the whole new version or none of it: the tree, the turns in the session, the
last events and the terminal state commit together, and only while this worker still holds
the job's lease.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import storage
from server.domain import conversation
from server.domain._recent import LoadedTree
from server.domain.change_sets import AppliedChanges
from server.domain.jobs._job import (
    CANCELLED_BY_USER,
    CANCELLED_BY_USER_MESSAGE,
    SAVE_STAGE,
    JobContext,
    RunningJob,
    StopReason,
)
from server.domain.jobs._progress import JobProgress
from server.providers import ChangeSet, ProviderError, Turn

_log = logging.getLogger("atelier.jobs")

# What the provider and the merge stage came to: the new tree, or why there is none.
Outcome = AppliedChanges | ChangeSet | BaseException | None


async def settle(ctx: JobContext, job: RunningJob, progress: JobProgress, outcome: Outcome) -> None:
    """Writes the job's end and its last events in one transaction, if this worker still owns the job."""
    if job.stop_reason == StopReason.LOST_LEASE:
        _log.warning("lost the lease of job %s; another worker owns it now", job.claimed.job_id)
        return
    if isinstance(outcome, AppliedChanges) and job.stop_reason is None:
        await progress.start_stage(SAVE_STAGE)
        end, error, message = storage.VersionState.COMPLETED, None, _summary(outcome, job)
        if job.review_reason is not None:
            end, message = storage.VersionState.NEEDS_REVIEW, f"Needs review: {job.review_reason}"
            error = storage.ErrorDetail(
                code="FAILED_PRECONDITION", reason="MASS_DELETION", message=job.review_reason
            )
    elif job.stop_reason == StopReason.SHUTDOWN:
        end, error, message = storage.VersionState.QUEUED, None, "Requeued: the server is shutting down"
    elif job.stop_reason == StopReason.CANCEL:
        end, error, message = storage.VersionState.CANCELLED, CANCELLED_BY_USER, CANCELLED_BY_USER_MESSAGE
    elif isinstance(outcome, ProviderError):
        end, message = storage.VersionState.FAILED, f"Failed: {outcome.message}"
        error = storage.ErrorDetail(code=outcome.code, reason=outcome.reason, message=outcome.message)
    else:
        end, message = storage.VersionState.FAILED, "Failed: internal error in the provider"
        error = storage.ErrorDetail(
            code="INTERNAL",
            reason="PROVIDER_CRASHED",
            message=f"the provider failed unexpectedly: {outcome!r}",
        )
    # Only a result that is kept is stored: a job stopped after its merge stores nothing.
    kept = (storage.VersionState.COMPLETED, storage.VersionState.NEEDS_REVIEW)
    applied = outcome if isinstance(outcome, AppliedChanges) and end in kept else None
    if applied is not None:
        progress.finish_stage(f"{SAVE_STAGE} done: {applied.file_count} files")
    # What the next job on this version can start from, once the transaction commits.
    made: tuple[list[storage.TreeEntry], Sequence[Turn] | None, int | None] | None = None

    def write(tx: storage.Transaction, drafts: list[storage.EventDraft]) -> list[storage.Event]:
        nonlocal made
        if not storage.holds_lease(tx, job_id=job.claimed.job_id, worker=ctx.worker):
            return []
        _add_to_ledger(tx, job)
        if applied is not None:
            made = _store_result(tx, job, applied)
        if end is storage.VersionState.QUEUED:
            events = progress.write(tx, drafts)
            return [
                *events,
                storage.requeue_job(tx, job_id=job.claimed.job_id, version=job.version, message=message),
            ]
        # The terminal event goes with the rest of the batch: one statement for all of them.
        storage.finish_job(tx, job_id=job.claimed.job_id)
        if job.session_id is not None:
            job.successor_waiting = storage.has_queued_job(tx, session_id=job.session_id)
        return progress.write(tx, [*drafts, progress.final(end, message, error)])

    try:
        await progress.flush(write)
    except storage.StateConflict as exc:
        _log.info("version id %s ended elsewhere first: %s", job.version_id, exc)
        return
    if made is not None and applied is not None:
        written, branch, head_turn_id = made
        _keep(ctx, job, applied, written)
        if branch is not None and head_turn_id is not None:
            ctx.recent.keep_branch(head_turn_id, branch)


def _add_to_ledger(tx: storage.Transaction, job: RunningJob) -> None:
    """This attempt's queue wait, run time, cooldown waits and model usage, added to the version's."""
    claimed = job.claimed
    storage.add_to_ledger(
        tx,
        version_id=job.version_id,
        queue_seconds=claimed.queued_seconds,
        run_seconds=max(0.0, (storage.utcnow() - claimed.claimed_at).total_seconds()),
        cooldown_seconds=job.cooldown_seconds,
        attempts=claimed.attempt,
        usage=[
            *job.version.usage,
            *(
                {
                    "input_tokens": usage.input_tokens,
                    "output_tokens": usage.output_tokens,
                    "thinking_tokens": usage.thinking_tokens,
                }
                for usage in job.usage
            ),
        ],
    )


def _store_result(
    tx: storage.Transaction, job: RunningJob, applied: AppliedChanges
) -> tuple[list[storage.TreeEntry], Sequence[Turn] | None, int | None]:
    """Stores the new tree and the exchange with the model; returns what `_keep` needs:
    the stored new files, the conversation branch now ending at the version, and its head turn."""
    version = job.version
    written = storage.store_files(tx, applied.written)
    parent_entries = job.parent_entries
    if job.parent is not None and parent_entries is not None:
        storage.write_changes(
            tx,
            version=version,
            parent=(job.parent, parent_entries),
            upserts=[*applied.moved, *written],
            deletions=applied.removed,
        )
    else:
        storage.write_tree(tx, version=version, entries=written)
    if job.session_id is None:
        return written, None, None
    exchange = _exchange(job, applied)
    storage.record_exchange(
        tx,
        version=version,
        session_id=job.session_id,
        turns=[conversation.to_record(tx, turn) for turn in exchange],
    )
    branch = [*job.request.history, *map(conversation.as_read_back, exchange)]
    return written, branch, version.head_turn_id


def _keep(
    ctx: JobContext, job: RunningJob, applied: AppliedChanges, written: Sequence[storage.TreeEntry]
) -> None:
    """Keeps the version's tree for the next job on it (built after the commit, off its path)."""
    parent_contents = job.parent_tree.contents if job.parent_tree is not None else {}
    contents = {entry.blob_sha256: parent_contents[entry.blob_sha256] for entry in applied.carried}
    contents.update(
        (entry.blob_sha256, file.data) for entry, file in zip(written, applied.written, strict=True)
    )
    entries = {entry.path: entry for entry in (*applied.carried, *written)}
    ctx.recent.keep_tree(job.version_id, LoadedTree(entries, contents))


def _exchange(job: RunningJob, applied: AppliedChanges) -> Sequence[Turn]:
    turns = applied.turns
    if turns:
        return turns
    return conversation.default_exchange(job.request.prompt, job.request.attachments, applied.summary)


def _summary(applied: AppliedChanges, job: RunningJob) -> str:
    if applied.summary:
        return applied.summary
    if job.parent_tree is None:
        return f"Completed: {applied.file_count} files"
    return f"Completed: {applied.added} added, {applied.modified} changed, {applied.deleted} deleted"
