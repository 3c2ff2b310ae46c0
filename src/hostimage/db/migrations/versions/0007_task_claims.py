"""task claims (fencing), retry backoff, and an index for the garbage collector

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 21:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("claim", sa.String(32), nullable=True))
        batch.add_column(sa.Column("run_after", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_tasks_kind_created", "tasks", ["kind", "created_at"])
    # The garbage collector asks which of a batch of keys rows reference.
    op.create_index("ix_format_copies_object_key", "format_copies", ["object_key"])
    # Tasks running when the service was upgraded belong to no claim: requeue them, their
    # handlers finish what was left.
    op.execute("UPDATE tasks SET status = 'queued', worker_id = NULL WHERE status = 'running'")


def downgrade() -> None:
    op.drop_index("ix_format_copies_object_key", table_name="format_copies")
    op.drop_index("ix_tasks_kind_created", table_name="tasks")
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("run_after")
        batch.drop_column("claim")
