"""compute hosts: libvirt hosts, servers on them, disks with targets and volumes

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08 01:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import hostimage.db.base

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hosts",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("driver", sa.String(16), nullable=False),
        sa.Column("uri", sa.String(1024), nullable=False),
        sa.Column("domain_id", sa.String(32), sa.ForeignKey("domains.id"), nullable=False),
        sa.Column("project_id", sa.String(32), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("storage_pool", sa.String(128), nullable=False),
        sa.Column("network", sa.String(128), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_reason", sa.String(1024), nullable=True),
        sa.Column("versions", sa.JSON(), nullable=False),
        sa.Column("synced_at", hostimage.db.base.UTCDateTime(), nullable=True),
        sa.Column("created_at", hostimage.db.base.UTCDateTime(), nullable=False),
        sa.Column("updated_at", hostimage.db.base.UTCDateTime(), nullable=False),
    )
    with op.batch_alter_table("servers") as batch:
        batch.add_column(
            sa.Column("host_id", sa.String(32), nullable=False, server_default="builtin")
        )
        batch.add_column(sa.Column("external_id", sa.String(64), nullable=True))
        batch.add_column(
            sa.Column("created_here", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch.create_unique_constraint("uq_servers_host_external", ["host_id", "external_id"])
    with op.batch_alter_table("server_disks") as batch:
        batch.alter_column(
            "path", existing_type=sa.String(256), type_=sa.String(1024), nullable=True
        )
        batch.add_column(sa.Column("target", sa.String(16), nullable=True))
        batch.add_column(sa.Column("pool", sa.String(128), nullable=True))
        batch.add_column(sa.Column("volume", sa.String(256), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("server_disks") as batch:
        batch.drop_column("volume")
        batch.drop_column("pool")
        batch.drop_column("target")
        batch.alter_column(
            "path", existing_type=sa.String(1024), type_=sa.String(256), nullable=False
        )
    with op.batch_alter_table("servers") as batch:
        batch.drop_constraint("uq_servers_host_external", type_="unique")
        batch.drop_column("created_here")
        batch.drop_column("external_id")
        batch.drop_column("host_id")
    op.drop_table("hosts")
