"""Format copies (多云镜像): a sub-image's data converted into another disk format."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from hostimage.db.base import Base, UTCDateTime, new_id, utcnow
from hostimage.db.transitions import compare_and_set, guarded
from hostimage.domain.status import FORMAT_COPY


@guarded(FORMAT_COPY)
class FormatCopy(Base):
    __tablename__ = "format_copies"
    __table_args__ = (
        UniqueConstraint("image_id", "format"),
        Index("ix_format_copies_object_key", "object_key"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    image_id: Mapped[str] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    format: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    checksum: Mapped[str | None] = mapped_column(String(80), nullable=True)
    object_key: Mapped[str | None] = mapped_column(String(256), nullable=True)
    error: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __mapper_args__ = compare_and_set(status)
