"""Fan-out and cost: a version knows its batch and variant, and its ledger the totals of what its
model used (tokens, images) and what that cost; usage is summed by owner and day.

Revision ID: 0010
Revises: 0007
Create Date: 2026-11-29 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TOTALS = ("input_tokens", "output_tokens", "images")


def upgrade() -> None:
    with op.batch_alter_table("version", schema=None) as batch_op:
        batch_op.add_column(sa.Column("batch_number", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("variant", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        for name in _TOTALS:
            batch_op.add_column(sa.Column(name, sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("cost", sa.Float(), nullable=False, server_default="0"))
        batch_op.create_index("ix_version_owner_complete_time", ["owner", "complete_time"], unique=False)
        batch_op.create_index(
            "ix_version_generation_batch", ["generation_id", "batch_number", "number"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("version", schema=None) as batch_op:
        batch_op.drop_index("ix_version_generation_batch")
        batch_op.drop_index("ix_version_owner_complete_time")
        for name in ("cost", *_TOTALS, "variant", "batch_number"):
            batch_op.drop_column(name)
