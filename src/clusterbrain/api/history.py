"""Recent history for the demo: the simulated machines' last hours, so a fresh demo shows
meaningful OEE for the running shift instead of hours of "no data" counted as lost time."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime

from clusterbrain.api.runtime import Runtime
from clusterbrain.sim.runner import Simulator
from clusterbrain.telemetry.pipeline import RawMessage

BACKFILL_STEP_S = 30.0
"""Well inside the state rules' offline gap (300 s), so the history has no false offline spans."""


def backfill_start(runtime: Runtime, device_ids: Sequence[str], hours: float, now: float) -> float:
    """Where history must begin: ``hours`` ago, or just after the newest data already stored."""
    start = now - hours * 3600
    moment = datetime.fromtimestamp(now, UTC)
    for device_id in device_ids:
        last = runtime.store.last_before(device_id, ["state"], moment)
        if last is not None:
            start = max(start, last.ts.timestamp() + BACKFILL_STEP_S)
    return start


def backfill_history(runtime: Runtime, simulator: Simulator, hours: float) -> int:
    """Run the simulator's models over the last ``hours`` into the ingest pipeline; points sent."""
    if hours <= 0:
        return 0
    now = time.time()
    start = backfill_start(runtime, [d.device_id for d in simulator.devices], hours, now)
    if now - start < 2 * BACKFILL_STEP_S:
        return 0
    points = 0
    for message in simulator.backfill(start, now, BACKFILL_STEP_S, batch=120):
        runtime.pipeline.submit(
            RawMessage(message.device_id, message.payload, "backfill", message.topic), timeout=None
        )
        points += message.points
    return points
