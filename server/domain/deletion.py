"""Deleting a generation, by DeleteGeneration or by retention: a soft delete that stops its jobs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import storage
from server.domain.jobs import cancel_job

# The error a queued job of a deleted generation ends with.
GENERATION_DELETED = storage.ErrorDetail(
    code="CANCELLED", reason="GENERATION_DELETED", message="the generation was deleted"
)


@dataclass(frozen=True, slots=True)
class Deleted:
    """A generation just soft-deleted, and the versions whose jobs it stopped."""

    generation: storage.Generation
    # Their jobs were QUEUED (now CANCELLED) or RUNNING (flagged: see JobRunner.cancel_local).
    stopped_version_ids: tuple[int, ...]


def delete_generation(
    tx: storage.Transaction, *, generation_id: str, now: datetime, kept_for: timedelta
) -> Deleted | None:
    """Soft-deletes the generation (it can be undeleted for `kept_for`) and stops its jobs: a
    deleted generation's model work is wasted work. None if it is missing or deleted already."""
    generation = storage.delete_generation(
        tx, generation_id=generation_id, now=now, expire_time=now + kept_for
    )
    if generation is None:
        return None
    stopped = []
    for version in storage.versions_in_flight(tx, generation_id=generation_id):
        cancel_job(tx, version, error=GENERATION_DELETED, message="Cancelled: the generation was deleted")
        assert version.id is not None
        stopped.append(version.id)
    return Deleted(generation, tuple(stopped))
