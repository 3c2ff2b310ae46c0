"""Images: standalone system images and the sub-images of host images."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from hostimage.db.base import Base, UTCDateTime, new_id, utcnow
from hostimage.db.transitions import compare_and_set, guarded
from hostimage.domain.status import IMAGE


@guarded(IMAGE)
class Image(Base):
    __tablename__ = "images"
    __table_args__ = (
        Index("ix_images_host_image", "host_image_id", "idx"),
        Index("ix_images_project_created", "project_id", "created_at", "id"),
        Index("ix_images_created", "created_at", "id"),
        Index("ix_images_object_key", "object_key"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(160))
    description: Mapped[str] = mapped_column(String(1024), default="")
    status: Mapped[str] = mapped_column(String(16), default="queued")
    status_reason: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    domain_id: Mapped[str] = mapped_column(ForeignKey("domains.id"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    share_scope: Mapped[str] = mapped_column(String(16), default="none")
    disk_format: Mapped[str] = mapped_column(String(16))
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    virtual_size: Mapped[int] = mapped_column(BigInteger, default=0)
    checksum: Mapped[str | None] = mapped_column(String(80), nullable=True)
    # Stored data; several rows may share one object (compose), so data is deleted by refcount.
    object_key: Mapped[str | None] = mapped_column(String(256), nullable=True)
    host_image_id: Mapped[str | None] = mapped_column(
        ForeignKey("host_images.id", ondelete="CASCADE"), nullable=True
    )
    idx: Mapped[int | None] = mapped_column(nullable=True)
    role: Mapped[str | None] = mapped_column(String(8), nullable=True)
    os_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __mapper_args__ = compare_and_set(status)
