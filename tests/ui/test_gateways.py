"""The gateways page in a real browser: the demo's edge gateway with live health, OPC UA discovery
of the demo's simulated server into a device profile, a setpoint sent to the field device behind
the gateway and acknowledged, refusals naming the field or the role, and tenants kept apart."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from typing import Any

from playwright.sync_api import Page, expect

from support.services import free_port
from ui.conftest import LiveConsole, connected, screenshot, sign_in

GATEWAY = "e1-gw-01"
FIELD = "e1-compressor-room"
PROFILE = "ui_test_spindle"


def _api(console: LiveConsole, path: str, token: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        console.base + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _token(console: LiveConsole, username: str, password: str = "demo") -> str:
    request = urllib.request.Request(
        console.base + "/api/v1/auth/login",
        data=json.dumps({"username": username, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(json.loads(response.read())["token"])


def _opcua_endpoint(console: LiveConsole) -> str:
    found = re.search(
        r"opc\.tcp://127\.0\.0\.1:\d+/clusterbrain/sim", (console.var_dir / "demo.log").read_text()
    )
    assert found, "the demo names its simulated OPC UA server"
    return found.group(0)


def _reads(page: Page) -> int:
    text = page.get_by_test_id(f"health-{GATEWAY}-reads").inner_text().splitlines()[-1]
    return int(text.replace(",", "")) if text.strip("— ") else 0


def _set_language(page: Page, name: str) -> None:
    page.get_by_test_id("language").click()
    page.get_by_role("option", name=name).click()
    page.wait_for_timeout(1000)


def test_the_demo_gateway_appears_with_live_health(page: Page, console: LiveConsole) -> None:
    sign_in(page, console, "manager1")
    page.get_by_test_id("nav-gateways").click()
    page.wait_for_url(console.url("/gateways"))
    card = page.get_by_test_id(f"gateway-{GATEWAY}")
    expect(card).to_be_visible()
    expect(page.get_by_test_id(f"gateway-status-{GATEWAY}")).to_have_text("在线", timeout=30_000)
    expect(page.get_by_test_id(f"health-{GATEWAY}-sources_connected")).to_contain_text("1 / 1")
    first = _reads(page)
    deadline = time.monotonic() + 30
    while _reads(page) <= first and time.monotonic() < deadline:
        page.wait_for_timeout(500)
    assert _reads(page) > first, "the health refreshes in place"
    field = page.get_by_test_id(f"field-{FIELD}")
    expect(field).to_be_visible()
    expect(page.get_by_test_id(f"field-status-{FIELD}")).to_have_text("在线")
    expect(page.get_by_test_id(f"health-{GATEWAY}-spool_dropped")).to_contain_text("0")
    screenshot(page, "gateways", "zh-CN")

    page.get_by_test_id(f"gateway-link-{GATEWAY}").click()
    page.wait_for_url(console.url(f"/gateways/{GATEWAY}"))
    expect(page.get_by_test_id(f"field-{FIELD}")).to_be_visible()
    _set_language(page, "English")
    try:
        expect(page.get_by_text("Field devices behind this gateway")).to_be_visible()
        expect(page.get_by_test_id(f"gateway-status-{GATEWAY}")).to_have_text("Online")
        page.goto(console.url("/gateways"))
        expect(page.get_by_text("Values read")).to_be_visible()
        page.wait_for_timeout(1500)
        screenshot(page, "gateways", "en")
    finally:
        _set_language(page, "中文")


def test_discover_the_simulated_opcua_server_and_create_a_profile(
    page: Page, console: LiveConsole
) -> None:
    sign_in(page, console, "manager1")
    page.goto(console.url("/gateways"))
    page.get_by_test_id("discovery-open").click()
    dialog = page.get_by_test_id("discovery")
    expect(dialog).to_be_visible()

    page.get_by_test_id("discovery-endpoint").fill("http://example.com")
    page.get_by_test_id("discovery-run").click()
    expect(page.get_by_test_id("discovery-error")).to_contain_text("opc.tcp://主机:端口")
    page.get_by_test_id("discovery-endpoint").fill(f"opc.tcp://127.0.0.1:{free_port()}")
    page.get_by_test_id("discovery-run").click()
    expect(page.get_by_test_id("discovery-error")).to_contain_text("无法连接服务器", timeout=30_000)

    endpoint = _opcua_endpoint(console)
    page.get_by_test_id("discovery-endpoint").fill(endpoint)
    rows = page.get_by_test_id("discovery-row-cnc1_spindle_override")
    deadline = time.monotonic() + 60  # the server's first start builds its address space cache
    while True:
        page.get_by_test_id("discovery-run").click()
        page.wait_for_timeout(500)
        expect(page.get_by_test_id("discovery-busy")).to_have_count(0, timeout=30_000)
        if rows.is_visible() or time.monotonic() > deadline:
            break
        page.wait_for_timeout(2000)
    expect(rows).to_be_visible()
    expect(page.get_by_test_id("discovery-writable-cnc1_spindle_override")).to_be_checked()
    for tag in ("cnc1_spindle_speed", "cnc1_spindle_override", "imm1_mould_temperature"):
        page.get_by_test_id(f"discovery-select-{tag}").click()
    expect(page.get_by_test_id("discovery-count")).to_have_text("已选 3 个")
    page.get_by_test_id("discovery-tag-cnc1_spindle_speed").fill("spindle_speed")
    page.get_by_test_id("discovery-profile-name").fill(PROFILE)
    screenshot(page, "gateways-discovery", "zh-CN")
    page.get_by_test_id("discovery-create").click()
    # the node list and the notice arrive together; a busy server may take a while to send them
    expect(page.get_by_test_id("discovery-nodes")).to_contain_text(
        "tag: spindle_speed", timeout=30_000
    )
    expect(page.get_by_text(f"已创建设备模板 {PROFILE}，共 3 个数据点")).to_be_visible()
    nodes = page.get_by_test_id("discovery-nodes").inner_text()
    assert "tag: spindle_speed" in nodes and "CNC1.Spindle.Override" in nodes, nodes
    assert "writable: true" in nodes and "max_value: 120.0" in nodes, nodes
    assert endpoint in nodes

    page.get_by_test_id("discovery-create").click()  # the same name again
    expect(page.get_by_text(f"已存在名为 {PROFILE} 的设备模板")).to_be_visible(timeout=15_000)

    profiles = _api(console, "/api/v1/device-profiles", _token(console, "manager1"))
    made = next(p for p in profiles if p["name"] == PROFILE)
    tags = {t["name"]: t for t in made["tags"]}
    assert set(tags) == {"spindle_speed", "cnc1_spindle_override", "imm1_mould_temperature"}
    override = tags["cnc1_spindle_override"]
    assert override["writable"] and (override["min_value"], override["max_value"]) == (50, 120)
    assert not tags["spindle_speed"]["writable"] and tags["imm1_mould_temperature"]["unit"] == "°C"
    theirs = _api(console, "/api/v1/device-profiles", _token(console, "manager2"))
    assert PROFILE not in {p["name"] for p in theirs}


def test_a_setpoint_reaches_the_field_device_and_out_of_range_is_refused(
    page: Page, console: LiveConsole
) -> None:
    sign_in(page, console, "manager1")
    page.goto(console.url("/gateways"))
    page.get_by_test_id(f"command-{FIELD}").click()
    expect(page.get_by_test_id("command-device")).to_contain_text(FIELD)
    page.get_by_test_id("command-tag").click()
    page.get_by_role("option", name=re.compile("^pressure_setpoint")).click()
    expect(page.get_by_test_id("command-tag")).to_contain_text("5 … 10 bar")
    page.get_by_test_id("command-value").fill("8.5")
    page.get_by_test_id("command-send").click()
    expect(page.get_by_test_id("command-state-succeeded")).to_be_visible(timeout=30_000)
    history = page.get_by_test_id("command-history")
    expect(history.get_by_text("成功").first).to_be_visible()
    expect(history.get_by_text("8.5").first).to_be_visible()
    expect(history.get_by_text("Guzhen Brightway Lighting manager").first).to_be_visible()

    token = _token(console, "manager1")
    deadline = time.monotonic() + 20
    value = None
    while time.monotonic() < deadline:
        latest = _api(
            console, f"/api/v1/devices/{FIELD}/telemetry/latest?tag=pressure_setpoint", token
        )
        value = latest[0]["value"] if latest else None
        if value is not None and abs(value - 8.5) < 1e-6:
            break
        time.sleep(0.5)
    assert value == 8.5, "the compressor reports the new setpoint"

    page.get_by_test_id("command-value").fill("25")
    page.get_by_test_id("command-send").click()
    expect(page.get_by_text("数值：必须在 5 到 10 之间")).to_be_visible()
    commands = _api(console, f"/api/v1/devices/{FIELD}/commands", token)
    assert [c["value"] for c in commands][:1] == [8.5], "the refused value was never sent"


def test_a_viewer_may_not_send_commands_or_discover(page: Page, console: LiveConsole) -> None:
    manager = _token(console, "manager1")
    _api(
        console,
        "/api/v1/users",
        manager,
        {"username": "ui-viewer-1", "role": "viewer", "password": "viewer-pw-1"},
    )
    sign_in(page, console, "ui-viewer-1", "viewer-pw-1")
    page.goto(console.url("/gateways"))
    expect(page.get_by_test_id(f"gateway-{GATEWAY}")).to_be_visible()
    expect(page.get_by_test_id("command-role-hint")).to_have_text(
        "只有工程师和管理员可以下发指令。"
    )
    page.get_by_test_id("command-value").fill("7")
    page.get_by_test_id("command-send").click()
    expect(page.get_by_text("您的角色无权下发指令：只有工程师和管理员可以。")).to_be_visible()
    commands = _api(console, f"/api/v1/devices/{FIELD}/commands", manager)
    assert 7 not in [c["value"] for c in commands]

    page.get_by_test_id("discovery-open").click()
    page.get_by_test_id("discovery-endpoint").fill(_opcua_endpoint(console))
    page.get_by_test_id("discovery-run").click()
    expect(page.get_by_test_id("discovery-error")).to_contain_text("您的角色无权修改设备")


def test_another_enterprise_sees_none_of_it_even_by_url(page: Page, console: LiveConsole) -> None:
    sign_in(page, console, "manager2")
    page.goto(console.url("/gateways"))
    expect(page.get_by_text("还没有边缘网关")).to_be_visible()
    expect(page.get_by_text("没有带可写数据点的设备")).to_be_visible()
    for path in (f"/gateways/{GATEWAY}", f"/gateways?device={FIELD}", f"/gateways/{FIELD}"):
        page.goto(console.url(path))
        connected(page)
        page.wait_for_timeout(1000)
        text = page.locator("body").inner_text()
        assert "e1-" not in text and "Compressor room" not in text, f"{path} leaks: {text}"
        if path.startswith("/gateways/"):
            assert "未找到网关" in text, f"{path} should say not found"
