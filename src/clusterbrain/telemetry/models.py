"""Dead letters: input that could not be stored, with the reason and the raw payload."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from clusterbrain.platform.db import Base, UTCDateTime, utcnow


class DeadLetter(Base):
    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    enterprise_id: Mapped[int | None] = mapped_column(
        ForeignKey("enterprises.id", ondelete="CASCADE"), nullable=True, index=True
    )
    device_id: Mapped[str] = mapped_column(String(200), default="", index=True)
    source: Mapped[str] = mapped_column(String(16))
    topic: Mapped[str] = mapped_column(String(300), default="")
    reason: Mapped[str] = mapped_column(String(64), index=True)
    detail: Mapped[str] = mapped_column(Text, default="")
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    payload_size: Mapped[int] = mapped_column(Integer)
