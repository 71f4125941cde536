"""What every verb of the generation service shares: its collaborators, and finding what a caller names.

A caller only ever finds its own resources (an admin finds everyone's): another owner's answer
NOT_FOUND, exactly as a missing one does. Every storage query passes the caller's
`owner_filter`, and the verbs take a `Principal`, never an owner's name.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from typing import TypeVar

import storage
from server.config import ModelConfig, Settings
from server.domain import _transactions as transactions
from server.domain._lru import LRU
from server.domain.deadlines import Deadline
from server.domain.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
)
from server.domain.events import EventHub
from server.domain.jobs import JobRunner
from server.domain.principals import Principal
from server.domain.resources import READABLE_STATES, Version, VersionRef, version_etag, version_of

_log = logging.getLogger("atelier.sessions")
_IMAGE_SIZE_CACHE_SIZE = 100_000
_ENDED_CACHE_SIZE = 1024
ENDED_CACHE_SECONDS = 30.0
_Row = TypeVar("_Row")


class ServiceBase:
    def __init__(
        self,
        *,
        db: storage.Database,
        hub: EventHub,
        runner: JobRunner,
        settings: Settings,
        wake_webhooks: Callable[[], None] = lambda: None,
    ) -> None:
        self._db = db
        self._hub = hub
        self._runner = runner
        self._settings = settings
        # Tells the webhook deliverer that a delivery is due now (a replay).
        self.wake_webhooks = wake_webhooks
        # Versions in a terminal state never change again, in any process: GetVersion serves
        # them (with their row id, for Progress) from this small, bounded cache, without a
        # database read or a thread hop. Only deletion makes them vanish: `after_deletion`
        # forgets them, as it hears of it; an entry is also read again once it is
        # ENDED_CACHE_SECONDS old, in case it did not hear (a lost notification, or a
        # retention pass of another process on SQLite).
        self._ended: LRU[tuple[str | None, str, int], tuple[int, Version, float]] = LRU(
            max_entries=_ENDED_CACHE_SIZE
        )
        # Images' pixel sizes by SHA-256 ((0, 0): unreadable): contents never change, nor their size.
        self._image_sizes: LRU[str, tuple[int, int]] = LRU(max_entries=_IMAGE_SIZE_CACHE_SIZE)

    async def create_once(
        self,
        caller: Principal,
        request_id: str,
        fingerprint: str,
        create: Callable[[storage.Transaction], storage.Version],
        deadline: Deadline,
        *,
        generation_id: str | None = None,
    ) -> Version:
        """Runs `create` in a write transaction, unless `request_id` already made a version
        (AIP-155): then that version is the answer, and nothing new starts. Nothing is written
        once the caller has gone (`deadline`).

        Request ids are kept per owner of the version made: the caller for a new generation, the
        owner of `generation_id` for a version added to it (an admin's too).
        """

        def find(tx: storage.Transaction) -> storage.Version | None:
            if not request_id:
                return None
            return _existing_request(tx, caller, generation_id, request_id, fingerprint)

        try:
            row, created = await self.once(find, find, create, deadline)
        except storage.GenerationDeleted as exc:
            raise not_found("generation", f"generations/{exc.generation_id}", "GENERATION_NOT_FOUND") from exc
        except storage.TooManyQueuedJobs as exc:
            raise ResourceExhausted(
                f"{exc.owner!r} already has {exc.count} jobs queued or running, its limit; "
                "wait for some to finish, or cancel some",
                reason="TOO_MANY_QUEUED_JOBS",
                metadata={"limit": str(exc.limit)},
            ) from exc
        if created:
            self._runner.wake()
        return version_of(row)

    async def once(
        self,
        find: Callable[[storage.Transaction], _Row | None],
        find_again: Callable[[storage.Transaction], _Row | None],
        create: Callable[[storage.Transaction], _Row],
        deadline: Deadline,
    ) -> tuple[_Row, bool]:
        """`create(tx)` in a write transaction, unless `find(tx)` there finds what an earlier call
        with the same request id made (AIP-155, and REQUEST_ID_REUSED is `find`'s to raise); True
        when it created. A concurrent call with the same request id that wins the race on the
        unique constraint (RequestIdTaken) is read with `find_again`, as a retry would find it."""

        def work(tx: storage.Transaction) -> tuple[_Row, bool]:
            existing = find(tx)
            if existing is not None:
                return existing, False
            return create(tx), True

        try:
            return await transactions.write(self._db, work, deadline=deadline)
        except storage.RequestIdTaken:
            existing = await transactions.read(self._db, find_again)
            if existing is None:
                raise
            return existing, False

    def check_prompt(self, prompt: str, *, field: str = "prompt", required: bool = True) -> None:
        """A prompt (or another text a model reads, named by `field`) must hold some non-blank
        text, if `required`, and fit in max_prompt_bytes."""
        if required and not prompt.strip():
            raise InvalidArgument(
                f"the {field} is empty",
                reason="EMPTY_PROMPT",
                violations=[FieldViolation(field, "must contain some non-blank text")],
            )
        size = len(prompt.encode())
        limit = self._settings.max_prompt_bytes
        if size > limit:
            raise InvalidArgument(
                f"the {field} is {size} bytes; the limit is {limit}",
                reason="PROMPT_TOO_LARGE",
                metadata={"size": str(size), "limit": str(limit)},
                violations=[FieldViolation(field, f"must be at most {limit} bytes (UTF-8)")],
            )

    def _resolve_model(self, name: str) -> ModelConfig:
        if not name:
            return self._settings.resolved_default_model
        model = self._settings.find_model(name)
        if model is None:
            known = ", ".join(m.name for m in self._settings.available_models)
            raise InvalidArgument(
                f"unknown model {name!r}; ListModels names the models this server offers ({known})",
                reason="UNKNOWN_MODEL",
                metadata={"model": name},
                violations=[FieldViolation("model", "must be a model name from ListModels")],
            )
        return model


def _existing_request(
    tx: storage.Transaction, caller: Principal, generation_id: str | None, request_id: str, fingerprint: str
) -> storage.Version | None:
    owner = caller.name
    if generation_id is not None:
        generation = storage.get_generation(tx, owner=caller.owner_filter, generation_id=generation_id)
        if generation is None:
            return None  # `create` answers NOT_FOUND, as for any caller
        owner = generation.owner
    existing = storage.find_version_by_request_id(tx, owner=owner, request_id=request_id)
    if existing is not None and existing.request_fingerprint != fingerprint:
        raise request_id_reused(request_id)
    return existing


def request_id_reused(request_id: str) -> AlreadyExists:
    return AlreadyExists(
        f"request_id {request_id!r} was already used for a different request",
        reason="REQUEST_ID_REUSED",
        metadata={"request_id": request_id},
    )


def version_row(tx: storage.Transaction, caller: Principal, ref: VersionRef) -> storage.Version:
    row = storage.get_version(
        tx, owner=caller.owner_filter, generation_id=ref.generation_id, number=ref.number
    )
    if row is None:
        raise not_found("version", version_name(ref), "VERSION_NOT_FOUND")
    return row


def draft_row(
    tx: storage.Transaction, caller: Principal, draft_id: str, *, lock: bool = False
) -> storage.Draft:
    row = storage.get_draft(tx, owner=caller.owner_filter, draft_id=draft_id, lock=lock)
    if row is None:
        raise not_found("draft", f"drafts/{draft_id}", "DRAFT_NOT_FOUND")
    return row


def generation_row(tx: storage.Transaction, caller: Principal, generation_id: str) -> storage.Generation:
    row = storage.get_generation(tx, owner=caller.owner_filter, generation_id=generation_id)
    if row is None:
        raise not_found("generation", f"generations/{generation_id}", "GENERATION_NOT_FOUND")
    return row


def readable_version_row(tx: storage.Transaction, caller: Principal, ref: VersionRef) -> storage.Version:
    """The version, if its files can be read (FAILED_PRECONDITION otherwise)."""
    row = version_row(tx, caller, ref)
    if row.state not in READABLE_STATES:
        raise FailedPrecondition(
            f"version {version_name(ref)} is {row.state}; its files can be read once it is COMPLETED",
            reason="VERSION_NOT_READY",
            metadata={"state": row.state},
        )
    return row


def refinable_version_row(
    tx: storage.Transaction, caller: Principal, ref: VersionRef, etag: str
) -> storage.Version:
    """The version, if it can be built on: its files are readable and `etag` (if given) is current."""
    row = version_row(tx, caller, ref)
    if row.state not in READABLE_STATES:
        raise FailedPrecondition(
            f"version {version_name(ref)} is {row.state}; "
            "only a COMPLETED or NEEDS_REVIEW version can be refined",
            reason="VERSION_NOT_READY",
            metadata={"state": row.state},
        )
    current = version_etag(row.revision)
    if etag and etag != current:
        raise Aborted(
            f"version {version_name(ref)} changed since it was read (etag {etag} is stale; it is now "
            f"{current}): read it again and retry",
            reason="ETAG_MISMATCH",
            metadata={"etag": current},
        )
    return row


def tree_of(tx: storage.Transaction, caller: Principal, ref: VersionRef) -> dict[str, storage.TreeEntry]:
    row = readable_version_row(tx, caller, ref)
    assert row.id is not None
    return storage.read_tree(tx, version_id=row.id)


def not_found(kind: str, name: str, reason: str) -> NotFound:
    # The same answer whether the resource does not exist or belongs to someone else.
    return NotFound(f"{kind} {name} not found", reason=reason, metadata={"name": name})


def version_name(ref: VersionRef) -> str:
    return f"generations/{ref.generation_id}/versions/{ref.number}"


def log_event(event: str, **fields: object) -> None:
    """One structured (JSON) log line, for operators' tools."""
    _log.info(json.dumps({"event": event, **fields}, default=str))


def fingerprint_of(*parts: object) -> str:
    """A hash of a request's parameters, to tell a retry from a reused request id."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
