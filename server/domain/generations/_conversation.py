"""The conversation behind a generation (the API's Session) and its turns."""

from __future__ import annotations

import storage
from server.domain import _transactions as transactions
from server.domain.generations._base import ServiceBase, not_found, version_row
from server.domain.principals import Principal
from server.domain.resources import Conversation, Turn, VersionRef, conversation_of, turn_of


class ConversationVerbs(ServiceBase):
    async def get_conversation(self, *, caller: Principal, generation_id: str) -> Conversation:
        row = await transactions.read(self._db, lambda tx: _conversation_row(tx, caller, generation_id))
        return conversation_of(row)

    async def list_turns(
        self,
        *,
        caller: Principal,
        generation_id: str,
        after_number: int,
        limit: int,
        branch_of: VersionRef | None,
    ) -> list[Turn]:
        """Turns in order, each with the number of the version that added it and of its parent turn."""

        def work(tx: storage.Transaction) -> list[Turn]:
            conversation = _conversation_row(tx, caller, generation_id)
            if branch_of is None:
                turns = list(
                    storage.list_turns(tx, session_id=conversation.id, after_number=after_number, limit=limit)
                )
            else:
                head = version_row(tx, caller, branch_of).head_turn_id
                branch = storage.branch_turns(tx, head_turn_id=head)
                turns = [turn for turn in branch if turn.number > after_number][:limit]
            numbers = storage.version_numbers(tx, [t.version_id for t in turns if t.version_id])
            parents = storage.turn_numbers(tx, [t.parent_turn_id for t in turns if t.parent_turn_id])
            return [
                turn_of(
                    turn,
                    version_number=numbers.get(turn.version_id) if turn.version_id else None,
                    parent_number=parents.get(turn.parent_turn_id) if turn.parent_turn_id else None,
                )
                for turn in turns
            ]

        return await transactions.read(self._db, work)


def _conversation_row(
    tx: storage.Transaction, caller: Principal, generation_id: str
) -> storage.ConversationSession:
    row = storage.get_conversation(tx, owner=caller.owner_filter, generation_id=generation_id)
    if row is None:
        raise not_found("session", f"generations/{generation_id}/session", "SESSION_NOT_FOUND")
    return row
