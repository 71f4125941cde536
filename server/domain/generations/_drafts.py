"""Drafts: DraftPrompt asks a text model for a prompt; the caller reads, lists and edits drafts.

A draft is not a version and runs no job: the model is asked while the caller waits, through
the drafting model's gate (its cooldowns and request budget), like any job's request.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

import anyio

import storage
from server.config import ModelConfig, Settings
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
from server.domain.generations._base import ServiceBase, draft_row, fingerprint_of, request_id_reused
from server.domain.principals import Principal
from server.domain.resources import Draft, draft_of, version_etag
from server.providers import DraftAnswer, DraftRequest, ProviderError

_log = logging.getLogger("atelier.drafts")

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
        self,
        *,
        caller: Principal,
        text: str,
        context: str,
        model: str,
        request_id: str = "",
        deadline: Deadline = NO_DEADLINE,
    ) -> Draft:
        """Asks a text model of the target model's provider to turn `text` (and `context`) into a
        prompt for the target `model`, and stores the draft as the caller's.

        A repeated `request_id` (AIP-155, per caller) answers the first call's draft and asks no
        model; with another text, context or model it is refused (REQUEST_ID_REUSED). The id is
        reserved before the model is asked, so a concurrent call with it asks no model either: it
        is answered UNAVAILABLE (REQUEST_IN_PROGRESS, retry) until the first call's draft is stored."""
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
        if not request_id:
            answer = await self._ask(drafter, request)

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
                    **_tokens(answer),
                )

            return draft_of(await transactions.write(self._db, create, deadline=deadline))

        fingerprint = fingerprint_of("draft", text, context, target.name)
        # A reservation older than the longest a drafting call can take was abandoned (its server
        # stopped mid-call): a retry takes its request id over.
        abandoned_before = storage.utcnow() - timedelta(seconds=drafting_seconds(self._settings))

        def reserve(tx: storage.Transaction) -> storage.Draft:
            return storage.reserve_draft(
                tx,
                owner=caller.name,
                request_id=request_id,
                request_fingerprint=fingerprint,
                text=text,
                context=context,
                model=target.name,
                drafter_model=drafter.name,
                provider=drafter.provider,
            )

        row, reserved = await self.once(
            lambda tx: _existing_draft(tx, caller, request_id, fingerprint, abandoned_before),
            lambda tx: _existing_draft(tx, caller, request_id, fingerprint, None),
            reserve,
            deadline,
        )
        if not reserved:
            if row.revision == storage.RESERVED_DRAFT:
                raise _in_progress(request_id)
            return draft_of(row)
        try:
            answer = await self._ask(drafter, request)
        except BaseException:
            # Frees the request id (also for a cancelled call): a retry asks the model again, as
            # nothing was drafted. Failing to, the reservation is abandoned, and taken over later.
            with anyio.CancelScope(shield=True):
                try:
                    await transactions.write(
                        self._db,
                        lambda tx: storage.delete_draft(tx, draft_id=row.id, revision=storage.RESERVED_DRAFT),
                    )
                except storage.StorageError:
                    _log.warning("could not free the reservation of draft %s", row.id, exc_info=True)
            raise

        # Stored even if the caller has gone meanwhile: its retry, with the same request id, gets
        # the draft the model was paid for.
        def complete(tx: storage.Transaction) -> storage.Draft | None:
            return storage.complete_draft(
                tx, draft_id=row.id, drafted_prompt=answer.prompt, **_tokens(answer)
            )

        done = await transactions.write(self._db, complete)
        if done is None:
            raise _in_progress(request_id)  # abandoned as too slow, and taken over by a retry
        return draft_of(done)

    async def _ask(self, drafter: ModelConfig, request: DraftRequest) -> DraftAnswer:
        """The drafting model's answer, through its gate."""
        gate = self._runner.capacity(drafter.name).gate()
        try:
            return await self._runner.providers.get(drafter.provider).draft(request, gate)
        except ProviderError as exc:
            error = _PROVIDER_CODES.get(exc.code, Unavailable)
            raise error(
                f"{drafter.name} could not draft the prompt: {exc.message}",
                reason=exc.reason,
                metadata={"model": drafter.name},
            ) from exc
        finally:
            gate.release()

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


def drafting_seconds(settings: Settings) -> float:
    """The longest a drafting call can take: its waits for the model's budget, then every attempt
    at its longest, with the backoffs between them. A reservation older than this was abandoned."""
    attempts = settings.provider_max_attempts
    return (
        settings.provider_max_wait_seconds
        + attempts * settings.gemini_attempt_seconds
        + (attempts - 1) * settings.provider_backoff_max_seconds
    )


def _existing_draft(
    tx: storage.Transaction,
    caller: Principal,
    request_id: str,
    fingerprint: str,
    abandoned_before: datetime | None,
) -> storage.Draft | None:
    """The draft (or reservation) the caller's `request_id` made, unless it was made for another
    request (REQUEST_ID_REUSED, as Generate refuses it). With `abandoned_before`, in a write
    transaction, a reservation made before then is deleted, and None answered: it is taken over."""
    existing = storage.find_draft_by_request_id(tx, owner=caller.name, request_id=request_id)
    if existing is None:
        return None
    if existing.request_fingerprint != fingerprint:
        raise request_id_reused(request_id)
    if (
        abandoned_before is not None
        and existing.revision == storage.RESERVED_DRAFT
        and existing.create_time < abandoned_before
    ):
        storage.delete_draft(tx, draft_id=existing.id, revision=storage.RESERVED_DRAFT)
        return None
    return existing


def _tokens(answer: DraftAnswer) -> dict[str, int]:
    usage = answer.usage
    return {
        "input_tokens": usage.input_tokens if usage else 0,
        "output_tokens": usage.output_tokens if usage else 0,
        "thinking_tokens": usage.thinking_tokens if usage else 0,
    }


def _in_progress(request_id: str) -> Unavailable:
    return Unavailable(
        f"the request with request_id {request_id!r} is still drafting; retry shortly to get its draft",
        reason="REQUEST_IN_PROGRESS",
        metadata={"request_id": request_id},
    )


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
