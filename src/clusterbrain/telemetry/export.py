"""Rows of a raw telemetry export, read from the store a few hours at a time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from clusterbrain.telemetry.store import TelemetryStore

POINT_EXPORT_COLUMNS = ("ts", "tag", "value", "text")
EXPORT_CHUNK = timedelta(hours=6)


def point_rows(
    store: TelemetryStore, device_id: str, tags: list[str], start: datetime, end: datetime
) -> Iterator[tuple[object, ...]]:
    """Raw points, numeric and text, in time order, read a few hours at a time."""
    cursor = start
    while cursor < end:
        upper = min(cursor + EXPORT_CHUNK, end)
        numbers = store.query_range(device_id, tags, cursor, upper).to_pylist()
        texts = store.query_text(device_id, tags, cursor, upper).to_pylist()
        rows = [(r["ts"], r["tag"], r["value"], None) for r in numbers]
        rows += [(r["ts"], r["tag"], None, r["text"]) for r in texts]
        rows.sort(key=lambda row: (row[0], row[1]))
        yield from rows
        cursor = upper
