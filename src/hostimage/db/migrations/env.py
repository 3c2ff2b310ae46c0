"""Alembic environment: online migrations against the configured URL."""

from __future__ import annotations

from alembic import context

from hostimage.db.base import Base
from hostimage.db.engine import make_engine
from hostimage.db.models import __all__ as _models  # noqa: F401  (registers tables)

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url
    connectable = make_engine(url)
    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    connectable.dispose()


run_migrations_online()
