"""The reports page in a real browser: KPIs per shift by machine and line, the CSV and Excel
downloads of the same rows, and scheduled report subscriptions."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect

from ui.conftest import LANGUAGE_SWITCH_MS, LiveConsole, screenshot, sign_in

MANAGER1_MACHINES = ("IMM-01", "IMM-02", "CNC-03", "IMM-04")


def test_kpis_by_machine_and_line_download_as_csv(
    page: Page, console: LiveConsole, tmp_path: Path
) -> None:
    sign_in(page, console, "manager1")
    page.get_by_test_id("nav-reports").click()
    page.wait_for_url(console.url("/reports"))
    table = page.get_by_test_id("kpi-table")
    expect(table).to_be_visible(timeout=60_000)
    for machine in MANAGER1_MACHINES:
        expect(table.get_by_role("cell", name=machine, exact=True).first).to_be_visible()
    expect(table.get_by_role("cell", name="Line 1 一线", exact=True).first).to_be_visible()
    expect(table.get_by_role("cell", name="产线", exact=True).first).to_be_visible()
    expect(table.get_by_text("Rows per page")).to_have_count(0)

    with page.expect_download() as download:
        page.get_by_test_id("download-csv").click()
    path = tmp_path / download.value.suggested_filename
    download.value.save_as(path)
    assert path.name.endswith(".csv")
    text = path.read_text(encoding="utf-8-sig")
    header, *rows = text.splitlines()
    assert header.startswith("周期开始,周期结束,层级,机台 / 产线"), header
    assert "OEE %" in header
    for machine in MANAGER1_MACHINES:
        assert any(f",{machine}," in row for row in rows), machine
    assert any(",产线,Line 1 一线," in row for row in rows)

    with page.expect_download() as workbook:
        page.get_by_test_id("download-xlsx").click()
    assert workbook.value.suggested_filename.endswith(".xlsx")
    saved = tmp_path / "kpis.xlsx"
    workbook.value.save_as(saved)
    assert saved.read_bytes()[:2] == b"PK"

    page.get_by_test_id("report-period").get_by_text("天").click()
    page.get_by_test_id("report-show").click()
    expect(table.get_by_role("cell", name="IMM-01", exact=True).first).to_be_visible(timeout=60_000)
    page.get_by_test_id("report-period").get_by_text("班次").click()
    page.get_by_test_id("report-show").click()
    expect(page.get_by_test_id("report-show")).to_be_enabled(timeout=60_000)
    expect(page.get_by_test_id("kpi-table")).to_be_visible(timeout=60_000)
    expect(table.get_by_text("进行中").first).to_be_visible()
    screenshot(page, "reports", "zh-CN")


def test_bad_dates_are_refused(page: Page, console: LiveConsole) -> None:
    sign_in(page, console, "manager1")
    page.goto(console.url("/reports"))
    expect(page.get_by_test_id("kpi-table")).to_be_visible(timeout=60_000)
    page.get_by_test_id("report-from").fill("2026-13-40")
    page.get_by_test_id("report-show").click()
    expect(page.get_by_text("日期格式如 2026-05-04")).to_be_visible()


def test_add_and_delete_a_report_subscription(page: Page, console: LiveConsole) -> None:
    sign_in(page, console, "manager1")
    page.goto(console.url("/reports"))
    page.get_by_test_id("subscription-email").fill("not-an-address")
    page.get_by_test_id("add-subscription").click()
    expect(page.get_by_text("请输入有效的电子邮箱")).to_be_visible()

    page.get_by_test_id("subscription-email").fill("plant.manager@example.com")
    page.get_by_test_id("subscription-period").get_by_text("班次").click()
    page.get_by_test_id("add-subscription").click()
    row = page.locator('[data-testid^="subscription-"]').filter(
        has_text="plant.manager@example.com"
    )
    expect(row).to_be_visible()
    expect(row).to_contain_text("班次")
    expect(row).to_contain_text("Main plant 主厂区")

    page.reload()
    row = page.locator('[data-testid^="subscription-"]').filter(
        has_text="plant.manager@example.com"
    )
    expect(row).to_be_visible()
    row.locator('[data-testid^="delete-subscription-"]').click()
    expect(row).to_have_count(0)
    page.reload()
    expect(page.get_by_text("plant.manager@example.com")).to_have_count(0)


def test_another_enterprise_sees_only_its_machines_in_english(
    page: Page, console: LiveConsole
) -> None:
    sign_in(page, console, "manager2")
    page.goto(console.url("/reports"))
    page.get_by_test_id("language").click()
    page.get_by_role("option", name="English").click()
    expect(page.get_by_test_id("nav-reports")).to_have_text("Reports", timeout=LANGUAGE_SWITCH_MS)
    table = page.get_by_test_id("kpi-table")
    expect(table).to_be_visible(timeout=60_000)
    expect(page.get_by_test_id("report-show")).to_be_enabled(timeout=60_000)
    expect(table.get_by_role("cell", name="Machine", exact=True).first).to_be_visible()
    expect(table.get_by_text("每页行数")).to_have_count(0)
    page.get_by_test_id("report-to-calendar").click()
    months = "January|February|March|April|May|June|July|August|September|October|November|December"
    expect(page.locator(".q-date").get_by_text(re.compile(f"^({months})$"))).to_be_visible()
    page.keyboard.press("Escape")
    screenshot(page, "reports", "en")
    page.get_by_test_id("language").click()
    page.get_by_role("option", name="中文").click()
    expect(page.get_by_test_id("nav-overview")).to_have_text("总览", timeout=LANGUAGE_SWITCH_MS)
