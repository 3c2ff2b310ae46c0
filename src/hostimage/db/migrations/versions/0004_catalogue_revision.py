"""catalogue revision (a sequence on PostgreSQL, a row on SQLite); trigram name index

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 21:40:00
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A random start: a process that serves several databases (tests, a restored backup)
    # never takes one database's revision for another's.
    start = secrets.randbits(62)
    if op.get_bind().dialect.name == "postgresql":
        # A sequence: bumping it is not transactional and needs no WAL flush of its own.
        op.execute(f"CREATE SEQUENCE catalogue_revision_seq START WITH {start}")
        op.execute("SELECT nextval('catalogue_revision_seq')")
        # Name search is a substring match (ILIKE '%text%'): only a trigram index serves it.
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute(
            "CREATE INDEX ix_host_images_name_trgm ON host_images USING gin (name gin_trgm_ops)"
        )
        return
    op.create_table(
        "catalogue_revision",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_catalogue_revision")),
    )
    op.execute(f"INSERT INTO catalogue_revision (id, revision) VALUES (1, {start})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_host_images_name_trgm")
        op.execute("DROP SEQUENCE IF EXISTS catalogue_revision_seq")
        return
    op.drop_table("catalogue_revision")
