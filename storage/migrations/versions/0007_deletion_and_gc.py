"""Deletion and garbage collection: soft-deleted generations, turns' blobs as references, and the
indexes that let a purge and the blob collector find what refers to a row.

Blobs stored before this revision have no create_time: the collector takes them for old.
A turn's inline data was referred to only from its JSON parts: each such reference becomes a
turn_blob row, a foreign key the collector sees.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TURNS = sa.table("turn", sa.column("id", sa.Integer), sa.column("parts", sa.JSON))
_TURN_BLOB = sa.table("turn_blob", sa.column("turn_id", sa.Integer), sa.column("blob_sha256", sa.String))
_BATCH = 1000


def upgrade() -> None:
    with op.batch_alter_table("blob", schema=None) as batch_op:
        batch_op.add_column(sa.Column("create_time", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
    with op.batch_alter_table("generation", schema=None) as batch_op:
        batch_op.add_column(sa.Column("delete_time", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("expire_time", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.create_index("ix_generation_update_time", ["update_time"], unique=False)
        batch_op.create_index("ix_generation_expire_time", ["expire_time"], unique=False)
    op.create_index("ix_manifest_entry_blob_sha256", "manifest_entry", ["blob_sha256"], unique=False)
    op.create_index("ix_version_attachment_blob_sha256", "version_attachment", ["blob_sha256"], unique=False)
    op.create_index("ix_job_session_id", "job", ["session_id"], unique=False)
    op.create_index("ix_turn_parent_turn_id", "turn", ["parent_turn_id"], unique=False)
    op.create_index("ix_turn_version_id", "turn", ["version_id"], unique=False)
    op.create_table(
        "turn_blob",
        sa.Column("turn_id", sa.Integer(), nullable=False),
        sa.Column("blob_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.ForeignKeyConstraint(["blob_sha256"], ["blob.sha256"]),
        sa.ForeignKeyConstraint(["turn_id"], ["turn.id"]),
        sa.PrimaryKeyConstraint("turn_id", "blob_sha256"),
    )
    op.create_index("ix_turn_blob_blob_sha256", "turn_blob", ["blob_sha256"], unique=False)
    _link_turn_blobs()


def _link_turn_blobs() -> None:
    connection = op.get_bind()
    after = 0
    while True:
        rows = connection.execute(
            sa.select(_TURNS.c.id, _TURNS.c.parts)
            .where(_TURNS.c.id > after)
            .order_by(_TURNS.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        links = {
            (turn_id, str(part["blob"]))
            for turn_id, parts in rows
            for part in parts or ()
            if isinstance(part, dict) and part.get("blob")
        }
        if links:
            connection.execute(
                sa.insert(_TURN_BLOB), [{"turn_id": t, "blob_sha256": sha} for t, sha in sorted(links)]
            )
        after = rows[-1][0]


def downgrade() -> None:
    op.drop_index("ix_turn_blob_blob_sha256", table_name="turn_blob")
    op.drop_table("turn_blob")
    op.drop_index("ix_turn_version_id", table_name="turn")
    op.drop_index("ix_turn_parent_turn_id", table_name="turn")
    op.drop_index("ix_job_session_id", table_name="job")
    op.drop_index("ix_version_attachment_blob_sha256", table_name="version_attachment")
    op.drop_index("ix_manifest_entry_blob_sha256", table_name="manifest_entry")
    with op.batch_alter_table("generation", schema=None) as batch_op:
        batch_op.drop_index("ix_generation_expire_time")
        batch_op.drop_index("ix_generation_update_time")
        batch_op.drop_column("expire_time")
        batch_op.drop_column("delete_time")
    with op.batch_alter_table("blob", schema=None) as batch_op:
        batch_op.drop_column("create_time")
