"""Deleting a generation (AIP-135 soft delete) and undeleting it (AIP-164) before it expires.

A deleted generation, its versions, files and conversation answer NOT_FOUND to every read, as
if they were gone; its jobs stop. The garbage collector purges it once `expire_time` passes.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

import storage
from server.domain import _transactions as transactions
from server.domain import deletion
from server.domain.deadlines import NO_DEADLINE, Deadline
from server.domain.errors import AlreadyExists
from server.domain.generations._base import ServiceBase, generation_row, log_event, not_found
from server.domain.principals import Principal
from server.domain.resources import Generation, generation_of


class DeleteVerbs(ServiceBase):
    async def delete_generation(
        self, *, caller: Principal, generation_id: str, deadline: Deadline = NO_DEADLINE
    ) -> Generation:
        """Soft-deletes the caller's generation (any one, for an admin); returns it with its delete
        and expire times."""
        now = storage.utcnow()
        kept_for = timedelta(seconds=self._settings.deleted_retention_seconds)

        def work(tx: storage.Transaction) -> deletion.Deleted:
            generation_row(tx, caller, generation_id)
            deleted = deletion.delete_generation(tx, generation_id=generation_id, now=now, kept_for=kept_for)
            if deleted is None:  # deleted by someone else since it was found
                raise _not_found(generation_id)
            return deleted

        deleted = await transactions.write(self._db, work, deadline=deadline)
        self.after_deletion([generation_id], deleted.stopped_version_ids)
        log_event(
            "generation_deleted",
            generation=generation_id,
            owner=deleted.generation.owner,
            by=caller.name,
            expire_time=deleted.generation.expire_time,
            jobs_stopped=len(deleted.stopped_version_ids),
        )
        return generation_of(deleted.generation)

    async def undelete_generation(
        self, *, caller: Principal, generation_id: str, deadline: Deadline = NO_DEADLINE
    ) -> Generation:
        """Restores the caller's deleted generation (any one, for an admin), unless it expired
        (NOT_FOUND then). Its cancelled jobs stay CANCELLED."""
        now = storage.utcnow()
        owner = caller.owner_filter

        def work(tx: storage.Transaction) -> storage.Generation:
            restored = storage.undelete_generation(tx, owner=owner, generation_id=generation_id, now=now)
            if restored is not None:
                return restored
            if storage.get_generation(tx, owner=owner, generation_id=generation_id) is not None:
                raise AlreadyExists(
                    f"generation generations/{generation_id} is not deleted",
                    reason="GENERATION_NOT_DELETED",
                    metadata={"name": f"generations/{generation_id}"},
                )
            raise _not_found(generation_id)

        restored = await transactions.write(self._db, work, deadline=deadline)
        log_event("generation_undeleted", generation=generation_id, owner=restored.owner, by=caller.name)
        return generation_of(restored)

    def after_deletion(self, generation_ids: Iterable[str], stopped_version_ids: Iterable[int]) -> None:
        """What this process does once generations are deleted or purged (here, by the garbage
        collector, or by another replica): it stops their jobs that run here, ends their Progress
        streams, and forgets their versions."""
        for version_id in stopped_version_ids:
            self._runner.cancel_local(version_id)
            self._hub.notify(version_id)
        gone = set(generation_ids)
        if gone:
            self._ended.discard_where(lambda key: key[1] in gone)


def _not_found(generation_id: str) -> Exception:
    return not_found("generation", f"generations/{generation_id}", "GENERATION_NOT_FOUND")
