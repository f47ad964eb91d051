"""The machine page in a real browser: live values, trend ranges, stops waiting for a reason,
tenancy by URL, and screenshots in both languages."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from ui.conftest import LANGUAGE_SWITCH_MS, LiveConsole, connected, screenshot, sign_in

LONG = 60_000  # ms; the range reads share two cores with the simulator


def _api(
    console: LiveConsole, method: str, path: str, token: str, body: object | None = None
) -> Any:
    request = urllib.request.Request(
        f"{console.base}/api/v1{path}",
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    for attempt in range(20):
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read()
            return json.loads(text) if text else None
        except urllib.error.HTTPError as exc:
            # the API may answer before its transaction is committed: what the previous call
            # created (a token, a parent) can be missing for a moment
            if exc.code in (401, 404) and attempt < 19:
                time.sleep(0.25)
                continue
            raise AssertionError(f"{method} {path}: {exc.code} {exc.read()[:500]!r}") from exc
    raise AssertionError("unreachable")


def _chart_option(page: Page, testid: str) -> Any:
    return page.get_by_test_id(testid).evaluate(
        "el => JSON.parse(JSON.stringify(getElement(el).chart.getOption()))"
    )


def _machine_of(console: LiveConsole, enterprise_id: int) -> dict[str, Any]:
    machines = _api(console, "GET", "/machines", console.admin_token)
    return next(m for m in machines if m["enterprise_id"] == enterprise_id)


def test_a_machine_opens_from_the_overview_with_live_values_and_trend_ranges(
    page: Page, console: LiveConsole
) -> None:
    sign_in(page, console, "manager1")
    tile = page.locator('[data-testid^="machine-"]').first
    expect(tile).to_be_visible()
    name = tile.locator(".font-bold").inner_text()
    tile.click()
    page.wait_for_url(re.compile(r".*/console/machines/\d+$"))
    expect(page.get_by_text(name, exact=True).first).to_be_visible()
    expect(page.get_by_test_id("state")).to_have_text(
        re.compile("运行|空闲|故障停机|计划停机|换型调试|离线"), timeout=LONG
    )
    rows = page.get_by_test_id("live-values").locator("tbody tr")
    expect(rows.first).to_be_visible(timeout=LONG)
    assert rows.count() >= 3
    assert not page.get_by_text(re.compile(r"^\$")).count(), "derived tags stay hidden"
    before = page.get_by_test_id("live-values").inner_text()
    changed = False
    for _ in range(40):  # the simulator sends a sample a second
        page.wait_for_timeout(500)
        if page.get_by_test_id("live-values").inner_text() != before:
            changed = True
            break
    assert changed, "the live values never changed although the machine is streaming"

    expect(page.get_by_test_id("bucket")).to_have_text("1 分钟聚合", timeout=LONG)
    expect(page.get_by_test_id("kpi-oee")).to_be_visible(timeout=LONG)
    expect(page.get_by_test_id("losses")).to_be_visible()
    expect(page.get_by_test_id("timeline").locator("[data-state]").first).to_be_attached(
        timeout=LONG
    )
    hour = _chart_option(page, "trend")
    assert hour["dataZoom"], "the trend zooms (inside and slider)"

    page.get_by_test_id("range-1y").click()
    expect(page.get_by_test_id("bucket")).to_have_text("12 小时聚合", timeout=LONG)
    expect(page.get_by_test_id("range-1y")).not_to_have_class(re.compile("q-btn--outline"))
    page.wait_for_function(
        "([el, before]) => getElement(el).chart.getOption().xAxis[0].min !== before",
        arg=[page.get_by_test_id("trend").element_handle(), hour["xAxis"][0]["min"]],
        timeout=LONG,
    )
    year = _chart_option(page, "trend")
    assert year["xAxis"][0]["max"] - year["xAxis"][0]["min"] == 365 * 86_400_000
    for series in year["series"]:  # hourly rollups: at most about a thousand points
        assert len(series["data"]) <= 1000

    page.get_by_test_id("range-1h").click()
    expect(page.get_by_test_id("bucket")).to_have_text("1 分钟聚合", timeout=LONG)
    page.wait_for_function(
        "el => { const x = getElement(el).chart.getOption().xAxis[0];"
        " return x.max - x.min === 3600000; }",
        arg=page.get_by_test_id("trend").element_handle(),
        timeout=LONG,
    )
    again = _chart_option(page, "trend")
    assert again["series"] and again["series"][0]["data"], "the past hour has points"

    page.get_by_test_id("range-1min").click()  # raw points: the liveliest picture
    expect(page.get_by_test_id("bucket")).to_have_text("原始数据点", timeout=LONG)
    expect(page.get_by_test_id("kpi-oee")).to_be_visible(timeout=LONG)
    page.wait_for_timeout(1500)  # let the charts draw
    screenshot(page, "machine", "zh-CN")

    page.get_by_test_id("language").click()
    page.get_by_role("option", name="English").click()
    expect(page.get_by_test_id("nav-overview")).to_have_text("Overview", timeout=LANGUAGE_SWITCH_MS)
    expect(page.get_by_test_id("bucket")).to_have_text("1 min buckets", timeout=LONG)
    connected(page)  # the language switch reloaded the page
    page.get_by_test_id("range-1min").click()
    expect(page.get_by_test_id("bucket")).to_have_text("Raw points", timeout=LONG)
    expect(page.get_by_test_id("kpi-oee")).to_be_visible(timeout=LONG)
    expect(page.get_by_test_id("live-values").locator("tbody tr").first).to_be_visible()
    page.wait_for_timeout(1500)
    screenshot(page, "machine", "en")
    page.get_by_test_id("language").click()
    page.get_by_role("option", name="中文").click()
    expect(page.get_by_test_id("nav-overview")).to_have_text("总览", timeout=LANGUAGE_SWITCH_MS)


@pytest.fixture(scope="module")
def stopped_machine(console: LiveConsole) -> dict[str, Any]:
    """A machine of its own enterprise with one ten-minute breakdown 20 to 10 minutes ago, sent
    through the HTTP ingest with the secret its registration returned."""
    admin = console.admin_token
    cluster = _api(console, "GET", "/clusters", admin)[0]
    enterprise = _api(
        console, "POST", "/enterprises", admin, {"cluster_id": cluster["id"], "name": "Stops Co"}
    )
    site = _api(
        console, "POST", "/sites", admin, {"name": "Plant", "enterprise_id": enterprise["id"]}
    )
    line = _api(console, "POST", "/lines", admin, {"site_id": site["id"], "name": "Line A"})
    machine = _api(
        console,
        "POST",
        "/machines",
        admin,
        {"line_id": line["id"], "name": "TST-01", "kind": "cnc"},
    )
    profile = _api(
        console,
        "POST",
        "/device-profiles",
        admin,
        {
            "name": "test press",
            "enterprise_id": enterprise["id"],
            "tags": [
                {"name": "state", "data_type": "string", "description_zh": "状态"},
                {
                    "name": "power",
                    "unit": "kW",
                    "description_zh": "功率",
                    "description_en": "Power",
                },
            ],
        },
    )
    device = _api(
        console,
        "POST",
        "/devices",
        admin,
        {"profile_id": profile["id"], "machine_id": machine["id"], "device_id": "e9-tst-01"},
    )
    for username, role in (("lead9", "enterprise_admin"), ("watcher9", "viewer")):
        _api(
            console,
            "POST",
            "/users",
            admin,
            {
                "username": username,
                "role": role,
                "password": "demo",
                "enterprise_id": enterprise["id"],
                "cluster_id": cluster["id"],
            },
        )
    now = datetime.now(UTC).replace(microsecond=0)
    down_from, down_to = now - timedelta(minutes=20), now - timedelta(minutes=10)
    samples = []
    moment = now - timedelta(minutes=30)
    while moment < now - timedelta(seconds=30):
        state = "down" if down_from <= moment < down_to else "running"
        power = 1.0 if state == "down" else 12.5
        samples.append({"ts": moment.isoformat(), "values": {"state": state, "power": power}})
        moment += timedelta(seconds=20)
    result = _api(console, "POST", "/ingest/e9-tst-01/telemetry", device["secret"], samples)
    assert result["accepted_points"] == 2 * len(samples)
    lead = _api(console, "POST", "/auth/login", admin, {"username": "lead9", "password": "demo"})
    stops = _api(
        console,
        "GET",
        f"/machines/{machine['id']}/stops?from={_q(now - timedelta(hours=1))}&to={_q(now)}",
        lead["token"],
    )
    assert [s["start"][:19] for s in stops] == [down_from.isoformat()[:19]], stops
    return {"machine": machine, "lead_token": lead["token"], "start": down_from, "now": now}


def _q(moment: datetime) -> str:
    return urllib.request.quote(moment.isoformat())


def test_a_stop_gets_a_reason_and_a_viewer_is_refused(
    page: Page, console: LiveConsole, stopped_machine: dict[str, Any]
) -> None:
    machine_id = stopped_machine["machine"]["id"]
    sign_in(page, console, "watcher9")
    page.goto(console.url(f"/machines/{machine_id}"))
    stop = page.get_by_test_id("stop")
    expect(stop).to_have_count(1, timeout=LONG)
    expect(stop).to_contain_text("故障停机")
    expect(stop).to_contain_text("10 min")
    page.get_by_test_id("stop-reason").click()
    page.get_by_role("option", name="设备故障 / 机械故障").click()
    page.get_by_test_id("stop-assign").click()
    expect(page.get_by_text("您的角色无权填写停机原因")).to_be_visible()
    expect(stop).to_have_count(1)

    page.get_by_test_id("sign-out").click()
    page.wait_for_url(console.url("/login"))
    sign_in(page, console, "lead9")
    page.goto(console.url(f"/machines/{machine_id}"))
    expect(stop).to_have_count(1, timeout=LONG)
    page.get_by_test_id("stop-assign").click()
    expect(page.get_by_text("请先选择停机原因")).to_be_visible()
    page.get_by_test_id("stop-reason").click()
    page.get_by_role("option", name="设备故障 / 机械故障").click()
    page.get_by_test_id("stop-assign").click()
    expect(page.get_by_text("停机原因已保存")).to_be_visible()
    expect(stop).to_have_count(0)
    expect(page.get_by_text("没有待填写原因的停机")).to_be_visible()

    now = stopped_machine["now"]
    stops = _api(
        console,
        "GET",
        f"/machines/{machine_id}/stops?from={_q(now - timedelta(hours=1))}&to={_q(now)}",
        stopped_machine["lead_token"],
    )
    assert len(stops) == 1 and not stops[0]["awaiting_reason"] and stops[0]["reason_id"]
    page.reload()
    expect(page.get_by_text("没有待填写原因的停机")).to_be_visible(timeout=LONG)


def test_a_machine_of_another_enterprise_is_not_found(page: Page, console: LiveConsole) -> None:
    theirs = _machine_of(console, 2)
    devices = _api(console, "GET", "/devices", console.admin_token)
    their_device = next(d["id"] for d in devices if d.get("machine_id") == theirs["id"])
    sign_in(page, console, "manager1")
    for machine_id in (theirs["id"], 999_999, "abc"):
        page.goto(console.url(f"/machines/{machine_id}"))
        expect(page.get_by_test_id("not-found")).to_contain_text("未找到设备")
        expect(page.get_by_test_id("live-values")).to_have_count(0)
        expect(page.get_by_test_id("trend")).to_have_count(0)
        expect(page.get_by_text(their_device)).to_have_count(0)
    page.get_by_test_id("back-to-overview").click()
    page.wait_for_url(console.url("/"))


def test_the_machine_page_needs_a_signed_in_user(page: Page, console: LiveConsole) -> None:
    page.goto(console.url(f"/machines/{_machine_of(console, 1)['id']}"))
    page.wait_for_url(console.url("/login"))
