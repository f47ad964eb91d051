"""Device registry tables: profiles with their tags, devices bound to machines."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from clusterbrain.platform.db import Base, UTCDateTime, utcnow


class DeviceProfile(Base):
    """What a kind of device sends: its tags with unit, type and expected range."""

    __tablename__ = "device_profiles"
    __table_args__ = (UniqueConstraint("enterprise_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    enterprise_id: Mapped[int] = mapped_column(
        ForeignKey("enterprises.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    tags: Mapped[list[ProfileTag]] = relationship(
        back_populates="profile", cascade="all, delete-orphan", order_by="ProfileTag.id"
    )


class ProfileTag(Base):
    __tablename__ = "profile_tags"
    __table_args__ = (UniqueConstraint("profile_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    profile_id: Mapped[int] = mapped_column(
        ForeignKey("device_profiles.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    unit: Mapped[str] = mapped_column(String(32), default="")
    data_type: Mapped[str] = mapped_column(String(16), default="float")
    min_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    max_value: Mapped[float | None] = mapped_column(Float, nullable=True)
    description_en: Mapped[str] = mapped_column(Text, default="")
    description_zh: Mapped[str] = mapped_column(Text, default="")
    writable: Mapped[bool] = mapped_column(Boolean, default=False)
    """Commands may set it (a setpoint), within min_value..max_value."""
    profile: Mapped[DeviceProfile] = relationship(back_populates="tags")


class Device(Base):
    """A device bound to a machine; its secret is kept only as a hash."""

    __tablename__ = "devices"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    enterprise_id: Mapped[int] = mapped_column(
        ForeignKey("enterprises.id", ondelete="CASCADE"), index=True
    )
    machine_id: Mapped[int | None] = mapped_column(
        ForeignKey("machines.id", ondelete="SET NULL"), nullable=True, index=True
    )
    profile_id: Mapped[int] = mapped_column(ForeignKey("device_profiles.id"), index=True)
    gateway_id: Mapped[str | None] = mapped_column(
        ForeignKey("devices.id", ondelete="SET NULL"), nullable=True, index=True
    )
    """The edge gateway that reads this device and publishes its data under its own topics."""
    name: Mapped[str] = mapped_column(String(200), default="")
    secret_hash: Mapped[str] = mapped_column(String(64))
    secret_rotated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default="active")
    """'active', or 'pending' from its Sparkplug BIRTH until an engineer approves it."""
    sparkplug_key: Mapped[str | None] = mapped_column(String(300), nullable=True)
    """``group/edge_node[/device]`` of a Sparkplug B node or device; unique per enterprise."""
    offline_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    """Set by a Sparkplug DEATH, cleared by the next BIRTH: offline whatever last_seen_at says."""


class Command(Base):
    """A value an engineer asked a device to take (a setpoint), and what became of it.

    Kept as the audit record of every command: who asked, what, when it was sent and answered.
    """

    __tablename__ = "device_commands"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    enterprise_id: Mapped[int] = mapped_column(
        ForeignKey("enterprises.id", ondelete="CASCADE"), index=True
    )
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    tag: Mapped[str] = mapped_column(String(100))
    value: Mapped[str] = mapped_column(Text)
    """The value as JSON (a number, a boolean or a text)."""
    status: Mapped[str] = mapped_column(String(16), default="sent", index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    requested_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    topic: Mapped[str] = mapped_column(String(300), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


Index(
    "uq_devices_enterprise_sparkplug_key",
    Device.enterprise_id,
    Device.sparkplug_key,
    unique=True,
)


class SparkplugGroup(Base):
    """A Sparkplug B group id claimed by one enterprise: its edge nodes' messages belong to it."""

    __tablename__ = "sparkplug_groups"

    group_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    enterprise_id: Mapped[int] = mapped_column(
        ForeignKey("enterprises.id", ondelete="CASCADE"), index=True
    )
    created_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
