"""Mount the console on the FastAPI app (``/console``; ``/`` redirects there).

NiceGUI keeps one application per process, so the console can be mounted on one app per
process; NiceGUI is imported only here, after its storage folder is set to ``var_dir``.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from clusterbrain.api.runtime import Runtime

MOUNT_PATH = "/console"
_mounted: list[int] = []


def mount_console(app: FastAPI, runtime: Runtime) -> None:
    if _mounted:
        raise RuntimeError("the web console can be mounted on one app per process")
    folder = (runtime.settings.var_dir / "console").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("NICEGUI_STORAGE_PATH", str(folder))

    from nicegui import ui

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
    from clusterbrain.ui.context import Console
    from clusterbrain.ui.i18n import merge

    modules = (
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
    console = Console(
        runtime,
        merge(module.TEXT for module in modules),
        strict=runtime.settings.console_strict_i18n,
    )
    for module in modules:
        register = getattr(module, "register", None)
        if register is not None:
            register(console)
    ui.run_with(
        app,
        mount_path=MOUNT_PATH,
        storage_secret=_secret(runtime.settings.console_secret, folder),
        title="ClusterBrain",
        language="zh-CN",
        show_welcome_message=False,
        reconnect_timeout=10.0,
    )
    _mounted.append(id(app))

    @app.get("/", include_in_schema=False)
    def to_console() -> RedirectResponse:
        return RedirectResponse(f"{MOUNT_PATH}/")


def _secret(configured: str, folder: Path) -> str:
    """The configured secret, else one kept in the console's folder (made once)."""
    if configured:
        return configured
    path = folder / "secret"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(32))
        path.chmod(0o600)
    return path.read_text().strip()
