"""The frame around every page: header with navigation, language, user and sign-out."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from nicegui import ui

from clusterbrain.platform.db import session_scope
from clusterbrain.platform.models import User
from clusterbrain.ui.context import Viewer, sign_out, usable_zone
from clusterbrain.ui.i18n import LANGUAGES

TEXT = {
    "ClusterBrain": "集群大脑",
    "Overview": "总览",
    "Alarms": "报警",
    "Devices": "设备接入",
    "Gateways": "边缘网关",
    "Reports": "报表",
    "Sign out": "退出登录",
    "Language": "语言",
    "Loading…": "加载中…",
    "Time zone": "时区",
}

ZONES = (
    "Asia/Shanghai",
    "Asia/Hong_Kong",
    "Asia/Taipei",
    "Asia/Singapore",
    "Asia/Kuala_Lumpur",
    "Asia/Bangkok",
    "Asia/Ho_Chi_Minh",
    "Asia/Jakarta",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Asia/Dubai",
    "Europe/Berlin",
    "Europe/London",
    "America/New_York",
    "America/Los_Angeles",
    "UTC",
)
"""Offered in the user menu; a zone set through the API that is not listed is offered too."""

PAGE_BUILD_TIMEOUT_S = 30.0
"""NiceGUI answers 500 when a page takes over 3 s to build; on a busy two-core server the first
reads of a page (KPIs of a shift, the device list) can take longer, so pages get more time."""


def page(path: str) -> ui.page:
    """``@ui.page`` with the console's build timeout."""
    return ui.page(path, response_timeout=PAGE_BUILD_TIMEOUT_S)


NAV = (
    ("Overview", "/"),
    ("Alarms", "/alarms"),
    ("Devices", "/devices"),
    ("Gateways", "/gateways"),
    ("Reports", "/reports"),
)


@contextmanager
def frame(viewer: Viewer, title: str) -> Iterator[None]:
    """Header and a content column; ``title`` is already translated."""
    ui.page_title(f"{title} · {viewer.t('ClusterBrain')}")
    ui.colors(primary="#1f4e79")
    with ui.header().classes("items-center gap-4 px-4 py-2 bg-primary"):
        ui.label(viewer.t("ClusterBrain")).classes("text-lg font-bold")
        for text, path in NAV:
            ui.link(viewer.t(text), path).classes("text-white no-underline").props(
                f'data-testid="nav-{path.strip("/") or "overview"}"'
            )
        ui.space()
        ui.select(
            dict(LANGUAGES),
            value=viewer.language,
            on_change=lambda e: _set_language(viewer, str(e.value)),
        ).props('dense dark borderless data-testid="language"').classes("w-24")
        with (
            ui.button(viewer.name, icon="account_circle").props(
                'flat no-caps color=white data-testid="user-menu"'
            ),
            ui.menu().classes("p-4"),
        ):
            zones = ZONES if viewer.timezone in ZONES else (viewer.timezone, *ZONES)
            ui.select(
                list(zones),
                value=viewer.timezone,
                label=viewer.t("Time zone"),
                on_change=lambda e: _set_timezone(viewer, str(e.value)),
            ).props('dense data-testid="timezone" virtual-scroll-slice-size=100').classes("w-56")
        ui.button(viewer.t("Sign out"), on_click=_sign_out).props(
            'flat color=white data-testid="sign-out"'
        )
    with ui.column().classes("w-full max-w-screen-xl mx-auto p-4 gap-4"):
        ui.label(title).classes("text-2xl font-semibold")
        yield


def _set_language(viewer: Viewer, language: str) -> None:
    if language == viewer.language or language not in LANGUAGES:
        return
    with session_scope(viewer.console.runtime.sessions) as session:
        user = session.get(User, viewer.principal.user_id)
        if user is not None:
            user.language = language
    ui.navigate.reload()


def _set_timezone(viewer: Viewer, zone: str) -> None:
    if zone == viewer.timezone or usable_zone(zone) != zone:
        return
    with session_scope(viewer.console.runtime.sessions) as session:
        user = session.get(User, viewer.principal.user_id)
        if user is not None:
            user.timezone = zone
    ui.navigate.reload()


def _sign_out() -> None:
    sign_out()
    ui.navigate.to("/login")


def empty_state(viewer: Viewer, message: str, hint: str) -> None:
    """What to show instead of an empty table: what it means and what to do next."""
    with ui.card().classes("w-full items-center p-8 text-center"):
        ui.icon("info", size="lg").classes("text-grey-6")
        ui.label(viewer.t(message)).classes("text-lg")
        ui.label(viewer.t(hint)).classes("text-grey-7")
