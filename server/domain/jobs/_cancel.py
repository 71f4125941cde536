"""Stopping a version's job from outside it: CancelVersion, and deleting its generation."""

from __future__ import annotations

import storage
from server.domain.jobs._job import CANCELLED_BY_USER, CANCELLED_BY_USER_MESSAGE


def cancel_job(
    tx: storage.Transaction,
    version: storage.Version,
    *,
    error: storage.ErrorDetail = CANCELLED_BY_USER,
    message: str = CANCELLED_BY_USER_MESSAGE,
) -> None:
    """Stops the version's job. A QUEUED job ends CANCELLED here, in `tx`. A RUNNING one is
    flagged: its worker stops it at its next heartbeat, or at once if it runs in this process
    and the caller then calls `JobRunner.cancel_local` (it ends CANCELLED as CancelVersion's)."""
    assert version.id is not None
    job = storage.request_cancel(tx, version_id=version.id)
    if job is not None and job.status == storage.JobStatus.QUEUED and job.id is not None:
        # No worker has it: it ends here and now.
        storage.end_job(
            tx,
            job_id=job.id,
            version=version,
            state=storage.VersionState.CANCELLED,
            message=message,
            error=error,
        )
