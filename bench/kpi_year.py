"""A year of KPIs: OEE with A/P/Q for every machine and day, from stored state changes and rollups.

    .venv/bin/python bench/kpi_year.py [--machines 50] [--days 365] [--step 60] [--keep DIR]
        [--models step|runs] [--check-every N]

A cluster is provisioned in a folder (DuckDB store, SQLite metadata, the demo's two-shift
calendar) and the simulator's machine models run for ``--days`` at ``--step`` seconds per sample
(their dynamics are exact for any step length). Every day of every machine is written to the store
and handed to the production tracker, exactly as the ingest pipeline hands it each batch, so the
store holds the raw points and the tracker's state changes and counts. ``--keep`` keeps the folder
and reuses it on the next run with the same arguments.

``--models runs`` draws the machines' states and counters as closed-form runs instead
(``sim/runs.py``: the same statistics without stepping every sample in Python; only machines that
make parts, injection moulding and CNC), which makes 1 s data of many machine-days feasible.
``--check-every N`` cross-checks every Nth day of each machine instead of all of them (reading raw
points costs about 30 µs a sample).

Measured, for every machine and production day:
- stored: ``oee_service.machines_kpis_by_period(period="day", source="stored")`` for all machines
  at once, which reads every machine's state changes and hourly rollups in one query each.
  Target: under 2 s for 50 machines and a year. Timed ``--repeat`` times; the median counts.
- one by one: ``machine_kpis_by_period`` machine after machine (what the API route does for one
  machine), for comparison.
- raw: the same from raw points (``source="raw"``), the baseline that reads every sample.
- cross-check: from raw points again, each day through the scalar ``elements.time_elements``;
  every KPI of every machine-day must equal the stored result.

The load average is recorded before and after: the machine is shared, so absolute times vary.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
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
from clusterbrain.production.derived import DERIVED_STATE
from clusterbrain.production.elements import time_elements
from clusterbrain.production.kpi import KpiSet, compute_kpis
from clusterbrain.production.models import MachineSettings
from clusterbrain.sim.runs import STATES, Run, producing_run
from clusterbrain.sim.signals import make_model
from clusterbrain.telemetry.decode import PointColumns
from clusterbrain.telemetry.store import POINT_SCHEMA
from common import machine, write_results

TARGET_S = 2.0
START = datetime(2025, 11, 24, 0, 0, tzinfo=UTC)  # a Monday, 08:00 in Shanghai: a day begins
WRITE_DAYS = 30
KPIS = ("availability", "effectiveness", "quality_ratio", "oee")


def _generate(runtime: Runtime, machines: int, days: int, step: float, workers: int) -> int:
    """Provision, then simulate ``machines`` machines that have states (not the power meters).

    The models run in ``workers`` processes, a machine each at a time; this process writes their
    months to the store and the tracker in machine order, as one process would.
    """
    provisioned = provision_cluster(runtime, enterprises=5, machines=machines + machines // 9 + 1)
    devices = [d for d in provisioned if d.kind in COUNTER_TAGS][:machines]
    tasks = [(n, d.kind, d.device_id, days, step) for n, d in enumerate(devices)]
    points = 0
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(max(1, workers)) as pool:
        for number, months in enumerate(pool.imap(_simulate, tasks)):
            for table in months:
                runtime.store.write(table)
                runtime.tracker.process(table)
                points += table.num_rows
            print(
                f"  machine {number + 1}/{len(devices)}: {points:,} points "
                f"in {time.perf_counter() - started:.0f} s",
                flush=True,
            )
    return points


RUN_KINDS = ("injection_moulding", "cnc")
RUN_WRITE_DAYS = 5


def _generate_runs(runtime: Runtime, machines: int, days: int, step: float) -> int:
    """Like ``_generate``, from closed-form runs (``sim/runs.py``) of machines that make parts.

    A machine's whole span is drawn at once (a year at 1 s: about 9 s) and then written and
    handed to the tracker ``RUN_WRITE_DAYS`` at a time, machine after machine. As in the
    platform, where the tracker folds in its own thread what ingest has stored, the store and
    the tracker work in two threads at once, while the next table is built.
    """
    total = machines
    while True:
        provisioned = provision_cluster(runtime, enterprises=5, machines=total)
        devices = [d for d in provisioned if d.kind in RUN_KINDS][:machines]
        if len(devices) == machines:
            break
        total += machines  # provisioning is idempotent: more machines, same first ones
    samples = round(days * 86400 / step)
    chunk = round(RUN_WRITE_DAYS * 86400 / step)
    points, started = 0, time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        pending: list[Future[int]] = []
        for number, device in enumerate(devices):
            model = make_model(device.kind, np.random.default_rng([11, number]))
            run = producing_run(model, START.timestamp(), samples, step)
            for first in range(0, samples, chunk):
                table = _run_table(device.device_id, run, first, min(samples, first + chunk))
                _wait(pending)
                pending = [
                    pool.submit(runtime.store.write, table),
                    pool.submit(runtime.tracker.process, table),
                ]
                points += table.num_rows
            print(
                f"  machine {number + 1}/{len(devices)}: {points:,} points "
                f"in {time.perf_counter() - started:.0f} s",
                flush=True,
            )
        _wait(pending)
    return points


def _wait(futures: list[Future[int]]) -> None:
    for future in futures:
        future.result()


def _run_table(device_id: str, run: Run, first: int, last: int) -> pa.Table:
    """Samples ``first``..``last`` of a run as stored points: the state, then each counter."""
    ts_us = np.round(run.ts[first:last] * 1e6).astype(np.int64)
    n = ts_us.size
    tags = ["state", *run.counters]
    values = [np.full(n, np.nan)] + [
        c[first:last].astype(np.float64) for c in run.counters.values()
    ]
    texts = pa.concat_arrays(
        [
            pa.array(STATES, pa.string()).take(pa.array(run.state[first:last])),
            pa.nulls(n * len(run.counters), pa.string()),
        ]
    )
    return pa.Table.from_arrays(
        [
            _repeated([device_id], n * len(tags)),
            _repeated(tags, n),
            pa.array(np.tile(ts_us, len(tags))).cast(pa.timestamp("us", tz="UTC")),
            pa.array(np.concatenate(values), pa.float64(), from_pandas=True),
            texts,
            pa.array(np.zeros(n * len(tags), np.int16)),
        ],
        schema=POINT_SCHEMA,
    )


def _repeated(texts: list[str], times: int) -> pa.Array:
    """Each text ``times`` times in a row, built from indices (no Python object per row)."""
    indices = np.repeat(np.arange(len(texts), dtype=np.int32), times)
    return pa.array(texts, pa.string()).take(pa.array(indices))


def _simulate(task: tuple[int, str, str, int, float]) -> list[pa.Table]:
    """One machine's points, a month per table: the store pays a fixed cost per write."""
    number, kind, device_id, days, step = task
    model = make_model(kind, np.random.default_rng([11, number]))
    tags = [t for t in COUNTER_TAGS.get(kind, ()) if t]
    now = START.timestamp() - step
    model.step(now, step)
    months = []
    columns = PointColumns()
    for day in range(days):
        for _ in range(round(86400 / step)):
            now += step
            sample = model.step(now, step)
            at = round(now * 1e6)
            columns.append(device_id, "state", at, None, str(sample["state"]), 0)
            for tag in tags:
                columns.append(device_id, tag, at, float(sample[tag]), None, 0)
        if day % WRITE_DAYS == WRITE_DAYS - 1 or day == days - 1:
            months.append(columns.to_table())
            columns = PointColumns()
    return months


def _folder(keep: str | None, key: dict[str, object]) -> tuple[Path, bool]:
    """The data folder and whether it already holds data generated with the same arguments."""
    if keep is None:
        return Path(tempfile.mkdtemp(prefix="cb-kpi-year-")), False
    folder = Path(keep)
    marker = folder / "generated.json"
    if marker.exists() and {k: json.loads(marker.read_text()).get(k) for k in key} == key:
        return folder, True
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder, False


def _reference(session, store, machine_row: Machine, periods) -> list[KpiSet]:  # type: ignore[no-untyped-def]
    """Each day from raw points through the scalar time_elements (the cross-check).

    The states are derived from the raw points once for the whole range; each day is handed
    only the intervals that overlap it (the others add nothing to its elements). Days apart
    (``--check-every`` above 1) are derived one by one: a year of 1 s samples between them
    would cost about 35 s a machine to read.
    """
    if any(a[1] != b[0] for a, b in itertools.pairwise(periods)):  # days apart: each alone
        return [r for p in periods for r in _reference(session, store, machine_row, [p])]
    start, end = periods[0][0], periods[-1][1]
    setup = oee_service.machine_setup(session, machine_row)
    calendar = oee_service.site_calendar(session, machine_row)
    operation, down = oee_service.planned_windows(calendar, start, end)
    intervals = oee_service.state_intervals(store, setup, start, end)
    ends = [i.end for i in intervals]
    outputs = oee_service.machine_outputs(store, setup, [], periods, stored=False)
    results = []
    for period, output in zip(periods, outputs, strict=True):
        first = bisect.bisect_right(ends, period[0])
        last = first
        while last < len(intervals) and intervals[last].start < period[1]:
            last += 1
        day = intervals[first:last]
        results.append(compute_kpis(time_elements(day, operation, down, period, output)))
    return results


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def run(
    machines: int,
    days: int,
    step: float,
    keep: str | None,
    repeat: int,
    workers: int,
    models: str = "step",
    check_every: int = 1,
) -> dict[str, object]:
    key = {
        "machines": machines,
        "days": days,
        "step": step,
        "start": START.isoformat(),
        "models": models,
    }
    folder, reused = _folder(keep, key)
    runtime = Runtime(Settings(var_dir=folder))
    try:
        generated_s, points = 0.0, 0
        if not reused:
            began = time.perf_counter()
            if models == "runs":
                points = _generate_runs(runtime, machines, days, step)
            else:
                points = _generate(runtime, machines, days, step, workers)
            generated_s = time.perf_counter() - began
            (folder / "generated.json").write_text(json.dumps({**key, "points": points}))
        else:
            points = int(json.loads((folder / "generated.json").read_text()).get("points", 0))
        end = START + timedelta(days=days)
        load_before = _load()
        with session_scope(runtime.sessions) as session:
            principal = principal_of(bootstrap_admin(session, "admin")[0])
            settings = session.query(MachineSettings).order_by("machine_id").all()
            devices = [s.device_id or "" for s in settings]
            found = runtime.store.last_before_many(devices, ["state"], end)
            ids = [s.machine_id for s in settings if (s.device_id or "") in found]
            state_changes = runtime.store.query_text_many(
                [s.device_id or "" for s in settings], [DERIVED_STATE], START, end
            ).num_rows
            stored_runs = []
            for _ in range(repeat):
                began = time.perf_counter()
                stored = oee_service.machines_kpis_by_period(
                    session, runtime.store, principal, ids, START, end, "day", source="stored"
                )
                stored_runs.append(time.perf_counter() - began)
            timings: dict[str, float] = {"stored": statistics.median(stored_runs)}
            began = time.perf_counter()
            one_by_one = {
                machine_id: oee_service.machine_kpis_by_period(
                    session,
                    runtime.store,
                    principal,
                    machine_id,
                    START,
                    end,
                    "day",
                    source="stored",
                )[1]
                for machine_id in ids
            }
            timings["one_by_one"] = time.perf_counter() - began
            same_one_by_one = one_by_one == stored
            began = time.perf_counter()
            checked = {m: stored[m][::check_every] for m in ids}
            if check_every == 1:
                raw = {
                    m: oee_service.machine_kpis_by_period(
                        session, runtime.store, principal, m, START, end, "day", source="raw"
                    )[1]
                    for m in ids
                }
            else:  # day by day: each checked day's raw points, and only those, are read
                raw = {
                    m: [
                        oee_service.machine_kpis_by_period(
                            session,
                            runtime.store,
                            principal,
                            m,
                            r.start,
                            r.end,
                            "day",
                            source="raw",
                        )[1][0]
                        for r in checked[m]
                    ]
                    for m in ids
                }
            timings["raw"] = time.perf_counter() - began
            began = time.perf_counter()
            worst = 0.0
            worst_raw = 0.0
            compared = 0
            for machine_id in ids:
                row = session.get(Machine, machine_id)
                assert row is not None
                mine = checked[machine_id]
                periods = [(r.start, r.end) for r in mine]
                reference = _reference(session, runtime.store, row, periods)
                for fast, slow, other in zip(mine, reference, raw[machine_id], strict=True):
                    worst = max(worst, _difference(fast.kpis, slow))
                    worst_raw = max(worst_raw, _difference(fast.kpis, other.kpis))
                    compared += 1
            timings["cross_check"] = time.perf_counter() - began
            oee = [r.kpis.oee for rs in stored.values() for r in rs if r.kpis.oee is not None]
        return {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": machine(),
            "load_average_before": load_before,
            "load_average_after": _load(),
            **key,
            "points": points,
            "stored_state_changes": state_changes,
            "generated_s": generated_s,
            "workers": workers if not reused else None,
            "machine_days": sum(len(rs) for rs in stored.values()),
            "machine_days_checked": compared,
            "check_every": check_every,
            "stored_s": timings["stored"],
            "stored_runs_s": stored_runs,
            "one_by_one_s": timings["one_by_one"],
            "one_by_one_identical": same_one_by_one,
            "raw_s": timings["raw"],
            "cross_check_s": timings["cross_check"],
            "max_kpi_difference": worst,
            "max_kpi_difference_raw_path": worst_raw,
            "mean_daily_oee": float(np.mean(oee)) if oee else None,
            "target_s": TARGET_S,
            "pass": timings["stored"] < TARGET_S and worst < 1e-9 and same_one_by_one,
        }
    finally:
        runtime.close()
        if keep is None:
            shutil.rmtree(folder, ignore_errors=True)


def _difference(a: KpiSet, b: KpiSet) -> float:
    """The largest difference of OEE and its components; inf when one is undefined alone."""
    worst = 0.0
    for name in KPIS:
        x, y = getattr(a, name), getattr(b, name)
        if (x is None) != (y is None):
            return float("inf")
        if x is not None and y is not None:
            worst = max(worst, abs(x - y))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, default=50)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--step", type=float, default=60.0)
    parser.add_argument("--keep", help="keep the generated data here and reuse it")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of the stored path")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="processes running the models"
    )
    parser.add_argument(
        "--models",
        choices=["step", "runs"],
        default="step",
        help="step: the simulator's models sample by sample (all machines with states); runs: "
        "closed-form runs of the machines that make parts (sim/runs.py), for 1 s data",
    )
    parser.add_argument(
        "--check-every",
        type=int,
        default=1,
        help="cross-check every Nth day of each machine from raw points (1: every day)",
    )
    args = parser.parse_args()
    result = run(
        args.machines,
        args.days,
        args.step,
        args.keep,
        args.repeat,
        args.workers,
        args.models,
        args.check_every,
    )
    table = Table("what", "value", "target")
    table.add_row("machine-days", f"{result['machine_days']:,}", "")
    table.add_row("machine-days cross-checked", f"{result['machine_days_checked']:,}", "")
    table.add_row("raw points", f"{result['points']:,}", "")
    table.add_row("stored state changes", f"{result['stored_state_changes']:,}", "")
    table.add_row(
        "OEE per machine and day, stored (median)", f"{result['stored_s']:.2f} s", f"< {TARGET_S} s"
    )
    table.add_row("the same, one machine at a time", f"{result['one_by_one_s']:.2f} s", "")
    table.add_row("the same from raw points", f"{result['raw_s']:.2f} s", "")
    table.add_row("cross-check", f"{result['cross_check_s']:.1f} s", "")
    table.add_row(
        "largest KPI difference to the cross-check", f"{result['max_kpi_difference']:.2e}", "0"
    )
    table.add_row(
        "load average before, after",
        f"{result['load_average_before']}, {result['load_average_after']}",
        "",
    )
    table.add_row("verdict", "PASS" if result["pass"] else "FAIL", "")
    Console().print(table)
    print(write_results("kpi-year", result))


if __name__ == "__main__":
    main()
