"""The console in a real browser: sign-in, the live overview, languages, tenancy by URL."""

from __future__ import annotations

import re
import time

from playwright.sync_api import Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from clusterbrain.sim.signals import in_break
from ui.conftest import LANGUAGE_SWITCH_MS, LiveConsole, connected, screenshot, sign_in


def test_sign_in_refuses_a_wrong_password_then_signs_in(page: Page, console: LiveConsole) -> None:
    page.goto(console.url("/"))
    page.wait_for_url(console.url("/login"))
    page.get_by_test_id("username").fill("manager1")
    page.get_by_test_id("password").fill("wrong")
    page.get_by_test_id("sign-in").click()
    expect(page.get_by_text("用户名或密码错误")).to_be_visible()
    screenshot(page, "sign-in", "zh-CN")
    page.get_by_test_id("login-language").click()
    expect(page.get_by_test_id("sign-in")).to_have_text("Sign in")
    page.get_by_test_id("username").fill("manager1")
    page.get_by_test_id("password").fill("wrong")
    page.get_by_test_id("sign-in").click()
    expect(page.get_by_text("Wrong username or password")).to_be_visible()
    screenshot(page, "sign-in", "en")
    sign_in(page, console, "manager1")
    expect(page.get_by_test_id("nav-overview")).to_have_text("总览")


RESTART_GRACE_S = 15 * 60
"""After a break the simulated machines stay idle until their operators start them again, on
average 8 to 15 minutes later (``state_means``), so a still grid is expected that long too."""


def _quiet_for_a_break(now: float) -> bool:
    return in_break(now) or in_break(now - RESTART_GRACE_S)


def _shown_idle_in_a_break(page: Page) -> None:
    """In the simulated plant's meal breaks (12:00-13:00 and 00:00-00:30 in Zhongshan) the
    operators stop the machines and nothing on the grid moves: it must show them idle (and just
    after a break, until they are started again)."""
    states = page.locator('[data-testid^="state-"]').all_inner_texts()
    assert states and states.count("空闲") >= len(states) / 2, states


def test_the_machine_grid_follows_the_simulator(page: Page, console: LiveConsole) -> None:
    sign_in(page, console, "manager1")
    tiles = page.locator('[data-testid^="machine-"]')
    expect(tiles.first).to_be_visible()
    assert tiles.count() >= 3
    cycle = page.get_by_text(re.compile(r"节拍: \d+\.\d s")).first
    expect(cycle).to_be_visible()
    before = page.locator('[data-testid^="machine-"]').all_inner_texts()
    changed = False
    for _ in range(40):  # live values (cycle time, counts) move while the simulator runs
        page.wait_for_timeout(500)
        if page.locator('[data-testid^="machine-"]').all_inner_texts() != before:
            changed = True
            break
    if not changed and _quiet_for_a_break(time.time()):
        _shown_idle_in_a_break(page)
    else:
        assert changed, "the grid never changed although the simulated machines are producing"
    for badge in page.get_by_test_id("open-alarm").all():  # priorities and states translated
        assert not re.search(r"\b(low|medium|high|critical|unack|active)\b", badge.inner_text())
    expect(page.get_by_test_id("kpi-card").first).to_be_visible(timeout=60_000)  # after the grid
    screenshot(page, "overview", "zh-CN")


def test_tiles_change_in_place_without_rebuilding_the_grid(
    page: Page, console: LiveConsole
) -> None:
    sign_in(page, console, "manager1")
    tiles = page.locator('[data-testid^="machine-"]')
    expect(tiles.first).to_be_visible()
    count = tiles.count()
    # mark the page and every tile's DOM node; a reload or a rebuilt grid would lose the marks
    page.evaluate(
        """(selector) => { window.cbMarked = true;
            document.querySelectorAll(selector).forEach((t) => { t.cbText = t.innerText; }); }""",
        '[data-testid^="machine-"]',
    )
    try:
        page.wait_for_function(
            """(selector) => [...document.querySelectorAll(selector)].some(
                (t) => t.cbText !== undefined && t.innerText !== t.cbText)""",
            arg='[data-testid^="machine-"]',
            timeout=30_000,
        )
    except PlaywrightTimeout:
        if not _quiet_for_a_break(time.time()):
            raise
        _shown_idle_in_a_break(page)  # nothing moves in a break; the tiles must still be there
    kept = page.evaluate(
        """(selector) => window.cbMarked === true && [...document.querySelectorAll(selector)]
            .every((t) => t.cbText !== undefined)""",
        '[data-testid^="machine-"]',
    )
    assert kept, "a refresh replaced tiles instead of changing them"
    assert tiles.count() == count
    expect(page.get_by_test_id("kpi-card").first).to_be_visible(timeout=60_000)


def test_the_language_switches_to_english_and_back(page: Page, console: LiveConsole) -> None:
    sign_in(page, console, "manager2")
    page.get_by_test_id("language").click()
    page.get_by_role("option", name="English").click()
    expect(page.get_by_test_id("nav-overview")).to_have_text("Overview", timeout=LANGUAGE_SWITCH_MS)
    expect(page.locator('[data-testid^="machine-"]').first).to_be_visible()
    expect(page.get_by_test_id("kpi-card").first).to_be_visible(timeout=60_000)  # after the grid
    screenshot(page, "overview", "en")
    page.get_by_test_id("language").click()
    page.get_by_role("option", name="中文").click()
    expect(page.get_by_test_id("nav-overview")).to_have_text("总览", timeout=LANGUAGE_SWITCH_MS)


def _zone_of(console: LiveConsole, username: str) -> str:
    import json
    import urllib.request

    request = urllib.request.Request(
        f"{console.base}/api/v1/users",
        headers={"Authorization": f"Bearer {console.admin_token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        users = json.load(response)
    return str(next(u["timezone"] for u in users if u["username"] == username))


def _pick_zone(page: Page, console: LiveConsole, zone: str) -> None:
    """Pick a zone in the user menu; wait until it is stored and the page is built again."""
    page.evaluate("() => { window.cbBeforeZone = true; }")  # gone once the page has reloaded
    page.get_by_test_id("user-menu").click()
    page.get_by_test_id("timezone").click()
    page.get_by_role("option", name=zone, exact=True).click()
    for _ in range(100):
        if _zone_of(console, "manager2") == zone:
            break
        page.wait_for_timeout(100)
    assert _zone_of(console, "manager2") == zone
    page.wait_for_function("() => window.cbBeforeZone === undefined")  # the page reloads
    connected(page)
    expect(page.get_by_test_id("nav-overview")).to_be_visible()
    page.get_by_test_id("user-menu").click()
    expect(page.get_by_test_id("timezone")).to_contain_text(zone)
    page.keyboard.press("Escape")


def test_a_user_picks_a_time_zone_from_the_user_menu(page: Page, console: LiveConsole) -> None:
    sign_in(page, console, "manager2")
    assert _zone_of(console, "manager2") == "Asia/Shanghai"
    _pick_zone(page, console, "UTC")
    _pick_zone(page, console, "Asia/Shanghai")
