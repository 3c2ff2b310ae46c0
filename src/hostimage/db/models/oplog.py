"""The operation log: append-only, written in the transaction of the change it records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from hostimage.db.base import Base, BigId, UTCDateTime, utcnow


class LogEntry(Base):
    __tablename__ = "op_logs"
    __table_args__ = (
        Index("ix_op_logs_root", "root_id", "id"),
        Index("ix_op_logs_obj", "obj_id", "id"),
        Index("ix_op_logs_owner_project", "owner_project_id", "id"),
        Index("ix_op_logs_owner_domain", "owner_domain_id", "id"),
        Index("ix_op_logs_time", "time"),
    )
    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    obj_type: Mapped[str] = mapped_column(String(16))
    obj_id: Mapped[str] = mapped_column(String(32))
    obj_name: Mapped[str] = mapped_column(String(160))
    # The host image an entry belongs to (itself or its sub-image's), for the log tab.
    root_id: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(32))
    success: Mapped[bool] = mapped_column(default=True)
    notes: Mapped[Any] = mapped_column(JSON, default=dict)
    actor_user_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    actor_user_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    actor_project_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    actor_project_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    owner_domain_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    owner_domain_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    owner_project_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    owner_project_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    client_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
