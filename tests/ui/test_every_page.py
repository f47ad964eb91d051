"""Every page in both languages: nothing untranslated, and nothing of another enterprise."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import pytest
from playwright.sync_api import Page

from clusterbrain.ui import (
    alarms,
    auth,
    commands,
    devices,
    discovery,
    gateways,
    layout,
    machines,
    overview,
    reports,
)
from clusterbrain.ui.i18n import merge
from ui.conftest import LiveConsole, connected, sign_in

MODULES = (
    layout,
    auth,
    overview,
    machines,
    alarms,
    devices,
    gateways,
    commands,
    discovery,
    reports,
)
CATALOGUE = merge(m.TEXT for m in MODULES)
ENGLISH_ONLY = {en for en, zh in CATALOGUE.items() if en != zh}
CHINESE_ONLY = {zh for en, zh in CATALOGUE.items() if en != zh}


def _api(console: LiveConsole, path: str, token: str) -> Any:
    request = urllib.request.Request(
        console.base + path, headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _token(console: LiveConsole, username: str) -> str:
    request = urllib.request.Request(
        console.base + "/api/v1/auth/login",
        data=json.dumps({"username": username, "password": "demo"}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(json.loads(response.read())["token"])


def _pages(console: LiveConsole, username: str) -> list[str]:
    machine = _api(console, "/api/v1/machines", _token(console, username))[0]["id"]
    return ["/", f"/machines/{machine}", "/alarms", "/devices", "/gateways", "/reports"]


def _visible_lines(page: Page) -> list[str]:
    connected(page)  # not "networkidle": a live page's socket may fall back to polling
    page.wait_for_timeout(1500)  # live parts fill in
    text = page.locator("body").inner_text()
    return [line.strip() for line in text.splitlines() if line.strip()]


def _set_language(page: Page, name: str) -> None:
    page.get_by_test_id("language").click()
    page.get_by_role("option", name=name).click()
    page.wait_for_timeout(1000)


@pytest.mark.parametrize("language", ["zh-CN", "en"])
def test_no_untranslated_text_on_any_page(page: Page, console: LiveConsole, language: str) -> None:
    sign_in(page, console, "manager1")
    if language == "en":
        _set_language(page, "English")
    try:
        problems: list[str] = []
        for path in _pages(console, "manager1"):
            page.goto(console.url(path))
            for line in _visible_lines(page):
                if "⟦" in line:
                    problems.append(f"{path}: not in the catalogue: {line}")
                elif language == "zh-CN" and line in ENGLISH_ONLY:
                    problems.append(f"{path}: English in zh-CN: {line}")
                elif language == "en" and line in CHINESE_ONLY:
                    problems.append(f"{path}: Chinese in en: {line}")
        assert not problems, "\n".join(problems)
    finally:
        if language == "en":
            page.goto(console.url("/"))
            _set_language(page, "中文")


def test_a_user_sees_nothing_of_another_enterprise_even_by_url(
    page: Page, console: LiveConsole
) -> None:
    theirs = _token(console, "manager2")
    their_machines = _api(console, "/api/v1/machines", theirs)
    their_devices = _api(console, "/api/v1/devices", theirs)
    names = {m["name"] for m in their_machines} | {d["id"] for d in their_devices}
    mine = {m["name"] for m in _api(console, "/api/v1/machines", _token(console, "manager1"))}
    foreign = names - mine
    sign_in(page, console, "manager1")
    paths = ["/", "/alarms", "/devices", "/gateways", "/reports"]
    paths += [f"/machines/{m['id']}" for m in their_machines]
    for path in paths:
        page.goto(console.url(path))
        lines = _visible_lines(page)
        leaked = [line for line in lines if any(name in line for name in foreign)]
        assert not leaked, f"{path} shows another enterprise's data: {leaked}"
        if path.startswith("/machines/"):
            assert any("未找到" in line for line in lines), f"{path} should say not found"
