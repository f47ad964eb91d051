"""The alarms page in a real browser: rules made in the form fire on the simulated machines'
live stream; acknowledge and shelve; the form names the wrong field; roles and enterprises."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

from playwright.sync_api import Locator, Page, expect

from ui.conftest import LANGUAGE_SWITCH_MS, LiveConsole, screenshot, sign_in

LIVE = 60_000  # ms: the alarm engine evaluates the next stored batch of a busy 2-core machine


def _api(console: LiveConsole, method: str, path: str, token: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        f"{console.base}/api/v1{path}",
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read()
    return json.loads(text) if text else None


def _token(console: LiveConsole, username: str, password: str = "demo") -> str:
    request = urllib.request.Request(
        f"{console.base}/api/v1/auth/login",
        method="POST",
        data=json.dumps({"username": username, "password": password}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        token = str(json.loads(response.read())["token"])
    for _ in range(50):  # the login's commit may land just after its response
        try:
            _api(console, "GET", "/me", token)
            return token
        except urllib.error.HTTPError as exc:
            if exc.code != 401:
                raise
            time.sleep(0.1)
    raise AssertionError(f"the token of {username} was never accepted")


def _rule(
    console: LiveConsole,
    token: str,
    name: str,
    device: str,
    tag: str = "barrel_zone1_temp",
    priority: str = "high",
) -> int:
    """A threshold rule ``tag > 0`` made through the API; its id."""
    rule = {
        "device_id": device,
        "name": name,
        "definition": {"type": "threshold", "tag": tag, "op": ">", "limit": 0},
        "priority": priority,
    }
    return int(_api(console, "POST", "/alarm-rules", token, rule)["id"])


def _always_firing_rule(console: LiveConsole, token: str, name: str, device: str) -> int:
    """A rule made through the API whose alarm is active at the next sample; its alarm's id."""
    rule_id = _rule(console, token, name, device)
    deadline = time.monotonic() + LIVE / 1000
    while time.monotonic() < deadline:
        for alarm in _api(console, "GET", "/alarms", token):
            if alarm["rule_id"] == rule_id:
                return int(alarm["id"])
        time.sleep(1)
    raise AssertionError(f"rule {name} never raised an alarm")


def _alarm_row(page: Page, rule_name: str) -> Locator:
    return page.get_by_test_id("alarm-table").locator("tbody tr", has_text=rule_name)


def _pick(page: Page, test_id: str, option: str) -> None:
    page.get_by_test_id(test_id).click()
    page.get_by_role("option", name=option, exact=True).click()
    expect(page.locator(".q-menu")).to_have_count(0)


def _open_tab(page: Page, test_id: str) -> None:
    page.get_by_test_id(test_id).click()
    expect(page.get_by_test_id(test_id)).to_have_class(re.compile("q-tab--active"))
    page.mouse.move(640, 780)  # no hover or focus shade in screenshots
    page.evaluate("document.activeElement && document.activeElement.blur()")
    page.wait_for_timeout(400)  # the tab indicator slides over


def _translated(page: Page) -> None:
    """Strict mode marks a text missing from the catalogue as ⟦text⟧."""
    expect(page.locator("body")).not_to_contain_text("⟦")


def _quiet(page: Page) -> None:
    """No notification or open menu over the page (for screenshots)."""
    expect(page.locator(".q-notification")).to_have_count(0, timeout=20_000)
    expect(page.locator(".q-menu")).to_have_count(0)


def test_a_rule_made_in_the_form_raises_an_alarm_that_is_acknowledged_and_shelved(
    page: Page, console: LiveConsole
) -> None:
    name = f"料筒一区加热中 {uuid.uuid4().hex[:4]}"
    sign_in(page, console, "manager1")
    page.get_by_test_id("nav-alarms").click()
    expect(page.get_by_test_id("tab-alarms")).to_have_text("报警列表")

    page.get_by_test_id("tab-rules").click()
    page.get_by_test_id("rule-new").click()
    page.get_by_test_id("rule-name").fill(name)
    _pick(page, "rule-device", "IMM-01 (e1-imm-01)")
    _pick(page, "rule-tag", "barrel_zone1_temp")
    page.get_by_test_id("rule-limit").fill("0")
    page.get_by_test_id("rule-message").fill("料筒一区正在加热")
    page.get_by_test_id("rule-save").click()
    expect(page.get_by_text("规则已保存")).to_be_visible()
    rule_row = page.get_by_test_id("rule-table").locator("tbody tr", has_text=name)
    expect(rule_row).to_contain_text("barrel_zone1_temp > 0")
    expect(rule_row.get_by_test_id("rule-status")).to_have_text("已启用")

    page.get_by_test_id("tab-alarms").click()
    row = _alarm_row(page, name)
    expect(row).to_be_visible(timeout=LIVE)  # the list refreshes itself
    expect(row.get_by_test_id("alarm-state")).to_have_text("报警未确认")
    expect(row).to_contain_text("料筒一区正在加热")
    expect(row).to_contain_text("e1-imm-01")

    row.get_by_test_id("alarm-acknowledge").click()
    page.get_by_test_id("action-text").fill("已通知维修班")
    page.get_by_test_id("action-confirm").click()
    expect(row.get_by_test_id("alarm-state")).to_have_text("报警已确认")
    expect(row.get_by_test_id("alarm-acknowledge")).to_have_count(0)

    row.get_by_test_id("alarm-shelve").click()
    page.get_by_test_id("shelve-minutes").fill("30")
    page.get_by_test_id("action-text").fill("换模期间")
    page.get_by_test_id("action-confirm").click()
    expect(row.get_by_test_id("alarm-state")).to_have_text("已搁置")
    expect(row.get_by_test_id("alarm-unshelve")).to_be_visible()

    row.get_by_test_id("alarm-details").click()
    history = page.get_by_test_id("alarm-history")
    expect(history).to_contain_text("已通知维修班")
    expect(history).to_contain_text("换模期间")
    expect(history.locator("tbody tr", has_text="条件触发")).to_have_count(1)
    expect(page.get_by_test_id("detail-state")).to_have_text("已搁置")
    _translated(page)
    page.get_by_test_id("detail-close").click()

    _pick(page, "filter-state", "报警未确认")
    expect(_alarm_row(page, name)).to_have_count(0)
    _pick(page, "filter-state", "已搁置")
    expect(_alarm_row(page, name)).to_be_visible()
    _pick(page, "filter-state", "全部状态")

    # a critical alarm beside it, and a rule that fails on text data and is disabled
    manager = _token(console, "manager1")
    _rule(console, manager, f"模具温度 {name[-4:]}", "e1-imm-04", "mould_temp", "critical")
    failing = f"状态阈值 {name[-4:]}"
    _rule(console, manager, failing, "e1-imm-01", "state", "low")
    expect(_alarm_row(page, f"模具温度 {name[-4:]}")).to_be_visible(timeout=LIVE)
    _quiet(page)
    _translated(page)
    screenshot(page, "alarms", "zh-CN")
    _open_tab(page, "tab-rules")
    failed = page.get_by_test_id("rule-table").locator("tbody tr", has_text=failing)
    expect(failed.get_by_test_id("rule-status")).to_have_text("已停用", timeout=LIVE)
    expect(failed.get_by_test_id("rule-reason")).not_to_be_empty()
    _translated(page)
    screenshot(page, "alarms-rules", "zh-CN")

    page.get_by_test_id("language").click()
    page.get_by_role("option", name="English").click()
    expect(page.get_by_test_id("tab-alarms")).to_have_text("Alarm list", timeout=LANGUAGE_SWITCH_MS)
    row = _alarm_row(page, name)
    expect(row.get_by_test_id("alarm-state")).to_have_text("Shelved")
    screenshot(page, "alarms", "en")
    _open_tab(page, "tab-rules")
    expect(page.get_by_test_id("rule-table")).to_contain_text("Disabled")
    screenshot(page, "alarms-rules", "en")
    page.get_by_test_id("tab-alarms").click()
    row.get_by_test_id("alarm-unshelve").click()
    expect(row.get_by_test_id("alarm-state")).to_have_text("Active, acknowledged")
    row.get_by_test_id("alarm-suppress").click()
    page.get_by_test_id("action-text").fill("planned stop")
    page.get_by_test_id("action-confirm").click()
    expect(row.get_by_test_id("alarm-state")).to_have_text("Suppressed")
    row.get_by_test_id("alarm-unsuppress").click()
    expect(row.get_by_test_id("alarm-state")).to_have_text("Active, acknowledged")
    page.get_by_test_id("language").click()
    page.get_by_role("option", name="中文").click()
    expect(page.get_by_test_id("tab-alarms")).to_have_text("报警列表", timeout=LANGUAGE_SWITCH_MS)


def test_the_rule_form_names_the_wrong_field(page: Page, console: LiveConsole) -> None:
    sign_in(page, console, "manager1")
    page.goto(console.url("/alarms?tab=rules"))
    page.get_by_test_id("rule-new").click()
    page.get_by_test_id("rule-save").click()
    expect(page.get_by_test_id("rule-error")).to_contain_text("名称：不能为空")
    expect(page.get_by_test_id("rule-error")).to_contain_text("采集设备：必填")

    page.get_by_test_id("rule-name").fill("回差不能为负")
    _pick(page, "rule-device", "IMM-02 (e1-imm-02)")
    _pick(page, "rule-tag", "mould_temp")
    page.get_by_test_id("rule-limit").fill("80")
    page.get_by_test_id("rule-deadband").fill("-1")
    page.get_by_test_id("rule-save").click()
    expect(page.get_by_test_id("rule-error")).to_have_text("回差：不能小于 0")
    expect(page.get_by_text("不能小于 0").first).to_be_visible()
    _translated(page)
    screenshot(page, "alarms-rule-form", "zh-CN")

    _pick(page, "rule-kind", "表达式")
    expect(page.get_by_test_id("rule-limit")).to_be_hidden()
    page.get_by_test_id("rule-expression").fill("__import__('os')")
    page.get_by_test_id("rule-save").click()
    expect(page.get_by_test_id("rule-error")).to_contain_text("表达式：不允许：")
    page.get_by_test_id("rule-cancel").click()
    expect(page.get_by_test_id("rule-table").locator("tr", has_text="回差不能为负")).to_have_count(
        0
    )


def test_another_enterprise_sees_neither_the_alarms_nor_the_rules(
    page: Page, console: LiveConsole
) -> None:
    name = f"Enterprise 1 only {uuid.uuid4().hex[:4]}"
    alarm_id = _always_firing_rule(console, _token(console, "manager1"), name, "e1-imm-04")

    sign_in(page, console, "manager2")
    page.goto(console.url("/alarms"))
    expect(page.get_by_text("没有需要处理的报警")).to_be_visible()
    page.get_by_test_id("filter-cleared").click()
    expect(page.get_by_text("没有符合筛选条件的报警")).to_be_visible()
    expect(page.get_by_text(name)).to_have_count(0)
    page.get_by_test_id("tab-rules").click()
    expect(page.get_by_text("还没有报警规则")).to_be_visible()
    expect(page.get_by_text(name)).to_have_count(0)

    page.goto(console.url(f"/alarms/{alarm_id}"))
    expect(page.get_by_text("未找到报警")).to_be_visible()
    expect(page.get_by_text(name)).to_have_count(0)

    page.goto(console.url("/alarms"))
    page.get_by_test_id("empty-create-rule").click()  # the empty list's way on
    expect(page.get_by_test_id("tab-rules")).to_have_class(re.compile("q-tab--active"))
    page.get_by_test_id("rule-device").click()
    expect(page.get_by_role("option", name="IMM-01 (e2-imm-01)", exact=True)).to_be_visible()
    expect(page.get_by_role("option", name="IMM-01 (e1-imm-01)", exact=True)).to_have_count(0)


def test_a_viewer_may_look_but_not_act(page: Page, console: LiveConsole) -> None:
    manager = _token(console, "manager1")
    name = f"For the viewer {uuid.uuid4().hex[:4]}"
    alarm_id = _always_firing_rule(console, manager, name, "e1-imm-02")
    username = f"viewer-{uuid.uuid4().hex[:6]}"
    user = {"username": username, "role": "viewer", "password": "demo-viewer"}
    _api(console, "POST", "/users", manager, user)

    sign_in(page, console, username, "demo-viewer")
    page.goto(console.url(f"/alarms/{alarm_id}"))
    expect(page.get_by_text(name).first).to_be_visible()
    page.get_by_test_id("detail-acknowledge").click()
    page.get_by_test_id("action-confirm").click()
    expect(page.get_by_text("您的角色无权执行此操作。")).to_be_visible()
    expect(page.get_by_test_id("detail-state")).to_have_text("报警未确认")


def test_a_failing_rule_is_fixed_in_the_form_and_then_deleted(
    page: Page, console: LiveConsole
) -> None:
    name = f"Fix me {uuid.uuid4().hex[:4]}"
    _rule(console, _token(console, "manager1"), name, "e1-imm-02", "state", "low")
    sign_in(page, console, "manager1")
    page.goto(console.url("/alarms?tab=rules"))
    row = page.get_by_test_id("rule-table").locator("tbody tr", has_text=name)
    expect(row.get_by_test_id("rule-status")).to_have_text("已停用", timeout=LIVE)
    expect(row.get_by_test_id("rule-reason")).to_contain_text("state")

    row.get_by_test_id("rule-edit").click()
    expect(page.get_by_test_id("rule-name")).to_have_value(name)
    expect(page.get_by_text("已停用： tag 'state'")).to_be_visible()
    _pick(page, "rule-tag", "barrel_zone2_temp")
    page.get_by_test_id("rule-limit").fill("-5")
    page.get_by_test_id("rule-save").click()
    expect(row).to_contain_text("barrel_zone2_temp > -5")
    expect(row.get_by_test_id("rule-status")).to_have_text("已启用")
    expect(row.get_by_test_id("rule-reason")).to_have_count(0)

    row.get_by_test_id("rule-delete").click()
    expect(page.get_by_text(f"删除规则 {name}？")).to_be_visible()
    page.get_by_test_id("confirm-delete").click()
    expect(page.get_by_text("规则已删除")).to_be_visible()
    expect(row).to_have_count(0)
