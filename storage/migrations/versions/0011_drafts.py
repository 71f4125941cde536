"""Drafts: prompts a text model drafted (DraftPrompt), and the draft a version's prompt came from.

Revision ID: 0011
Revises: 0007
Create Date: 2026-12-10 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "draft",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("owner", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("context", sa.Text(), nullable=False),
        sa.Column("model", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("drafter_model", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("provider", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("drafted_prompt", sa.Text(), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("thinking_tokens", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("create_time", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("update_time", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_draft_owner_id", "draft", ["owner", "id"], unique=False)
    with op.batch_alter_table("version", schema=None) as batch_op:
        batch_op.add_column(sa.Column("draft_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))
        batch_op.create_foreign_key("fk_version_draft_id_draft", "draft", ["draft_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("version", schema=None) as batch_op:
        batch_op.drop_constraint("fk_version_draft_id_draft", type_="foreignkey")
        batch_op.drop_column("draft_id")
    op.drop_index("ix_draft_owner_id", table_name="draft")
    op.drop_table("draft")
