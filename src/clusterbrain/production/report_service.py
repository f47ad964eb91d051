"""Scheduled shift and day reports: find subscriptions that are due, render, e-mail, record."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from clusterbrain.platform.db import session_scope
from clusterbrain.platform.models import Enterprise, Machine, Role, Site
from clusterbrain.platform.notify import Attachment, DeliveryFailed, Email, SmtpSettings, send_email
from clusterbrain.platform.tenancy import Principal
from clusterbrain.production.calendar import SiteCalendar, TimeWindow, period_bounds, shifts_between
from clusterbrain.production.kpi import compute_kpis
from clusterbrain.production.models import ReportSubscription
from clusterbrain.production.models import SiteCalendar as SiteCalendarRow
from clusterbrain.production.oee_service import group_kpis
from clusterbrain.production.reports import LABELS, Report, ReportRow, render_html, render_pdf
from clusterbrain.telemetry.store import TelemetryStore

log = logging.getLogger(__name__)
_US = timedelta(microseconds=1)


def last_completed_period(calendar: SiteCalendar, period: str, now: datetime) -> TimeWindow | None:
    """The newest shift or production day that has ended by ``now``."""
    if period == "day":
        current = period_bounds(calendar, "day", now)
        return period_bounds(calendar, "day", current.start - _US)
    ended = [
        s.window for s in shifts_between(calendar, now - timedelta(days=3), now) if s.end_utc <= now
    ]
    return ended[-1] if ended else None


def _calendar(session: Session, site_id: int) -> SiteCalendar:
    row = session.scalar(select(SiteCalendarRow).where(SiteCalendarRow.site_id == site_id))
    return SiteCalendar.model_validate(row.definition if row else {})


def _reporter(enterprise_id: int) -> Principal:
    """The report runs with an enterprise's rights, never more."""
    return Principal(0, "reports", Role.VIEWER, None, enterprise_id)


def build_report(
    session: Session,
    store: TelemetryStore,
    subscription: ReportSubscription,
    window: TimeWindow,
) -> Report:
    principal = _reporter(subscription.enterprise_id)
    total, per_machine = group_kpis(
        session, store, principal, window.start, window.end, site_id=subscription.site_id
    )
    names = {
        m.id: m.name for m in session.scalars(select(Machine).where(Machine.id.in_(per_machine)))
    }
    rows = [
        ReportRow(names.get(machine_id, str(machine_id)), elements, compute_kpis(elements))
        for machine_id, elements in sorted(per_machine.items(), key=lambda i: names.get(i[0], ""))
    ]
    enterprise = session.get(Enterprise, subscription.enterprise_id)
    site = session.get(Site, subscription.site_id)
    language = subscription.language
    total_row = ReportRow(LABELS.get(language, LABELS["en"])["total"], total.elements, total.kpis)
    zone = _calendar(session, subscription.site_id).zone
    period_name = f"{site.name if site else ''} {window.start.astimezone(zone):%Y-%m-%d %H:%M}"
    return Report(
        enterprise.name if enterprise else "",
        period_name,
        window.start.astimezone(zone),
        window.end.astimezone(zone),
        rows,
        total_row,
        language,
    )


def run_due_reports(
    sessions: sessionmaker[Session],
    store: TelemetryStore,
    smtp: SmtpSettings,
    now: datetime,
) -> int:
    """Send every report whose period has ended since it was last sent; returns how many."""
    sent = 0
    with session_scope(sessions) as session:
        subscriptions = session.scalars(select(ReportSubscription)).all()
        for subscription in subscriptions:
            calendar = _calendar(session, subscription.site_id)
            window = last_completed_period(calendar, subscription.period, now)
            if window is None:
                continue
            last = subscription.last_period_end
            if last is not None and window.end <= last:
                continue
            sent += _send(session, store, smtp, subscription, window)
    return sent


def _send(
    session: Session,
    store: TelemetryStore,
    smtp: SmtpSettings,
    subscription: ReportSubscription,
    window: TimeWindow,
) -> int:
    report = build_report(session, store, subscription, window)
    email = Email(
        to=[subscription.email],
        subject=report.title,
        text=report.title,
        html=render_html(report),
        attachments=[
            Attachment(
                f"report-{window.end:%Y%m%d%H%M}.pdf", render_pdf(report), "application", "pdf"
            )
        ],
    )
    try:
        send_email(smtp, email)
    except DeliveryFailed as exc:
        subscription.last_error = exc.detail[:500]
        log.warning("report %s not delivered: %s", subscription.id, exc.detail)
        return 0
    subscription.last_period_end = window.end
    subscription.last_error = ""
    return 1
