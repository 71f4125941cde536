"""Conversation sessions and their turns, kept so that any server process can resume a chat."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session, col, select

from storage._models import ConversationSession, Turn, Version
from storage._versions import utcnow


@dataclass(frozen=True, slots=True)
class NewTurn:
    role: str
    # [{"text": ...} | {"blob": sha256, "mime_type": ..., "size": ...}], plus optional
    # "thought" and "thought_signature" (base64) keys.
    parts: list[dict[str, object]]


def get_session(session: Session, *, owner: str, generation_id: str) -> ConversationSession | None:
    statement = select(ConversationSession).where(
        ConversationSession.generation_id == generation_id, ConversationSession.owner == owner
    )
    return session.exec(statement).one_or_none()


def branch_turns(session: Session, *, head_turn_id: int | None) -> list[Turn]:
    """The turns of one branch, from the start of the session to `head_turn_id`, oldest first."""
    if head_turn_id is None:
        return []
    chain = (
        sa.select(col(Turn.id), col(Turn.parent_turn_id))
        .where(col(Turn.id) == head_turn_id)
        .cte("chain", recursive=True)
    )
    parent = sa.select(col(Turn.id), col(Turn.parent_turn_id)).join(
        chain, col(Turn.id) == chain.c.parent_turn_id
    )
    chain = chain.union_all(parent)
    statement = select(Turn).where(col(Turn.id).in_(sa.select(chain.c.id))).order_by(col(Turn.number))
    return list(session.exec(statement).all())


def list_turns(session: Session, *, session_id: str, after_number: int, limit: int) -> Sequence[Turn]:
    statement = (
        select(Turn)
        .where(Turn.session_id == session_id, Turn.number > after_number)
        .order_by(col(Turn.number))
        .limit(limit)
    )
    return session.exec(statement).all()


def turn_numbers(session: Session, turn_ids: Sequence[int]) -> dict[int, int]:
    """The session-wide numbers of turns, by id."""
    if not turn_ids:
        return {}
    rows = session.execute(
        sa.select(col(Turn.id), col(Turn.number)).where(col(Turn.id).in_(sorted(set(turn_ids))))
    )
    return dict(rows.tuples().all())


def version_numbers(session: Session, version_ids: Sequence[int]) -> dict[int, int]:
    """The numbers of versions (within their generation), by id."""
    if not version_ids:
        return {}
    rows = session.execute(
        sa.select(col(Version.id), col(Version.number)).where(col(Version.id).in_(sorted(set(version_ids))))
    )
    return {version_id: number for version_id, number in rows.tuples() if version_id is not None}


def record_exchange(session: Session, *, version: Version, session_id: str, turns: Sequence[NewTurn]) -> None:
    """Adds a version's exchange to its branch (after its base turn) and makes it the version's head.

    The caller holds the session's only running job, so turn numbers cannot race.
    """
    assert version.id is not None
    now = utcnow()
    number = session.execute(
        sa.select(sa.func.coalesce(sa.func.max(col(Turn.number)), 0)).where(
            col(Turn.session_id) == session_id
        )
    ).scalar_one()
    parent_turn_id = version.base_turn_id
    for new in turns:
        number += 1
        turn = Turn(
            session_id=session_id,
            number=number,
            parent_turn_id=parent_turn_id,
            version_id=version.id,
            role=new.role,
            parts=new.parts,
            create_time=now,
        )
        session.add(turn)
        session.flush()
        parent_turn_id = turn.id
    session.execute(
        sa.update(Version).where(col(Version.id) == version.id).values(head_turn_id=parent_turn_id)
    )
    version.head_turn_id = parent_turn_id
    session.execute(
        sa.update(ConversationSession)
        .where(col(ConversationSession.id) == session_id)
        .values(turn_count=ConversationSession.turn_count + 1, update_time=now)
    )
