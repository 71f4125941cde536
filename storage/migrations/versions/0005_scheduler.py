"""The scheduler: jobs know their model and owner, models their shared state, versions their ledger,
and QUEUED events the version's place in the queue.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LEDGER_SECONDS = ("queue_seconds", "run_seconds", "cooldown_seconds")


def upgrade() -> None:
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "model", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False, server_default=""
            )
        )
        batch_op.add_column(
            sa.Column(
                "owner", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False, server_default=""
            )
        )
        batch_op.add_column(sa.Column("queued_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("claimed_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("reported_position", sa.Integer(), nullable=True))
        batch_op.create_index("ix_job_status_model_owner", ["status", "model", "owner", "id"], unique=False)
    op.execute(
        """
        UPDATE job SET
            model = (SELECT version.model FROM version WHERE version.id = job.version_id),
            owner = (SELECT version.owner FROM version WHERE version.id = job.version_id),
            queued_at = create_time
        """
    )
    with op.batch_alter_table("version", schema=None) as batch_op:
        for name in _LEDGER_SECONDS:
            batch_op.add_column(sa.Column(name, sa.Float(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("usage", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.create_index("ix_version_model_complete_time", ["model", "complete_time"], unique=False)
    op.execute(
        "UPDATE version SET attempts = (SELECT job.attempts FROM job WHERE job.version_id = version.id)"
        " WHERE EXISTS (SELECT 1 FROM job WHERE job.version_id = version.id)"
    )
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.add_column(sa.Column("queue_position", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("estimated_start_time", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("estimated_complete_time", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )
    op.create_table(
        "model_state",
        sa.Column("model", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("cooldown_until", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("cooldown_step", sa.Float(), nullable=False),
        sa.Column("request_tokens", sa.Float(), nullable=False),
        sa.Column("tokens_time", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("update_time", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("model"),
    )


def downgrade() -> None:
    op.drop_table("model_state")
    with op.batch_alter_table("event", schema=None) as batch_op:
        batch_op.drop_column("estimated_complete_time")
        batch_op.drop_column("estimated_start_time")
        batch_op.drop_column("queue_position")
    with op.batch_alter_table("version", schema=None) as batch_op:
        batch_op.drop_index("ix_version_model_complete_time")
        batch_op.drop_column("usage")
        batch_op.drop_column("attempts")
        for name in reversed(_LEDGER_SECONDS):
            batch_op.drop_column(name)
    with op.batch_alter_table("job", schema=None) as batch_op:
        batch_op.drop_index("ix_job_status_model_owner")
        batch_op.drop_column("reported_position")
        batch_op.drop_column("claimed_at")
        batch_op.drop_column("queued_at")
        batch_op.drop_column("owner")
        batch_op.drop_column("model")
