"""Production tables: downtime reasons, production orders, site calendars, machine settings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from clusterbrain.platform.db import Base, UTCDateTime, utcnow


class DowntimeReason(Base):
    """A node of an enterprise's downtime reason tree (停机原因), in English and Chinese."""

    __tablename__ = "downtime_reasons"
    __table_args__ = (UniqueConstraint("enterprise_id", "code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    enterprise_id: Mapped[int] = mapped_column(
        ForeignKey("enterprises.id", ondelete="CASCADE"), index=True
    )
    code: Mapped[str] = mapped_column(String(64))
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("downtime_reasons.id", ondelete="CASCADE"), nullable=True
    )
    name_en: Mapped[str] = mapped_column(String(200))
    name_zh: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(32))
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class ProductionOrder(Base):
    """Work on one machine: product, ideal cycle time (ISO 22400 PRU) and planned quantity."""

    __tablename__ = "production_orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    enterprise_id: Mapped[int] = mapped_column(
        ForeignKey("enterprises.id", ondelete="CASCADE"), index=True
    )
    machine_id: Mapped[int] = mapped_column(
        ForeignKey("machines.id", ondelete="CASCADE"), index=True
    )
    order_number: Mapped[str] = mapped_column(String(100))
    product: Mapped[str] = mapped_column(String(200))
    ideal_cycle_time_s: Mapped[float] = mapped_column(Float)
    units_per_cycle: Mapped[int] = mapped_column(Integer, default=1)
    planned_quantity: Mapped[int] = mapped_column(Integer)
    planned_start: Mapped[datetime] = mapped_column(UTCDateTime)
    planned_end: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="planned")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SiteCalendar(Base):
    """A site's shift pattern, holidays and planned maintenance (validated by production.calendar)."""

    __tablename__ = "site_calendars"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    enterprise_id: Mapped[int] = mapped_column(
        ForeignKey("enterprises.id", ondelete="CASCADE"), index=True
    )
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), unique=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MachineSettings(Base):
    """How a machine's states and output are read: state rules and the default ideal cycle time."""

    __tablename__ = "machine_settings"

    machine_id: Mapped[int] = mapped_column(
        ForeignKey("machines.id", ondelete="CASCADE"), primary_key=True
    )
    enterprise_id: Mapped[int] = mapped_column(
        ForeignKey("enterprises.id", ondelete="CASCADE"), index=True
    )
    device_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    state_rules: Mapped[dict[str, Any]] = mapped_column(JSON)
    ideal_cycle_time_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    good_count_tag: Mapped[str] = mapped_column(String(100), default="good_count")
    scrap_count_tag: Mapped[str] = mapped_column(String(100), default="scrap_count")
    energy_tag: Mapped[str] = mapped_column(String(100), default="")


class StopReason(Base):
    """The reason an operator gave for one stop of a machine (the stop is keyed by its start)."""

    __tablename__ = "stop_reasons"
    __table_args__ = (UniqueConstraint("machine_id", "stop_start"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    enterprise_id: Mapped[int] = mapped_column(
        ForeignKey("enterprises.id", ondelete="CASCADE"), index=True
    )
    machine_id: Mapped[int] = mapped_column(
        ForeignKey("machines.id", ondelete="CASCADE"), index=True
    )
    stop_start: Mapped[datetime] = mapped_column(UTCDateTime)
    stop_end: Mapped[datetime] = mapped_column(UTCDateTime)
    reason_id: Mapped[int] = mapped_column(ForeignKey("downtime_reasons.id", ondelete="RESTRICT"))
    comment: Mapped[str] = mapped_column(String(500), default="")
    assigned_by: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True
    )
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReportSubscription(Base):
    """Someone who gets a site's shift or day report by e-mail (HTML with a PDF attached)."""

    __tablename__ = "report_subscriptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    enterprise_id: Mapped[int] = mapped_column(
        ForeignKey("enterprises.id", ondelete="CASCADE"), index=True
    )
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(254))
    period: Mapped[str] = mapped_column(String(8))
    language: Mapped[str] = mapped_column(String(8), default="zh-CN")
    last_period_end: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AlarmRule(Base):
    """A rule on one device's signals (document validated by production.rules.parse_rule)."""

    __tablename__ = "alarm_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    enterprise_id: Mapped[int] = mapped_column(
        ForeignKey("enterprises.id", ondelete="CASCADE"), index=True
    )
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    priority: Mapped[str] = mapped_column(String(16), default="medium")
    message: Mapped[str] = mapped_column(String(500), default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str] = mapped_column(String(500), default="")
    webhook_url: Mapped[str] = mapped_column(String(500), default="")
    emails: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    """Changed by every edit, wherever it comes from: a running alarm engine watches it."""


class AlarmRecord(Base):
    """The lifecycle of one rule's alarm (production.alarms.Alarm, stored as a document)."""

    __tablename__ = "alarms"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    enterprise_id: Mapped[int] = mapped_column(
        ForeignKey("enterprises.id", ondelete="CASCADE"), index=True
    )
    rule_id: Mapped[int] = mapped_column(
        ForeignKey("alarm_rules.id", ondelete="CASCADE"), unique=True
    )
    state: Mapped[str] = mapped_column(String(16), index=True)
    priority: Mapped[str] = mapped_column(String(16))
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AlarmEvent(Base):
    """One line of an alarm's history (ISA-18.2 journal): who did what when, state before/after.

    Append-only. The alarm's document keeps only its latest lines; this table keeps them all, with
    the rule's name and device copied in, so the journal outlives a deleted rule.
    """

    __tablename__ = "alarm_events"
    __table_args__ = (Index("ix_alarm_events_enterprise_ts", "enterprise_id", "ts_us"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id", ondelete="CASCADE"))
    alarm_id: Mapped[int] = mapped_column(Integer, index=True)
    rule_id: Mapped[int] = mapped_column(Integer)
    rule_name: Mapped[str] = mapped_column(String(200))
    device_id: Mapped[str] = mapped_column(String(64))
    priority: Mapped[str] = mapped_column(String(16))
    ts_us: Mapped[int] = mapped_column(BigInteger)
    event: Mapped[str] = mapped_column(String(32))
    user: Mapped[str] = mapped_column(String(200), default="")
    from_state: Mapped[str] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(String(1000), default="")
