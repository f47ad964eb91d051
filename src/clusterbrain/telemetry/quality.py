"""The quality of a point, on its own so that the edge gateway can use it without the store.

The store (``telemetry.store``) needs pyarrow and numpy; the gateway, which only tags readings
with a quality, would carry some 60 MB of resident memory for them.
"""

from __future__ import annotations

import enum


class Quality(enum.IntEnum):
    """Point quality, after OPC UA's good / uncertain / bad."""

    GOOD = 0
    UNCERTAIN = 1  # e.g. outside the profile's expected range
    BAD = 2
