"""Host images and the share targets of host images and images."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hostimage.db.base import Base, UTCDateTime, new_id, utcnow
from hostimage.db.transitions import compare_and_set, guarded
from hostimage.domain.status import HOST_IMAGE


@guarded(HOST_IMAGE)
class HostImage(Base):
    __tablename__ = "host_images"
    __table_args__ = (
        UniqueConstraint("domain_id", "name"),
        Index("ix_host_images_project_created", "project_id", "created_at", "id"),
        Index("ix_host_images_domain_created", "domain_id", "created_at", "id"),
        Index("ix_host_images_scope_created", "share_scope", "created_at", "id"),
        Index("ix_host_images_created", "created_at", "id"),
        Index("ix_host_images_name", "name"),
        Index("ix_host_images_size", "size", "id"),
        Index("ix_host_images_updated", "updated_at", "id"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(String(1024), default="")
    status: Mapped[str] = mapped_column(String(16), default="queued")
    status_reason: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    domain_id: Mapped[str] = mapped_column(ForeignKey("domains.id"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    share_scope: Mapped[str] = mapped_column(String(16), default="none")
    protected: Mapped[bool] = mapped_column(default=True)
    is_standard: Mapped[bool] = mapped_column(default=False)
    external_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    os_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    os_distribution: Mapped[str | None] = mapped_column(String(64), nullable=True)
    os_version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    os_arch: Mapped[str | None] = mapped_column(String(32), nullable=True)
    os_language: Mapped[str | None] = mapped_column(String(32), nullable=True)
    disk_driver: Mapped[str] = mapped_column(String(16), default="auto")
    net_driver: Mapped[str] = mapped_column(String(16), default="auto")
    min_ram_mb: Mapped[int] = mapped_column(default=0)
    hypervisor: Mapped[str | None] = mapped_column(String(32), nullable=True)
    boot_mode: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # Derived from the sub-images, kept current by every write that changes them.
    disk_format: Mapped[str | None] = mapped_column(String(16), nullable=True)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    virtual_size: Mapped[int] = mapped_column(BigInteger, default=0)
    min_disk_mb: Mapped[int | None] = mapped_column(nullable=True)
    sub_image_count: Mapped[int] = mapped_column(default=0)
    source_server_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __mapper_args__ = compare_and_set(status)


class Share(Base):
    """One share target of a host image or image: ``target_kind`` is project or domain."""

    __tablename__ = "shares"
    __table_args__ = (Index("ix_shares_target", "target_kind", "target_id", "resource_id"),)
    resource_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    target_kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    target_id: Mapped[str] = mapped_column(String(32), primary_key=True)
