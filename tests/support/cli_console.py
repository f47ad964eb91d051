"""A wide console for the `clusterbrain` command's tests: Rich sizes tables from the terminal,
which a test run may not have, and the tests read whole rows."""

from __future__ import annotations

import pytest
from rich.console import Console

from clusterbrain import cli

# the command's modules that print, each through its own name for the shared console
CONSOLE_MODULES = (
    cli.platform,
    cli.simulation,
    cli.production,
    cli.reports,
    cli.alarms,
    cli.gateway,
)


def widen_console(monkeypatch: pytest.MonkeyPatch) -> None:
    wide = Console(width=200)
    for module in CONSOLE_MODULES:
        monkeypatch.setattr(module, "console", wide)
