"""Imports every table module so that the metadata is complete (migrations, test schemas).

The one place that knows all capabilities' tables; it is only called, never run at import.
"""

from __future__ import annotations

import importlib

MODEL_MODULES = (
    "clusterbrain.platform.models",
    "clusterbrain.devices.models",
    "clusterbrain.telemetry.models",
    "clusterbrain.production.models",
)


def import_all_models() -> None:
    for name in MODEL_MODULES:
        importlib.import_module(name)
