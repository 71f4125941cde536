"""Drafts: DraftPrompt asks a text model for a prompt; the caller reads, lists and edits drafts.

A draft is not a version and runs no job: the model is asked while the caller waits, through
the drafting model's gate (its cooldowns and request budget), like any job's request.
"""

from __future__ import annotations

from collections.abc import Sequence

import storage
from server.config import ModelConfig
from server.domain import _transactions as transactions
from server.domain.deadlines import NO_DEADLINE, Deadline
from server.domain.errors import (
    Aborted,
    AtelierError,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    PermissionDenied,
    Unavailable,
)
from server.domain.generations._base import ServiceBase, draft_row
from server.domain.principals import Principal
from server.domain.resources import Draft, draft_of, version_etag
from server.providers import DraftRequest, ProviderError

# How a provider's failure reaches the caller; any other code says the model could not draft now.
_PROVIDER_CODES: dict[str, type[AtelierError]] = {
    "INVALID_ARGUMENT": InvalidArgument,
    "FAILED_PRECONDITION": FailedPrecondition,
    "PERMISSION_DENIED": PermissionDenied,
    "DEADLINE_EXCEEDED": DeadlineExceeded,
    "RESOURCE_EXHAUSTED": Unavailable,
}


class DraftVerbs(ServiceBase):
    async def draft_prompt(
        self, *, caller: Principal, text: str, context: str, model: str, deadline: Deadline = NO_DEADLINE
    ) -> Draft:
        """Asks a text model of the target model's provider to turn `text` (and `context`) into a
        prompt for the target `model`, and stores the draft as the caller's."""
        self.check_prompt(text, field="text")
        self.check_prompt(context, field="context", required=False)
        target = self._resolve_model(model)
        drafter = self._drafter(target)
        request = DraftRequest(
            text=text,
            context=context,
            model=drafter.name,
            target_model=target.name,
            target_outputs=target.output_modalities,
        )
        gate = self._runner.capacity(drafter.name).gate()
        try:
            answer = await self._runner.providers.get(drafter.provider).draft(request, gate)
        except ProviderError as exc:
            error = _PROVIDER_CODES.get(exc.code, Unavailable)
            raise error(
                f"{drafter.name} could not draft the prompt: {exc.message}",
                reason=exc.reason,
                metadata={"model": drafter.name},
            ) from exc
        finally:
            gate.release()
        usage = answer.usage

        def create(tx: storage.Transaction) -> storage.Draft:
            return storage.create_draft(
                tx,
                owner=caller.name,
                text=text,
                context=context,
                model=target.name,
                drafter_model=drafter.name,
                provider=drafter.provider,
                drafted_prompt=answer.prompt,
                input_tokens=usage.input_tokens if usage else 0,
                output_tokens=usage.output_tokens if usage else 0,
                thinking_tokens=usage.thinking_tokens if usage else 0,
            )

        return draft_of(await transactions.write(self._db, create, deadline=deadline))

    async def get_draft(self, *, caller: Principal, draft_id: str) -> Draft:
        return draft_of(await transactions.read(self._db, lambda tx: draft_row(tx, caller, draft_id)))

    async def list_drafts(self, *, caller: Principal, before_id: str | None, limit: int) -> list[Draft]:
        """The caller's drafts (an admin's: everyone's), newest first."""
        rows: Sequence[storage.Draft] = await transactions.read(
            self._db,
            lambda tx: storage.list_drafts(tx, owner=caller.owner_filter, before_id=before_id, limit=limit),
        )
        return [draft_of(row) for row in rows]

    async def update_draft(
        self, *, caller: Principal, draft_id: str, prompt: str, etag: str, deadline: Deadline = NO_DEADLINE
    ) -> Draft:
        """Replaces the draft's prompt with the caller's edit, unless `etag` (if given) is stale."""
        self.check_prompt(prompt)

        def update(tx: storage.Transaction) -> storage.Draft:
            row = draft_row(tx, caller, draft_id)
            current = version_etag(row.revision)
            if (etag and etag != current) or not storage.update_draft_prompt(
                tx, draft=row, prompt=prompt, revision=row.revision
            ):
                raise _stale(draft_id, etag, current)
            return row

        return draft_of(await transactions.write(self._db, update, deadline=deadline))

    async def delete_draft(
        self, *, caller: Principal, draft_id: str, etag: str, deadline: Deadline = NO_DEADLINE
    ) -> None:
        """Deletes the caller's draft for good, unless `etag` (if given) is stale or a stored
        version was made from it (its provenance)."""

        def delete(tx: storage.Transaction) -> None:
            row = draft_row(tx, caller, draft_id)
            current = version_etag(row.revision)
            user = storage.draft_user(tx, draft_id=draft_id)
            if user is not None:
                raise _in_use(draft_id, f"generations/{user.generation_id}/versions/{user.number}")
            if (etag and etag != current) or not storage.delete_draft(
                tx, draft_id=draft_id, revision=row.revision
            ):
                raise _stale(draft_id, etag, current)

        try:
            await transactions.write(self._db, delete, deadline=deadline)
        except storage.WriteConflict as exc:
            # A version naming the draft was committed meanwhile: its foreign key refused the delete.
            raise _in_use(draft_id, "") from exc

    def _drafter(self, target: ModelConfig) -> ModelConfig:
        """The text model that drafts for `target`: its provider's first model that makes no
        images, else the target itself."""
        own = [model for model in self._settings.available_models if model.provider == target.provider]
        return next((model for model in own if "image" not in model.output_modalities), target)


def _in_use(draft_id: str, version: str) -> FailedPrecondition:
    made = f" ({version})" if version else ""
    return FailedPrecondition(
        f"draft drafts/{draft_id} is the provenance of a version made from it{made}; it stays while "
        "that version is stored",
        reason="DRAFT_IN_USE",
        metadata={"draft": f"drafts/{draft_id}", **({"version": version} if version else {})},
    )


def _stale(draft_id: str, etag: str, current: str) -> Aborted:
    return Aborted(
        f"draft drafts/{draft_id} changed since it was read (etag {etag or '(none)'}; it is now "
        f"{current}): read it again and retry",
        reason="ETAG_MISMATCH",
        metadata={"etag": current},
    )
