"""Drafts: prompts a text model drafted for a caller (DraftPrompt), which the caller may edit."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select

from storage._clock import utcnow
from storage._database import Transaction
from storage._ids import new_generation_id
from storage._models import Draft, Version
from storage._tables import DRAFT

# The revision of a reservation: a DraftPrompt's request id held while the model drafts (see
# Draft.revision). Reads pass it by; `complete_draft` makes it revision 1, a draft.
RESERVED_DRAFT = 0


def create_draft(
    tx: Transaction,
    *,
    owner: str,
    text: str,
    context: str,
    model: str,
    drafter_model: str,
    provider: str,
    drafted_prompt: str,
    input_tokens: int = 0,
    output_tokens: int = 0,
    thinking_tokens: int = 0,
) -> Draft:
    """Stores a new draft; its `prompt` starts as what the model drafted."""
    return _add_draft(
        tx,
        owner=owner,
        text=text,
        context=context,
        model=model,
        drafter_model=drafter_model,
        provider=provider,
        drafted_prompt=drafted_prompt,
        prompt=drafted_prompt,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        thinking_tokens=thinking_tokens,
    )


def reserve_draft(
    tx: Transaction,
    *,
    owner: str,
    request_id: str,
    request_fingerprint: str,
    text: str,
    context: str,
    model: str,
    drafter_model: str,
    provider: str,
) -> Draft:
    """Holds `request_id` for `owner` while the model drafts: a draft at RESERVED_DRAFT, with no
    prompt yet. Raises RequestIdTaken if the owner's request id is already held or used."""
    return _add_draft(
        tx,
        owner=owner,
        text=text,
        context=context,
        model=model,
        drafter_model=drafter_model,
        provider=provider,
        drafted_prompt="",
        prompt="",
        revision=RESERVED_DRAFT,
        request_id=request_id,
        request_fingerprint=request_fingerprint,
    )


def _add_draft(tx: Transaction, **fields: Any) -> Draft:
    """Inserts a draft of `fields`, with a new id, made and updated now."""
    now = utcnow()
    draft = Draft(id=new_generation_id(), create_time=now, update_time=now, **fields)
    tx.add(draft)
    tx.flush()
    return draft


def complete_draft(
    tx: Transaction,
    *,
    draft_id: str,
    drafted_prompt: str,
    input_tokens: int = 0,
    output_tokens: int = 0,
    thinking_tokens: int = 0,
) -> Draft | None:
    """Makes a reservation the draft the model drafted (revision 1); None if it is gone (it was
    abandoned, and another call with its request id took it over)."""
    now = utcnow()
    updated = tx.execute(
        sa.update(DRAFT)
        .where(DRAFT.c.id == draft_id, DRAFT.c.revision == RESERVED_DRAFT)
        .values(
            drafted_prompt=drafted_prompt,
            prompt=drafted_prompt,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            thinking_tokens=thinking_tokens,
            revision=RESERVED_DRAFT + 1,
            update_time=now,
        )
    ).rowcount  # type: ignore[attr-defined]
    if not updated:
        return None
    return tx.exec(select(Draft).where(Draft.id == draft_id).execution_options(populate_existing=True)).one()


def find_draft_by_request_id(tx: Transaction, *, owner: str, request_id: str) -> Draft | None:
    """The draft (or the reservation) `owner` made with `request_id`, if any."""
    return tx.exec(select(Draft).where(Draft.owner == owner, Draft.request_id == request_id)).one_or_none()


def get_draft(tx: Transaction, *, owner: str | None, draft_id: str, lock: bool = False) -> Draft | None:
    """The draft, if `owner` owns it; with `owner` None (an admin's view), whoever owns it.

    With `lock`, the row is share-locked until the transaction ends (PostgreSQL; SQLite's one
    writer needs none), so a version that is about to name the draft cannot lose it to a
    concurrent DeleteDraft: the delete waits, then finds the version and refuses."""
    statement = select(Draft).where(Draft.id == draft_id, col(Draft.revision) != RESERVED_DRAFT)
    if owner is not None:
        statement = statement.where(Draft.owner == owner)
    if lock:
        statement = statement.with_for_update(read=True)
    return tx.exec(statement).one_or_none()


def list_drafts(tx: Transaction, *, owner: str | None, before_id: str | None, limit: int) -> Sequence[Draft]:
    """The drafts `owner` owns (None: everyone's), newest first."""
    statement = select(Draft).where(col(Draft.revision) != RESERVED_DRAFT)
    if owner is not None:
        statement = statement.where(Draft.owner == owner)
    if before_id is not None:
        statement = statement.where(col(Draft.id) < before_id)
    return tx.exec(statement.order_by(col(Draft.id).desc()).limit(limit)).all()


def update_draft_prompt(tx: Transaction, *, draft: Draft, prompt: str, revision: int) -> bool:
    """Sets the draft's prompt (the caller's edit), if the draft is still at `revision`.

    Returns False, changing nothing, when another edit came first."""
    now = utcnow()
    updated = tx.execute(
        sa.update(DRAFT)
        .where(DRAFT.c.id == draft.id, DRAFT.c.revision == revision)
        .values(prompt=prompt, revision=revision + 1, update_time=now)
    ).rowcount  # type: ignore[attr-defined]
    if updated:
        draft.prompt, draft.revision, draft.update_time = prompt, revision + 1, now
    return bool(updated)


def draft_user(tx: Transaction, *, draft_id: str) -> Version | None:
    """A version made from the draft (its provenance names it), if any is stored."""
    return tx.exec(select(Version).where(Version.draft_id == draft_id).limit(1)).one_or_none()


def delete_abandoned_reservations(tx: Transaction, *, created_before: datetime) -> int:
    """Deletes the reservations made before `created_before` (their DraftPrompt call ended long
    ago without freeing them: its server stopped); how many. Nothing reads them, and a retry
    with the same request id would take one over anyway."""
    deleted = tx.execute(
        sa.delete(DRAFT).where(DRAFT.c.revision == RESERVED_DRAFT, DRAFT.c.create_time < created_before)
    ).rowcount  # type: ignore[attr-defined]
    return int(deleted)


def delete_draft(tx: Transaction, *, draft_id: str, revision: int) -> bool:
    """Deletes the draft for good, if it is still at `revision`; False, deleting nothing, when
    another edit came first. A version that names it makes the statement fail (its foreign key)."""
    deleted = tx.execute(
        sa.delete(DRAFT).where(DRAFT.c.id == draft_id, DRAFT.c.revision == revision)
    ).rowcount  # type: ignore[attr-defined]
    return bool(deleted)
