"""Running one claimed job: the provider's work, then applying its changes. The job then settles
(see `_settle`). Its lease is kept by the runner's heartbeat, which renews all of them at once."""

from __future__ import annotations

import logging

import anyio

from server.cpu import off_the_loop
from server.domain import change_sets
from server.domain.change_sets import AppliedChanges
from server.domain.jobs._gate import JobGate
from server.domain.jobs._job import MERGE_STAGE, JobContext, RunningJob
from server.domain.jobs._progress import JobProgress
from server.domain.jobs._settle import Outcome, settle
from server.providers import ChangeSet, ProviderError

_log = logging.getLogger("atelier.jobs")
# What checking one path of a tree weighs, in the bytes off_the_loop counts.
_ENTRY_WEIGHT = 200


async def execute(ctx: JobContext, job: RunningJob, gate: JobGate) -> None:
    """Runs the job to its end and settles it. Stopping `job.scope` stops the work."""
    job.scope = anyio.CancelScope()
    if job.stop_reason is not None:
        job.scope.cancel()  # stopped before it started (a claim that ended as the runner stopped)
    progress = JobProgress(ctx, job)
    outcome: Outcome = None
    async with anyio.create_task_group() as group:
        group.start_soon(progress.write_batches)
        with job.scope:
            try:
                changes = await job.provider.run(job.request, progress, gate)
                progress.check_provider_stages()
                outcome = await _apply(ctx, job, progress, changes)
            except ProviderError as exc:
                outcome = exc
            except Exception as exc:
                _log.exception("provider %s crashed on version id %s", job.provider.name, job.version_id)
                outcome = exc
        group.cancel_scope.cancel()
    job.cooldown_seconds = gate.waited
    await settle(ctx, job, progress, outcome)


async def _apply(
    ctx: JobContext, job: RunningJob, progress: JobProgress, changes: ChangeSet
) -> AppliedChanges:
    """The job's new tree: the provider's changes applied to the parent's tree (the Merge stage)."""
    limits = change_sets.Limits.of(ctx.settings)
    parent = job.parent_entries
    # Hashing the new files and checking every path of the tree: off the loop for a large one.
    weight = sum(len(file.data) for file in changes.upserts) + _ENTRY_WEIGHT * len(parent or ())
    if parent is None:
        applied = await off_the_loop(weight, change_sets.apply_changes, {}, changes, limits)
        if not applied.file_count:
            raise ProviderError("the model produced no files", reason="NO_FILES", code="FAILED_PRECONDITION")
        return applied
    async with progress.stage(MERGE_STAGE):
        applied = await off_the_loop(weight, change_sets.apply_changes, parent, changes, limits)
        share = applied.deleted / len(parent) if parent else 0.0
        if share > ctx.settings.max_deletion_share and not change_sets.asks_for_deletion(job.request.prompt):
            # Never applied silently: the version keeps the result, held back for a person.
            job.review_reason = (
                f"the model's changes delete {applied.deleted} of {len(parent)} files "
                f"({share:.0%}), but the prompt asked for no deletion: review before using it"
            )
            await progress.message(job.review_reason)
        if not applied.changed:
            raise ProviderError(
                "the model's answer changes no file, so no new version was made",
                reason="NO_CHANGES",
                code="FAILED_PRECONDITION",
            )
        await progress.message(
            f"merged onto {len(parent)} files: {applied.added} added, {applied.modified} changed, "
            f"{applied.deleted} deleted, {applied.file_count} in the new tree"
        )
    return applied
