"""Making versions with the model: Generate, Tweak, Iterate and Regenerate queue a job each.

A repeated `request_id` (AIP-155) returns the first call's version and starts nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import storage
from server.domain import _transactions as transactions
from server.domain.deadlines import NO_DEADLINE, Deadline
from server.domain.errors import FailedPrecondition, FieldViolation, InvalidArgument
from server.domain.generations._base import (
    ServiceBase,
    draft_row,
    fingerprint_of,
    generation_row,
    log_event,
    refinable_version_row,
    version_name,
    version_row,
)
from server.domain.generations._fanout import Output, Variant, plan_outputs
from server.domain.principals import Principal
from server.domain.resources import Version, VersionRef
from server.domain.webhooks import WebhookRequest, check_webhook_url
from server.files import FileContent, content_problem

# The versions no model made: Regenerate ("ask the model again") has nothing to ask for them.
_NOT_BY_A_MODEL = {storage.VersionKind.UPLOAD: "an upload", storage.VersionKind.MERGE: "a merge"}


class CreateVerbs(ServiceBase):
    async def generate(
        self,
        *,
        caller: Principal,
        prompt: str,
        model: str,
        request_id: str,
        attachments: Sequence[FileContent],
        draft_id: str | None = None,
        deadline: Deadline = NO_DEADLINE,
        variants: Sequence[Variant] = (),
        count: int | None = None,
        webhook: WebhookRequest | None = None,
    ) -> Version:
        """Queues version 1 of a new generation; with `variants` or `count`, a fan-out: versions
        1..N, siblings with no parent, each on its own branch of the session (the answer is v1).
        With `draft_id` (one of the caller's drafts) every output records the draft, and an empty
        `prompt` or `model` is the draft's."""
        if draft_id is not None:
            draft = await transactions.read(self._db, lambda tx: draft_row(tx, caller, draft_id))
            prompt, model = prompt or draft.prompt, model or draft.model
        self.check_prompt(prompt)
        outputs = plan_outputs(variants, count, limit=self._settings.max_batch_size)
        for output in outputs or ():
            self.check_prompt(output.prompt(prompt))
        model_config = self._resolve_model(model)
        self._check_attachments(attachments)
        await self._check_webhook(webhook)
        # A request without a draft keeps the fingerprint it always had.
        drafted = [draft_id] if draft_id is not None else []
        fingerprint = fingerprint_of(
            "generate",
            prompt,
            model_config.name,
            _attachment_keys(attachments),
            *_output_keys(outputs),
            *_webhook_key(webhook),
            *drafted,
        )

        def create(tx: storage.Transaction) -> storage.Version:
            if draft_id is not None:
                # Still there (DeleteDraft may have run meanwhile), and kept until this commits.
                draft_row(tx, caller, draft_id, lock=True)
            first = outputs[0] if outputs else None
            generation, version = storage.create_generation(
                tx,
                owner=caller.name,
                prompt=prompt,
                model=model_config.name,
                provider=model_config.provider,
                request_id=request_id or None,
                request_fingerprint=fingerprint,
                max_queued_jobs=self._settings.max_queued_jobs_per_principal,
                attachments=attachments,
                version_prompt=first.prompt(prompt) if first else None,
                batch_number=_FIRST if first else None,
                variant=first.variant if first else None,
                draft_id=draft_id,
            )
            # The other outputs: versions 2..N, each a first turn of its own, as v1 is.
            # A webhook follows every output of a fan-out.
            for output in (outputs or [])[1:]:
                sibling = storage.create_version(
                    tx,
                    generation=generation,
                    kind=storage.VersionKind.GENERATE,
                    prompt=output.prompt(prompt),
                    model=model_config.name,
                    provider=model_config.provider,
                    parent_number=None,
                    base_turn_id=None,
                    turn=1,
                    request_id=None,
                    request_fingerprint=None,
                    max_queued_jobs=self._settings.max_queued_jobs_per_principal,
                    attachments=attachments,
                    batch_number=version.number,
                    variant=output.variant,
                    draft_id=draft_id,
                )
                _subscribe(tx, sibling, webhook)
            log_event(
                "session_created",
                generation=generation.id,
                owner=caller.name,
                model=model_config.name,
                outputs=len(outputs or [None]),
            )
            _subscribe(tx, version, webhook)
            return version

        return await self.create_once(caller, request_id, fingerprint, create, deadline)

    async def tweak(
        self,
        *,
        caller: Principal,
        parent: VersionRef,
        prompt: str,
        model: str,
        request_id: str,
        etag: str,
        attachments: Sequence[FileContent],
        deadline: Deadline = NO_DEADLINE,
        webhook: WebhookRequest | None = None,
    ) -> Version:
        """Queues the next version of the generation: `parent` refined in its own conversation branch."""
        self.check_prompt(prompt)
        self._check_attachments(attachments)
        model_config = self._resolve_model(model) if model else None
        await self._check_webhook(webhook)
        fingerprint = fingerprint_of(
            "tweak",
            parent.generation_id,
            parent.number,
            prompt,
            model,
            etag,
            _attachment_keys(attachments),
            *_webhook_key(webhook),
        )

        def create(tx: storage.Transaction) -> storage.Version:
            parent_row = refinable_version_row(tx, caller, parent, etag)
            generation = generation_row(tx, caller, parent.generation_id)
            conversation = storage.get_conversation(
                tx, owner=caller.owner_filter, generation_id=parent.generation_id
            )
            latest = generation.version_count
            version = storage.create_version(
                tx,
                generation=generation,
                kind=storage.VersionKind.TWEAK,
                prompt=prompt,
                model=model_config.name if model_config else parent_row.model,
                provider=model_config.provider if model_config else parent_row.provider,
                parent_number=parent_row.number,
                base_turn_id=parent_row.head_turn_id,
                turn=parent_row.turn + 1,
                request_id=request_id or None,
                request_fingerprint=fingerprint,
                max_queued_jobs=self._settings.max_queued_jobs_per_principal,
                attachments=attachments,
            )
            if conversation is not None:
                log_event(
                    "session_reused",
                    session=conversation.id,
                    generation=generation.id,
                    age_seconds=round((storage.utcnow() - conversation.create_time).total_seconds(), 3),
                    turn_count=conversation.turn_count,
                    branch_turns=parent_row.turn,
                    forked=parent_row.number != latest,
                )
            _subscribe(tx, version, webhook)
            return version

        return await self.create_once(
            caller, request_id, fingerprint, create, deadline, generation_id=parent.generation_id
        )

    async def iterate(
        self,
        *,
        caller: Principal,
        parent: VersionRef,
        prompt: str,
        model: str,
        request_id: str,
        etag: str,
        deadline: Deadline = NO_DEADLINE,
        webhook: WebhookRequest | None = None,
    ) -> Version:
        """Queues version N+1 of the generation: `parent`'s tree plus the model's changes for `prompt`.

        The model sees the parent's files (not the conversation), and its answer is merged onto
        the parent's tree in one transaction.
        """
        self.check_prompt(prompt)
        model_config = self._resolve_model(model) if model else None
        await self._check_webhook(webhook)
        fingerprint = fingerprint_of(
            "iterate", parent.generation_id, parent.number, prompt, model, etag, *_webhook_key(webhook)
        )

        def create(tx: storage.Transaction) -> storage.Version:
            parent_row = refinable_version_row(tx, caller, parent, etag)
            version = storage.create_version(
                tx,
                generation=generation_row(tx, caller, parent.generation_id),
                kind=storage.VersionKind.ITERATE,
                prompt=prompt,
                model=model_config.name if model_config else parent_row.model,
                provider=model_config.provider if model_config else parent_row.provider,
                parent_number=parent_row.number,
                base_turn_id=None,
                turn=1,
                request_id=request_id or None,
                request_fingerprint=fingerprint,
                max_queued_jobs=self._settings.max_queued_jobs_per_principal,
            )
            _subscribe(tx, version, webhook)
            return version

        return await self.create_once(
            caller, request_id, fingerprint, create, deadline, generation_id=parent.generation_id
        )

    async def regenerate(
        self,
        *,
        caller: Principal,
        version: VersionRef,
        request_id: str,
        deadline: Deadline = NO_DEADLINE,
        variants: Sequence[Variant] = (),
        count: int | None = None,
    ) -> Version:
        """Queues the version's prompt again, as a sibling of the version on a new branch; with
        `variants` or `count`, several siblings (a batch), each variant's suffix added to the
        version's prompt. The answer is the first new version."""
        outputs = plan_outputs(variants, count, limit=self._settings.max_batch_size)
        fingerprint = fingerprint_of(
            "regenerate", version.generation_id, version.number, *_output_keys(outputs)
        )

        def create(tx: storage.Transaction) -> storage.Version:
            original = regenerable_row(tx, caller, version)
            assert original.id is not None
            for output in outputs or ():
                self.check_prompt(output.prompt(original.prompt))
            attachments = storage.list_attachments(tx, version_id=original.id)
            contents = storage.read_blobs(tx, (a.blob_sha256 for a in attachments))
            files = [FileContent(a.name, a.mime_type, contents[a.blob_sha256]) for a in attachments]
            generation = generation_row(tx, caller, version.generation_id)
            made: list[storage.Version] = []
            asked: list[Output | None] = list(outputs) if outputs else [None]
            for position, asking in enumerate(asked):
                made.append(
                    storage.create_version(
                        tx,
                        generation=generation,
                        kind=storage.VersionKind.REGENERATE,
                        prompt=asking.prompt(original.prompt) if asking else original.prompt,
                        model=original.model,
                        provider=original.provider,
                        parent_number=original.parent_number,
                        base_turn_id=original.base_turn_id,
                        turn=original.turn,
                        # The batch's request id is its first version's.
                        request_id=(request_id or None) if not position else None,
                        request_fingerprint=fingerprint if not position else None,
                        max_queued_jobs=self._settings.max_queued_jobs_per_principal,
                        attachments=files,
                        batch_number=(made[0].number if made else _FIRST) if asking else None,
                        variant=asking.variant if asking else None,
                        # The prompt as it was given (a draft's, as edited) keeps its provenance.
                        draft_id=original.draft_id,
                    )
                )
            return made[0]

        return await self.create_once(
            caller, request_id, fingerprint, create, deadline, generation_id=version.generation_id
        )

    async def _check_webhook(self, webhook: WebhookRequest | None) -> None:
        if webhook is None:
            return
        if not self._settings.webhook_secrets:
            raise FailedPrecondition(
                "webhooks are off on this server (it has no ATELIER_WEBHOOK_SECRET to sign them with)",
                reason="WEBHOOKS_DISABLED",
            )
        await check_webhook_url(webhook.url, self._settings)

    def _check_attachments(self, attachments: Sequence[FileContent]) -> None:
        violations = [
            FieldViolation(f"attachments[{index}].mime_type", "must be a MIME type such as image/png")
            for index, attachment in enumerate(attachments)
            if "/" not in attachment.mime_type
        ]
        if violations:
            raise InvalidArgument(
                "an attachment has no valid MIME type", reason="INVALID_ATTACHMENT", violations=violations
            )
        mismatches = [
            FieldViolation(f"attachments[{index}].data", f"attachment {attachment.path!r} {problem}")
            for index, attachment in enumerate(attachments)
            if (problem := content_problem(attachment.mime_type, attachment.data)) is not None
        ]
        if mismatches:
            raise InvalidArgument(
                f"{mismatches[0].description}"
                + (f" (and {len(mismatches) - 1} more attachments)" if len(mismatches) > 1 else ""),
                reason="CONTENT_TYPE_MISMATCH",
                violations=mismatches,
            )
        total = sum(len(a.data) for a in attachments)
        if total > self._settings.max_attachment_bytes:
            raise InvalidArgument(
                f"the attachments total {total} bytes; the limit is {self._settings.max_attachment_bytes}",
                reason="ATTACHMENTS_TOO_LARGE",
                violations=[FieldViolation("attachments", "are too large in total")],
            )


def regenerable_row(tx: storage.Transaction, caller: Principal, ref: VersionRef) -> storage.Version:
    """The version, if a model can be asked for it again: it has ended, and a model made it."""
    original = version_row(tx, caller, ref)
    if not storage.VersionState(original.state).is_terminal:
        raise FailedPrecondition(
            f"version {version_name(ref)} is {original.state}; it can be made again once it has ended",
            reason="VERSION_NOT_ENDED",
            metadata={"state": original.state},
        )
    made_by = _NOT_BY_A_MODEL.get(storage.VersionKind(original.kind))
    if made_by is not None:
        raise FailedPrecondition(
            f"version {version_name(ref)} is {made_by}: no model "
            f"made it, so there is nothing to ask a model again. {_instead(original)}",
            reason="NOT_REGENERATABLE",
            metadata={"kind": original.kind},
        )
    return original


# create_version's `batch_number` for a batch's first version: its own number.
_FIRST = -1


def _output_keys(outputs: Sequence[Output] | None) -> list[list[tuple[str, str]]]:
    """A fan-out's part of a request's fingerprint (nothing for a single version, whose
    fingerprint stays as it always was)."""
    return [] if outputs is None else [[(o.variant, o.suffix) for o in outputs]]


def _webhook_key(webhook: WebhookRequest | None) -> tuple[object, ...]:
    """The webhook's part of a request's fingerprint (nothing without one, as before webhooks)."""
    if webhook is None:
        return ()
    return ((webhook.url, sorted(webhook.effective_events)),)


def _subscribe(tx: storage.Transaction, version: storage.Version, webhook: WebhookRequest | None) -> None:
    """Stores the webhook with its version, in the transaction that makes the version."""
    if webhook is not None:
        assert version.id is not None
        storage.subscribe_webhook(
            tx, version_id=version.id, url=webhook.url, events=[str(e) for e in webhook.effective_events]
        )


def _attachment_keys(attachments: Sequence[FileContent]) -> list[tuple[str, str, str]]:
    return [(a.path, a.mime_type, storage.sha256_hex(a.data)) for a in attachments]


def _instead(version: storage.Version) -> str:
    """What to do instead of regenerating a version no model made."""
    if version.kind == storage.VersionKind.MERGE:
        again = f"Merge v{version.parent_number} and v{version.merge_parent_number} again"
    else:
        again = "Upload the files again"
    return f"{again} to make it anew, or Tweak or Iterate it to change it."
