"""Scheduled reports: due periods, HTML and PDF in Chinese, e-mailed through a real SMTP server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from clusterbrain.api.runtime import Runtime
from clusterbrain.platform.notify import SmtpSettings
from clusterbrain.production.calendar import SiteCalendar
from clusterbrain.production.report_service import last_completed_period, run_due_reports
from support.production import CALENDAR, MIN, SHIFT_START, write_worked_shift
from support.smtp import SmtpServer
from support.world import World


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    server = SmtpServer(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


def test_last_completed_period() -> None:
    calendar = SiteCalendar.model_validate(CALENDAR)
    during = SHIFT_START + 100 * MIN
    shift = last_completed_period(calendar, "shift", during)
    assert shift is not None and shift.end == SHIFT_START - timedelta(hours=16)  # yesterday's
    after = last_completed_period(calendar, "shift", SHIFT_START + 481 * MIN)
    assert after is not None and after.start == SHIFT_START
    day = last_completed_period(calendar, "day", SHIFT_START + timedelta(days=1, minutes=1))
    assert day is not None and day.start == SHIFT_START


def test_shift_report_is_mailed_once_with_pdf(
    client: TestClient, runtime: Runtime, world: World, smtp: SmtpServer
) -> None:
    write_worked_shift(runtime.store, world.a.device_id)
    headers = world.a.headers
    client.put(f"/api/v1/sites/{world.a.site_id}/calendar", json=CALENDAR, headers=headers)
    client.put(
        f"/api/v1/machines/{world.a.machine_id}/production-settings",
        json={"ideal_cycle_time_s": 60},
        headers=headers,
    )
    created = client.post(
        "/api/v1/report-subscriptions",
        json={"site_id": world.a.site_id, "email": "chang@lamps.test", "period": "shift"},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    bad = client.post(
        "/api/v1/report-subscriptions",
        json={"site_id": world.a.site_id, "email": "not-an-address", "period": "shift"},
        headers=headers,
    )
    assert bad.status_code == 422 and bad.json()["field"] == "email"
    smtp_settings = SmtpSettings(port=smtp.port)
    now = SHIFT_START + 485 * MIN
    assert run_due_reports(runtime.sessions, runtime.store, smtp_settings, now) == 1
    assert run_due_reports(runtime.sessions, runtime.store, smtp_settings, now + MIN) == 0
    [message] = smtp.messages()
    parts = {p.get_content_type(): p for p in message.walk()}
    html = parts["text/html"].get_payload(decode=True).decode()
    assert "设备综合效率" in html and "79.2 %" in html and "IMM-1" in html
    pdf = parts["application/pdf"].get_payload(decode=True)
    assert pdf.startswith(b"%PDF")
    listed = client.get("/api/v1/report-subscriptions", headers=headers).json()
    assert listed[0]["last_period_end"].startswith("2026-11-23T08:00:00")


def test_undeliverable_report_is_recorded_and_retried(
    client: TestClient, runtime: Runtime, world: World
) -> None:
    client.post(
        "/api/v1/report-subscriptions",
        json={
            "site_id": world.a.site_id,
            "email": "x@lamps.test",
            "period": "day",
            "language": "en",
        },
        headers=world.a.headers,
    )
    from support.services import free_port

    dead = SmtpSettings(port=free_port(), timeout_s=0.3)
    assert run_due_reports(runtime.sessions, runtime.store, dead, SHIFT_START) == 0
    [row] = client.get("/api/v1/report-subscriptions", headers=world.a.headers).json()
    assert row["last_period_end"] is None and "failed" in row["last_error"]
