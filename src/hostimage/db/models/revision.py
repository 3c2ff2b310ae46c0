"""The catalogue revision: a counter bumped after every committed change to host images."""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer
from sqlalchemy.orm import Mapped, mapped_column

from hostimage.db.base import Base


class CatalogueRevision(Base):
    """One row (id 1). Readers compare it with the revision a cached count was taken at."""

    __tablename__ = "catalogue_revision"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    revision: Mapped[int] = mapped_column(BigInteger, default=0)
