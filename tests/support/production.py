"""Telemetry of the classic worked OEE example, written straight into a store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa

from clusterbrain.telemetry.decode import PointColumns
from clusterbrain.telemetry.store import TelemetryStore

SHIFT_START = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)  # Monday 08:00 in Shanghai
MIN = timedelta(minutes=1)
CALENDAR = {
    "timezone": "Asia/Shanghai",
    "pattern": {"shifts": [{"name": "day", "start": "08:00", "end": "16:00"}]},
}


def _us(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000)


def write_worked_shift(store: TelemetryStore, device_id: str, t0: datetime = SHIFT_START) -> None:
    """An 8-hour shift, 1-min samples: down 200-230 and 450-480 min; 400 parts, 20 scrap.

    With a 60 s ideal cycle time: availability 87.5 %, effectiveness 95.2 %, quality 95 %.
    """
    store.write(worked_shift_table(device_id, t0))


def worked_shift_table(device_id: str, t0: datetime = SHIFT_START) -> pa.Table:
    """The points of :func:`write_worked_shift` as one POINT_SCHEMA table."""
    columns = PointColumns()
    for minute in range(0, 481):
        at = t0 + minute * MIN
        down = 200 <= minute < 230 or minute >= 450
        columns.append(device_id, "state", _us(at), None, "down" if down else "running", 0)
        made = min(minute, 400)
        columns.append(device_id, "good_count", _us(at), float(made - made // 20), None, 0)
        columns.append(device_id, "scrap_count", _us(at), float(made // 20), None, 0)
    return columns.to_table()
