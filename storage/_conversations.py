"""Conversations (sessions) and their turns, kept so that any server process can resume a chat."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select

from storage._clock import utcnow
from storage._database import Transaction
from storage._models import ConversationSession, Turn, Version
from storage._tables import (
    GENERATION,
    SESSION,
    TURN,
    TURN_BLOB,
    VERSION,
    from_row,
    full_row,
    insert_params,
    one_or_none,
)


@dataclass(frozen=True, slots=True)
class NewTurn:
    role: str
    # [{"text": ...} | {"blob": sha256, "mime_type": ..., "size": ...}], plus optional
    # "thought" and "thought_signature" (base64) keys.
    parts: list[dict[str, object]]


_SESSION_OF = sa.select(SESSION).where(
    SESSION.c.generation_id == sa.bindparam("generation_id"),
    # A deleted generation's conversation is gone with it.
    sa.exists().where(GENERATION.c.id == SESSION.c.generation_id, GENERATION.c.delete_time.is_(None)),
)
_OWNED_SESSION_OF = _SESSION_OF.where(SESSION.c.owner == sa.bindparam("owner"))


def _build_branch() -> sa.Select[Any]:
    chain = (
        sa.select(TURN.c.id, TURN.c.parent_turn_id)
        .where(TURN.c.id == sa.bindparam("head_turn_id"))
        .cte("chain", recursive=True)
    )
    chain = chain.union_all(
        sa.select(TURN.c.id, TURN.c.parent_turn_id).join(chain, TURN.c.id == chain.c.parent_turn_id)
    )
    return sa.select(TURN).where(TURN.c.id.in_(sa.select(chain.c.id))).order_by(TURN.c.number)


_BRANCH = _build_branch()


def get_conversation(tx: Transaction, *, owner: str | None, generation_id: str) -> ConversationSession | None:
    """The generation's conversation, if `owner` owns it; with `owner` None, whoever owns it."""
    if owner is None:
        return one_or_none(tx, ConversationSession, _SESSION_OF, generation_id=generation_id)
    return one_or_none(tx, ConversationSession, _OWNED_SESSION_OF, generation_id=generation_id, owner=owner)


def branch_turns(tx: Transaction, *, head_turn_id: int | None) -> list[Turn]:
    """The turns of one branch, from the start of the session to `head_turn_id`, oldest first."""
    if head_turn_id is None:
        return []
    return [from_row(Turn, row) for row in tx.execute(_BRANCH, {"head_turn_id": head_turn_id})]


def list_turns(tx: Transaction, *, session_id: str, after_number: int, limit: int) -> Sequence[Turn]:
    statement = (
        select(Turn)
        .where(Turn.session_id == session_id, Turn.number > after_number)
        .order_by(col(Turn.number))
        .limit(limit)
    )
    return tx.exec(statement).all()


def turn_numbers(tx: Transaction, turn_ids: Sequence[int]) -> dict[int, int]:
    """The session-wide numbers of turns, by id."""
    if not turn_ids:
        return {}
    rows = tx.execute(
        sa.select(col(Turn.id), col(Turn.number)).where(col(Turn.id).in_(sorted(set(turn_ids))))
    )
    return {turn_id: number for turn_id, number in rows if turn_id is not None}


def version_numbers(tx: Transaction, version_ids: Sequence[int]) -> dict[int, int]:
    """The numbers of versions (within their generation), by id."""
    if not version_ids:
        return {}
    rows = tx.execute(
        sa.select(col(Version.id), col(Version.number)).where(col(Version.id).in_(sorted(set(version_ids))))
    )
    return {version_id: number for version_id, number in rows if version_id is not None}


def record_exchange(tx: Transaction, *, version: Version, session_id: str, turns: Sequence[NewTurn]) -> None:
    """Adds a version's exchange to its branch (after its base turn) and makes it the version's head.

    Turn numbers are the session's next ones: the session's row is updated first, which locks it
    (PostgreSQL; SQLite's write transaction holds the whole database) until the transaction ends,
    so the outputs of a fan-out, whose jobs run at once, never take the same number.
    """
    assert version.id is not None
    now = utcnow()
    tx.execute(_COUNT_EXCHANGE, {"session_id": session_id, "now": now})
    number = tx.execute(_LAST_TURN_NUMBER, {"session_id": session_id}).scalar_one()
    parent_turn_id = version.base_turn_id
    links: list[dict[str, object]] = []
    for new in turns:
        number += 1
        parent_turn_id = tx.execute(
            _INSERT_TURN,
            insert_params(
                full_row(
                    TURN,
                    {
                        "session_id": session_id,
                        "number": number,
                        "parent_turn_id": parent_turn_id,
                        "version_id": version.id,
                        "role": new.role,
                        "parts": new.parts,
                        "create_time": now,
                    },
                )
            ),
        ).scalar_one()
        blobs = {str(part["blob"]) for part in new.parts if part.get("blob")}
        links.extend({"turn_id": parent_turn_id, "blob_sha256": sha256} for sha256 in sorted(blobs))
    if links:
        # The turn's inline data, as references the blob collector sees (the parts hold only the hash).
        tx.execute(_INSERT_TURN_BLOB, links)
    tx.execute(_SET_HEAD_TURN, {"version_id": version.id, "new_head_turn_id": parent_turn_id})
    version.head_turn_id = parent_turn_id


_LAST_TURN_NUMBER = sa.select(sa.func.coalesce(sa.func.max(TURN.c.number), 0)).where(
    TURN.c.session_id == sa.bindparam("session_id")
)
_INSERT_TURN = sa.insert(TURN).returning(TURN.c.id)
_INSERT_TURN_BLOB = sa.insert(TURN_BLOB)
_SET_HEAD_TURN = (
    sa.update(VERSION)
    .where(VERSION.c.id == sa.bindparam("version_id"))
    .values(head_turn_id=sa.bindparam("new_head_turn_id"))
)
_COUNT_EXCHANGE = (
    sa.update(SESSION)
    .where(SESSION.c.id == sa.bindparam("session_id"))
    .values(turn_count=SESSION.c.turn_count + 1, update_time=sa.bindparam("now"))
)
