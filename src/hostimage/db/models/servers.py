"""Servers (VMs) of the built-in compute inventory and their disks."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hostimage.db.base import Base, UTCDateTime, new_id, utcnow
from hostimage.db.transitions import compare_and_set, guarded
from hostimage.domain.status import SERVER


@guarded(SERVER)
class Server(Base):
    __tablename__ = "servers"
    __table_args__ = (Index("ix_servers_project_created", "project_id", "created_at", "id"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16), default="creating")
    status_reason: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    domain_id: Mapped[str] = mapped_column(ForeignKey("domains.id"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    os_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    hostname: Mapped[str | None] = mapped_column(String(64), nullable=True)
    login_user: Mapped[str | None] = mapped_column(String(64), nullable=True)
    disk_driver: Mapped[str | None] = mapped_column(String(16), nullable=True)
    net_driver: Mapped[str | None] = mapped_column(String(16), nullable=True)
    host_image_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __mapper_args__ = compare_and_set(status)


class ServerDisk(Base):
    """One disk file of a server; ``path`` is relative to the service's disk directory."""

    __tablename__ = "server_disks"
    __table_args__ = (UniqueConstraint("server_id", "idx"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    server_id: Mapped[str] = mapped_column(ForeignKey("servers.id", ondelete="CASCADE"))
    idx: Mapped[int] = mapped_column()
    size: Mapped[int] = mapped_column(BigInteger)
    format: Mapped[str] = mapped_column(String(16), default="qcow2")
    path: Mapped[str] = mapped_column(String(256))
    source_image_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
