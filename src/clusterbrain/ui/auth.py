"""Signing in and out of the console (用户登录)."""

from __future__ import annotations

from fastapi import Request
from nicegui import ui

from clusterbrain.platform.db import session_scope
from clusterbrain.platform.errors import Unauthenticated
from clusterbrain.platform.i18n import negotiate
from clusterbrain.platform.service import check_password
from clusterbrain.ui.context import Console, sign_in
from clusterbrain.ui.i18n import translate
from clusterbrain.ui.layout import page

LANGUAGES = {"zh-CN": "中文", "en": "English"}
"""Each language named in itself, so that the link reads right to whoever needs it."""

TEXT = {
    "Sign in": "登录",
    "Username": "用户名",
    "Password": "密码",
    "Wrong username or password": "用户名或密码错误",
    "Production data of your factory, live": "工厂生产数据，实时可见",
}


def register(console: Console) -> None:
    @page("/login")
    def login_page(request: Request, lang: str = "") -> None:
        viewer = console.viewer()
        if viewer is not None:
            ui.navigate.to("/")
            return
        # before sign-in the browser's preference decides; the user's own setting after it
        language = lang if lang in LANGUAGES else negotiate(request.headers.get("accept-language"))

        def t(text: str) -> str:
            return translate(console.catalogue, language, text, strict=console.strict)

        ui.page_title(f"{t('Sign in')} · {t('ClusterBrain')}")
        with ui.card().classes("absolute-center w-96 p-6 gap-3"):
            ui.label(t("ClusterBrain")).classes("text-2xl font-bold")
            ui.label(t("Production data of your factory, live")).classes("text-grey-7")
            username = ui.input(t("Username")).props('data-testid="username"').classes("w-full")
            password = (
                ui.input(t("Password"), password=True)
                .props('data-testid="password"')
                .classes("w-full")
            )
            error = ui.label("").classes("text-negative")

            def submit() -> None:
                with session_scope(console.runtime.sessions) as session:
                    try:
                        user = check_password(session, username.value or "", password.value or "")
                    except Unauthenticated:
                        error.text = t("Wrong username or password")
                        return
                    sign_in(user)
                ui.navigate.to("/")

            password.on("keydown.enter", submit)
            ui.button(t("Sign in"), on_click=submit).props('data-testid="sign-in"').classes(
                "w-full"
            )
            other = "en" if language == "zh-CN" else "zh-CN"
            ui.link(LANGUAGES[other], f"/login?lang={other}").props(
                'data-testid="login-language"'
            ).classes("self-end text-sm")
