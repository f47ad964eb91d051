"""A live console for browser tests: ``clusterbrain demo`` in a subprocess (embedded broker,
simulated machines streaming, strict translations), and Debian's Chromium driven by Playwright."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from support.services import free_port, missing_service

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
VIEWPORT = {"width": 1280, "height": 800}  # a tablet beside the line
ASSERTION_MS = 15_000
"""How long an ``expect`` waits for the page to get there (Playwright's default is 5 s): the
console shares the machine with the rest of the suite, which slows its answers."""


@dataclass(frozen=True)
class LiveConsole:
    base: str
    admin_token: str
    var_dir: Path

    def url(self, path: str) -> str:
        return f"{self.base}/console{path}"


@pytest.fixture(scope="session")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveConsole]:
    var_dir = tmp_path_factory.mktemp("console")
    port, mqtt_port = free_port(), free_port()
    env = {**os.environ, "CLUSTERBRAIN_CONSOLE_STRICT_I18N": "1", "NO_COLOR": "1", "COLUMNS": "200"}
    log = (var_dir / "demo.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable, "-m", "clusterbrain.cli", "demo",
            "--port", str(port), "--mqtt-port", str(mqtt_port),
            "--enterprises", "2", "--machines", "8", "--var-dir", str(var_dir / "data"), "--history-hours", "12",
        ],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, process, var_dir / "demo.log")
        token = re.search(r"cbt_[A-Za-z0-9_-]+", (var_dir / "demo.log").read_text())
        assert token, "the demo prints an admin token"
        yield LiveConsole(base, token.group(0), var_dir)
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def _wait_healthy(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the demo exited:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"the demo did not become healthy:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        missing_service("Chromium (/usr/bin/chromium; `make test` installs it)")
    expect.set_options(timeout=ASSERTION_MS)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=VIEWPORT, locale="zh-CN")
    context.set_default_timeout(20_000)
    opened = context.new_page()
    yield opened
    context.close()


LANGUAGE_SWITCH_MS = 20_000
"""How long a test waits for the page in its new language: switching reloads the page, which
takes more than Playwright's default 5 s when the machine is busy with the rest of the suite."""


def sign_in(page: Page, console: LiveConsole, username: str, password: str = "demo") -> None:
    page.goto(console.url("/login"))
    page.get_by_test_id("username").fill(username)
    page.get_by_test_id("password").fill(password)
    page.get_by_test_id("sign-in").click()
    page.wait_for_url(console.url("/"))


def connected(page: Page) -> None:
    """Wait until the page's websocket is connected: a click before that is lost."""
    page.wait_for_function("() => window.did_handshake === true", timeout=60_000)


def screenshot(page: Page, name: str, language: str) -> Path:
    """Save the page for docs/screenshots (shown in the README)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}-{language}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
