"""A year of KPIs: OEE with A/P/Q for every machine and day, from stored state changes and rollups.

    .venv/bin/python bench/kpi_year.py [--machines 50] [--days 365] [--step 60] [--keep DIR]

A cluster is provisioned in a folder (DuckDB store, SQLite metadata, the demo's two-shift
calendar) and the simulator's machine models run for ``--days`` at ``--step`` seconds per sample
(their dynamics are exact for any step length). Every day of every machine is written to the store
and handed to the production tracker, exactly as the ingest pipeline hands it each batch, so the
store holds the raw points and the tracker's state changes and counts. ``--keep`` keeps the folder
and reuses it on the next run with the same arguments.

Measured, for every machine and production day:
- stored: ``oee_service.machine_kpis_by_period(period="day", source="stored")``, which reads state
  changes and hourly rollups. Target: under 2 s for 50 machines and a year.
- raw: the same from raw points (``source="raw"``), the baseline that reads every sample.
- cross-check: from raw points again, each day through the scalar ``elements.time_elements``;
  every KPI of every machine-day must equal the stored result.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clusterbrain.api.provision import COUNTER_TAGS, provision_cluster
from clusterbrain.api.runtime import Runtime
from clusterbrain.platform.db import session_scope
from clusterbrain.platform.models import Machine
from clusterbrain.platform.service import bootstrap_admin, principal_of
from clusterbrain.platform.settings import Settings
from clusterbrain.production import oee_service
from clusterbrain.production.elements import time_elements
from clusterbrain.production.kpi import KpiSet, compute_kpis
from clusterbrain.production.models import MachineSettings
from clusterbrain.sim.signals import make_model
from clusterbrain.telemetry.decode import PointColumns
from common import machine, write_results

TARGET_S = 2.0
START = datetime(2025, 11, 24, 0, 0, tzinfo=UTC)  # a Monday, 08:00 in Shanghai: a day begins
WRITE_DAYS = 30
KPIS = ("availability", "effectiveness", "quality_ratio", "oee")


def _generate(runtime: Runtime, machines: int, days: int, step: float) -> int:
    """Provision, then simulate ``machines`` machines that have states (not the power meters)."""
    provisioned = provision_cluster(runtime, enterprises=5, machines=machines + machines // 9 + 1)
    devices = [d for d in provisioned if d.kind in COUNTER_TAGS][:machines]
    points = 0
    started = time.perf_counter()
    for number, device in enumerate(devices):
        model = make_model(device.kind, np.random.default_rng([11, number]))
        tags = [t for t in COUNTER_TAGS.get(device.kind, ()) if t]
        now = START.timestamp() - step
        model.step(now, step)
        columns = PointColumns()
        for day in range(days):
            for _ in range(round(86400 / step)):
                now += step
                sample = model.step(now, step)
                at = round(now * 1e6)
                columns.append(device.device_id, "state", at, None, str(sample["state"]), 0)
                for tag in tags:
                    columns.append(device.device_id, tag, at, float(sample[tag]), None, 0)
            # a month per write: the store pays a fixed cost per write (statements, rollups)
            if day % WRITE_DAYS == WRITE_DAYS - 1 or day == days - 1:
                table = columns.to_table()
                runtime.store.write(table)
                runtime.tracker.process(table)
                points += table.num_rows
                columns = PointColumns()
            if day % 73 == 72:
                print(
                    f"  machine {number + 1}/{len(devices)}, day {day + 1}: {points:,} points "
                    f"in {time.perf_counter() - started:.0f} s",
                    flush=True,
                )
    return points


def _folder(keep: str | None, key: dict[str, object]) -> tuple[Path, bool]:
    """The data folder and whether it already holds data generated with the same arguments."""
    if keep is None:
        return Path(tempfile.mkdtemp(prefix="cb-kpi-year-")), False
    folder = Path(keep)
    marker = folder / "generated.json"
    if marker.exists() and json.loads(marker.read_text()) == key:
        return folder, True
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder, False


def _reference(session, store, machine_row: Machine, periods) -> list[KpiSet]:  # type: ignore[no-untyped-def]
    """Each day from raw points through the scalar time_elements (the cross-check)."""
    start, end = periods[0][0], periods[-1][1]
    setup = oee_service.machine_setup(session, machine_row)
    calendar = oee_service.site_calendar(session, machine_row)
    operation, down = oee_service.planned_windows(calendar, start, end)
    intervals = oee_service.state_intervals(store, setup, start, end)
    outputs = oee_service.machine_outputs(store, setup, [], periods, stored=False)
    return [
        compute_kpis(time_elements(intervals, operation, down, period, output))
        for period, output in zip(periods, outputs, strict=True)
    ]


def run(machines: int, days: int, step: float, keep: str | None) -> dict[str, object]:
    key = {"machines": machines, "days": days, "step": step, "start": START.isoformat()}
    folder, reused = _folder(keep, key)
    runtime = Runtime(Settings(var_dir=folder))
    try:
        generated_s, points = 0.0, 0
        if not reused:
            began = time.perf_counter()
            points = _generate(runtime, machines, days, step)
            generated_s = time.perf_counter() - began
            (folder / "generated.json").write_text(json.dumps(key))
        end = START + timedelta(days=days)
        with session_scope(runtime.sessions) as session:
            principal = principal_of(bootstrap_admin(session, "admin")[0])
            ids = [
                s.machine_id
                for s in session.query(MachineSettings).order_by("machine_id")
                if runtime.store.last_before(s.device_id or "", ["state"], end) is not None
            ]
            timings: dict[str, float] = {}
            results = {}
            for source in ("stored", "raw"):
                began = time.perf_counter()
                results[source] = {
                    machine_id: oee_service.machine_kpis_by_period(
                        session,
                        runtime.store,
                        principal,
                        machine_id,
                        START,
                        end,
                        "day",
                        source=source,  # type: ignore[arg-type]
                    )[1]
                    for machine_id in ids
                }
                timings[source] = time.perf_counter() - began
            began = time.perf_counter()
            worst = 0.0
            compared = 0
            for machine_id in ids:
                row = session.get(Machine, machine_id)
                assert row is not None
                stored = results["stored"][machine_id]
                periods = [(r.start, r.end) for r in stored]
                for fast, slow in zip(
                    stored, _reference(session, runtime.store, row, periods), strict=True
                ):
                    for name in KPIS:
                        a, b = getattr(fast.kpis, name), getattr(slow, name)
                        if (a is None) != (b is None):
                            worst = float("inf")
                        elif a is not None and b is not None:
                            worst = max(worst, abs(a - b))
                    compared += 1
            timings["cross_check"] = time.perf_counter() - began
            oee = [
                r.kpis.oee
                for rs in results["stored"].values()
                for r in rs
                if r.kpis.oee is not None
            ]
        return {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(),
            **key,
            "points": points,
            "generated_s": generated_s,
            "machine_days": compared,
            "stored_s": timings["stored"],
            "raw_s": timings["raw"],
            "cross_check_s": timings["cross_check"],
            "max_kpi_difference": worst,
            "mean_daily_oee": float(np.mean(oee)) if oee else None,
            "target_s": TARGET_S,
            "pass": timings["stored"] < TARGET_S and worst < 1e-9,
        }
    finally:
        runtime.close()
        if keep is None:
            shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, default=50)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--step", type=float, default=60.0)
    parser.add_argument("--keep", help="keep the generated data here and reuse it")
    args = parser.parse_args()
    result = run(args.machines, args.days, args.step, args.keep)
    table = Table("what", "value", "target")
    table.add_row("machine-days", f"{result['machine_days']:,}", "")
    table.add_row(
        "OEE per machine and day, stored", f"{result['stored_s']:.2f} s", f"< {TARGET_S} s"
    )
    table.add_row("the same from raw points", f"{result['raw_s']:.2f} s", "")
    table.add_row(
        "largest KPI difference to the cross-check", f"{result['max_kpi_difference']:.2e}", "0"
    )
    table.add_row("verdict", "PASS" if result["pass"] else "FAIL", "")
    Console().print(table)
    print(write_results("kpi-year", result))


if __name__ == "__main__":
    main()
