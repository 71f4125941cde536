"""Place versions on their session branch; one running job per session.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 22:55:08
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RUNNING = sa.text("status = 'RUNNING'")


def upgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("session_id", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True)
        )
        batch_op.create_foreign_key("fk_job_session_id_session", "session", ["session_id"], ["id"])
        batch_op.create_index(
            "uq_job_running_session",
            ["session_id"],
            unique=True,
            sqlite_where=_RUNNING,
            postgresql_where=_RUNNING,
        )
    with op.batch_alter_table("version", schema=None) as batch_op:
        batch_op.add_column(sa.Column("base_turn_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("head_turn_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("turn", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("version", schema=None) as batch_op:
        batch_op.drop_column("turn")
        batch_op.drop_column("head_turn_id")
        batch_op.drop_column("base_turn_id")
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_index("uq_job_running_session", sqlite_where=_RUNNING, postgresql_where=_RUNNING)
        batch_op.drop_constraint("fk_job_session_id_session", type_="foreignkey")
        batch_op.drop_column("session_id")
