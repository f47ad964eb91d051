"""Console pages: machines."""

from __future__ import annotations

from clusterbrain.ui.context import Console

TEXT: dict[str, str] = {}


def register(console: Console) -> None:
    del console
