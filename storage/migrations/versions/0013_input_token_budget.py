"""A model's budget of input tokens per minute (tokens_per_minute), a second token bucket on its
shared state beside the requests one.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("model_state", schema=None) as batch_op:
        batch_op.add_column(sa.Column("input_tokens", sa.Float(), nullable=False, server_default="0"))
        batch_op.add_column(
            sa.Column("input_tokens_time", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("model_state", schema=None) as batch_op:
        batch_op.drop_column("input_tokens_time")
        batch_op.drop_column("input_tokens")
