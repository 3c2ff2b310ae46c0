"""Login attempts for throttling (SPEC §9.1), shared by every API process."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from hostimage.db.base import Base, BigId, UTCDateTime


class LoginAttempt(Base):
    """One failed login, or one still being checked (``pending``), for one throttle key
    (a user or a client address: see :mod:`hostimage.domain.throttle`). Rows older than the
    throttle window mean nothing and are pruned as new ones come."""

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_key_at", "key", "at"),
        Index("ix_login_attempts_at", "at"),
        Index("ix_login_attempts_attempt", "attempt"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(64))
    # One login's rows (its user's and its address's) share this id.
    attempt: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    pending: Mapped[bool] = mapped_column(default=True)
