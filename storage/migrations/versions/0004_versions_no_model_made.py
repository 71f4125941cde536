"""Versions no model made: a merge ends where its ours side's conversation ends; an upload has no turn.

Merges made before kept no place in the conversation, so a tweak of one started a new
conversation instead of continuing its ours side's. Uploads counted a turn they never had.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


_PLACE_MERGES = sa.text(
    """
    UPDATE version SET head_turn_id = (
        SELECT ours.head_turn_id FROM version AS ours
        WHERE ours.generation_id = version.generation_id AND ours.number = version.parent_number
    )
    WHERE kind = 'MERGE' AND head_turn_id IS NULL AND EXISTS (
        SELECT 1 FROM version AS ours
        WHERE ours.generation_id = version.generation_id AND ours.number = version.parent_number
        AND ours.head_turn_id IS NOT NULL
    )
    """
)


def upgrade() -> None:
    connection = op.get_bind()
    # A merge whose ours side is itself a merge is placed once that one is: repeat until done.
    while connection.execute(_PLACE_MERGES).rowcount:
        pass
    op.execute("UPDATE version SET turn = 0 WHERE kind = 'UPLOAD' AND head_turn_id IS NULL")


def downgrade() -> None:
    op.execute("UPDATE version SET turn = 1 WHERE kind = 'UPLOAD' AND head_turn_id IS NULL")
    op.execute("UPDATE version SET head_turn_id = NULL WHERE kind = 'MERGE'")
