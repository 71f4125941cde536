"""Delta manifests, change counts and merge parents.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21 23:36:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COUNTERS = ("added_count", "modified_count", "deleted_count", "manifest_chain", "manifest_delta_rows")


def upgrade() -> None:
    with op.batch_alter_table("version", schema=None) as batch_op:
        batch_op.add_column(sa.Column("merge_parent_number", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("manifest_base_id", sa.Integer(), nullable=True))
        for name in _COUNTERS:
            batch_op.add_column(sa.Column(name, sa.Integer(), nullable=False, server_default="0"))
    with op.batch_alter_table("manifest_entry", schema=None) as batch_op:
        batch_op.alter_column(
            "blob_sha256", existing_type=sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True
        )
        batch_op.add_column(sa.Column("deleted", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("manifest_entry", schema=None) as batch_op:
        batch_op.drop_column("deleted")
        batch_op.alter_column(
            "blob_sha256", existing_type=sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False
        )
    with op.batch_alter_table("version", schema=None) as batch_op:
        for name in reversed(_COUNTERS):
            batch_op.drop_column(name)
        batch_op.drop_column("manifest_base_id")
        batch_op.drop_column("merge_parent_number")
