"""The devices page in a real browser: registration shows the credentials once, the secret works at
the HTTP ingest API, refused payloads appear as dead letters, and tenants stay apart."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

from playwright.sync_api import Page, expect

from ui.conftest import LANGUAGE_SWITCH_MS, LiveConsole, screenshot, sign_in

DEVICE = "ui-test-press-01"


def _post(url: str, body: bytes, secret: str) -> int:
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_register_a_device_and_read_its_secret_once(page: Page, console: LiveConsole) -> None:
    sign_in(page, console, "manager1")
    page.get_by_test_id("nav-devices").click()
    page.wait_for_url(console.url("/devices"))
    expect(page.get_by_test_id("device-e1-imm-01")).to_be_visible()

    page.get_by_test_id("register-device").click()
    page.get_by_test_id("new-device-id").fill(DEVICE)
    page.get_by_test_id("new-device-name").fill("Press 1 gateway")
    page.get_by_test_id("new-device-machine").click()
    page.get_by_role("option", name=re.compile("IMM-01")).click()
    page.get_by_test_id("register-submit").click()

    dialog = page.get_by_test_id("credentials")
    expect(dialog).to_be_visible()
    secret = page.get_by_test_id("secret").inner_text().strip()
    assert secret.startswith("cbd"), secret
    settings = page.get_by_test_id("mqtt-settings").inner_text()
    assert f"username: {DEVICE}" in settings
    assert f"cb/v1/{DEVICE}/telemetry" in settings
    sample = json.loads(page.get_by_test_id("sample-payload").locator("pre").inner_text())
    assert sample["values"], sample
    page.get_by_test_id("close-credentials").click()
    expect(dialog).to_have_count(0)
    expect(page.get_by_test_id(f"device-{DEVICE}")).to_be_visible()
    assert secret not in page.content()

    page.reload()
    expect(page.get_by_test_id(f"device-{DEVICE}")).to_be_visible()
    assert secret not in page.content(), "the secret is shown once only"

    ingest = f"{console.base}/api/v1/ingest/{DEVICE}/telemetry"
    assert _post(ingest, json.dumps(sample).encode(), secret) == 202
    assert _post(ingest, json.dumps(sample).encode(), "cbd_wrong") == 401
    expect(page.get_by_test_id(f"status-{DEVICE}")).to_have_text("在线", timeout=30_000)

    bad = {"values": {"no_such_tag": 1.0}}
    assert _post(ingest, json.dumps(bad).encode(), secret) == 422
    page.get_by_test_id("dead-letter-device").click()
    page.get_by_role("option", name=DEVICE, exact=True).click()
    letters = page.get_by_test_id("dead-letters")
    expect(letters.get_by_text("未知数据点").first).to_be_visible(timeout=30_000)
    expect(letters.get_by_text("no_such_tag").first).to_be_visible()
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "devices", "zh-CN")

    page.get_by_test_id(f"rotate-{DEVICE}").click()
    page.get_by_test_id("confirm").click()
    expect(page.get_by_test_id("credentials")).to_be_visible()
    rotated = page.get_by_test_id("secret").inner_text().strip()
    assert rotated != secret
    page.get_by_test_id("close-credentials").click()
    assert _post(ingest, json.dumps(sample).encode(), secret) == 401, "the old secret is gone"
    assert _post(ingest, json.dumps(sample).encode(), rotated) == 202

    page.get_by_test_id(f"revoke-{DEVICE}").click()
    page.get_by_test_id("confirm").click()
    expect(page.get_by_test_id(f"status-{DEVICE}")).to_have_text("已停用")
    assert _post(ingest, json.dumps(sample).encode(), rotated) == 401


def test_a_taken_device_id_is_refused_by_name(page: Page, console: LiveConsole) -> None:
    sign_in(page, console, "manager1")
    page.goto(console.url("/devices"))
    page.get_by_test_id("register-device").click()
    page.get_by_test_id("new-device-id").fill("e1-imm-01")
    page.get_by_test_id("register-submit").click()
    expect(page.get_by_text("设备编号 e1-imm-01 已被占用")).to_be_visible()
    page.get_by_test_id("new-device-id").fill("x!")
    page.get_by_test_id("register-submit").click()
    expect(page.get_by_text(re.compile("设备编号：3 到 64 个"))).to_be_visible()


def test_another_enterprise_sees_none_of_these_devices_in_english(
    page: Page, console: LiveConsole
) -> None:
    sign_in(page, console, "manager2")
    page.goto(console.url("/devices"))
    expect(page.get_by_test_id("device-e2-imm-01")).to_be_visible()
    assert page.locator('[data-testid^="device-e1-"]').count() == 0
    assert page.get_by_test_id(f"device-{DEVICE}").count() == 0
    assert "e1-" not in page.get_by_test_id("dead-letters").inner_text()
    page.get_by_test_id("language").click()
    page.get_by_role("option", name="English").click()
    expect(page.get_by_test_id("nav-devices")).to_have_text("Devices", timeout=LANGUAGE_SWITCH_MS)
    expect(page.get_by_text("Device profiles")).to_be_visible()
    first_profile = page.locator('[data-testid^="profile-"]').first
    expect(first_profile.get_by_text("Range")).to_be_visible()
    expect(first_profile.get_by_text(re.compile("^Machine state")).first).to_be_visible()
    screenshot(page, "devices", "en")
    page.get_by_test_id("language").click()
    page.get_by_role("option", name="中文").click()
    expect(page.get_by_test_id("nav-overview")).to_have_text("总览", timeout=LANGUAGE_SWITCH_MS)
