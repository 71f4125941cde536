"""Blobs stored in parts (a big upload streams into storage part by part), and the index that
counts a principal's unfinished jobs against its cap.

Revision ID: 0012
Revises: 0009
Create Date: 2026-12-03 07:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "blob_part",
        sa.Column("blob_sha256", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("part_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.ForeignKeyConstraint(["blob_sha256"], ["blob.sha256"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["part_sha256"], ["blob.sha256"]),
        sa.PrimaryKeyConstraint("blob_sha256", "position"),
    )
    op.create_index("ix_blob_part_part_sha256", "blob_part", ["part_sha256"], unique=False)
    op.create_index("ix_job_owner_status", "job", ["owner", "status"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_job_owner_status", table_name="job")
    op.drop_index("ix_blob_part_part_sha256", table_name="blob_part")
    op.drop_table("blob_part")
