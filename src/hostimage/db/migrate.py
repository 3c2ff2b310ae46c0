"""Run Alembic migrations programmatically (``hostimage db upgrade``)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from hostimage.db.engine import make_engine, normalize_url

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` to ``revision`` (idempotent), then refresh the planner's
    statistics on SQLite, which never gathers them by itself (without them the list views
    fall back to slow multi-index plans)."""
    command.upgrade(alembic_config(url), revision)
    if normalize_url(url).startswith("sqlite"):
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql("PRAGMA optimize=0x10002")
        engine.dispose()
