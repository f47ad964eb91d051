"""Imports flow one way (DESIGN.md §2): a lower room never imports a higher one."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "clusterbrain"
LEVEL = {
    "platform": 0,
    "sim": 0,
    "devices": 1,
    "telemetry": 2,
    "connectors": 3,
    "production": 3,
    "api": 4,
    "ui": 4,
    "cli": 5,
}
EXEMPT = {"platform/migrations/env.py"}  # the migration script sees every table by design


def _room(module: str) -> str | None:
    parts = module.split(".")
    if len(parts) < 2 or parts[0] != "clusterbrain":
        return None
    return parts[1]


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_imports_flow_one_way() -> None:
    violations = []
    for path in SRC.rglob("*.py"):
        relative = path.relative_to(SRC).as_posix()
        if relative in EXEMPT or "/" not in relative:
            continue
        own = relative.split("/")[0].removesuffix(".py")
        for module in _imports(path):
            room = _room(module)
            if room in LEVEL and LEVEL[room] > LEVEL[own]:
                violations.append(f"{relative} imports {module}")
    assert violations == []


def test_the_check_sees_rooms() -> None:
    assert _room("clusterbrain.api.app") == "api" and _room("os") is None
    assert LEVEL["platform"] < LEVEL["telemetry"] < LEVEL["api"]
