"""Compute hosts (hypervisors reached through libvirt). The built-in inventory is the host
``builtin``: it is not a row, it always exists."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from hostimage.db.base import Base, UTCDateTime, new_id, utcnow


class Host(Base):
    __tablename__ = "hosts"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    driver: Mapped[str] = mapped_column(String(16), default="libvirt")
    uri: Mapped[str] = mapped_column(String(1024))
    # Domains found on the host belong to this project until a sysadmin moves them.
    domain_id: Mapped[str] = mapped_column(ForeignKey("domains.id"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    storage_pool: Mapped[str] = mapped_column(String(128))
    network: Mapped[str | None] = mapped_column(String(128), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="unknown")
    status_reason: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    versions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
