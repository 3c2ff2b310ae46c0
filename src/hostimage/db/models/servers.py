"""Servers (VMs) and their disks: of the built-in inventory (disk files the service made) or
domains of a libvirt host (``external_id`` is the domain UUID)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, String, UniqueConstraint, true
from sqlalchemy.orm import Mapped, mapped_column

from hostimage.db.base import Base, UTCDateTime, new_id, utcnow
from hostimage.db.transitions import compare_and_set, guarded
from hostimage.domain.status import SERVER


@guarded(SERVER)
class Server(Base):
    __tablename__ = "servers"
    __table_args__ = (
        Index("ix_servers_project_created", "project_id", "created_at", "id"),
        UniqueConstraint("host_id", "external_id", name="uq_servers_host_external"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    # "builtin" or a row of ``hosts`` (no foreign key: the built-in host is not a row).
    host_id: Mapped[str] = mapped_column(String(32), default="builtin", server_default="builtin")
    external_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # False for domains found on a host: the service never modifies or deletes those.
    created_here: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
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
    """One disk of a server. Built-in: ``path`` is relative to the service's disk directory.
    libvirt: ``path`` is the source on the host, ``pool``/``volume`` name its volume."""

    __tablename__ = "server_disks"
    __table_args__ = (UniqueConstraint("server_id", "idx"),)
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    server_id: Mapped[str] = mapped_column(ForeignKey("servers.id", ondelete="CASCADE"))
    idx: Mapped[int] = mapped_column()
    size: Mapped[int] = mapped_column(BigInteger)
    format: Mapped[str] = mapped_column(String(16), default="qcow2")
    path: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    target: Mapped[str | None] = mapped_column(String(16), nullable=True)
    pool: Mapped[str | None] = mapped_column(String(128), nullable=True)
    volume: Mapped[str | None] = mapped_column(String(256), nullable=True)
    source_image_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
