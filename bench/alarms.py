"""Alarm rules on the live stream: the cost of evaluating a cluster's rules, second by second.

    .venv/bin/python bench/alarms.py [--machines 200] [--minutes 10]

Every machine is an injection moulding machine of the simulator (17 tags at 1 Hz) with six rules:
a threshold with deadband and delay, a rate of change, no data, a state duration, an expression
over two tags and a second threshold. Each simulated second is one batch, split by device and
evaluated the way ``AlarmEngine.process`` does (Arrow filter per device, samples in time order,
``RuleSet.evaluate``). The floor is the same split and sample conversion without evaluating any
rule. The figure that matters is the share of one CPU core the rules take in real time.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clusterbrain.production.alarm_engine import _samples
from clusterbrain.production.rules import RuleSet, parse_rule
from clusterbrain.sim.signals import make_model
from clusterbrain.telemetry.decode import PointColumns
from common import machine, write_results

RULES = [
    {"type": "threshold", "id": "hot", "tag": "barrel_zone1_temp", "op": ">", "limit": 260,
     "deadband": 2, "delay_s": 5},
    {"type": "rate_of_change", "id": "pressure-jump", "tag": "injection_pressure",
     "max_rate_per_s": 200, "window_s": 10},
    {"type": "no_data", "id": "silent", "timeout_s": 30},
    {"type": "state_duration", "id": "down-10min", "state": "unplanned_down",
     "min_duration_s": 600},
    {"type": "expression", "id": "mould-vs-barrel",
     "expression": "barrel_zone4_temp - mould_temp > 250", "delay_s": 10},
    {"type": "threshold", "id": "slow-cycle", "tag": "cycle_time", "op": ">", "limit": 120},
]  # fmt: skip


def _batches(machines: int, seconds: int) -> list[pa.Table]:
    models = [make_model("injection_moulding", np.random.default_rng(i)) for i in range(machines)]
    start = datetime(2026, 11, 23, tzinfo=UTC).timestamp()
    out = []
    for second in range(seconds):
        columns = PointColumns()
        now = start + second
        for index, model in enumerate(models):
            for tag, value in model.step(now, 1.0).items():
                at = round(now * 1e6)
                if isinstance(value, str):
                    columns.append(f"m{index}", tag, at, None, value, 0)
                else:
                    columns.append(f"m{index}", tag, at, float(value), None, 0)
        out.append(columns.to_table())
    return out


def _split(table: pa.Table, devices: pa.Array) -> list[tuple[str, list[object]]]:
    mine = table.filter(pc.is_in(table["device_id"], devices))
    return [
        (device, _samples(mine.filter(pc.equal(mine["device_id"], device))))
        for device in set(mine.column("device_id").to_pylist())
    ]


def run(machines: int, minutes: int) -> dict[str, object]:
    batches = _batches(machines, minutes * 60)
    points = sum(b.num_rows for b in batches)
    devices = pa.array([f"m{i}" for i in range(machines)])
    started = time.perf_counter()
    for table in batches:
        _split(table, devices)
    floor_s = time.perf_counter() - started
    rulesets = {f"m{i}": RuleSet(parse_rule(r) for r in RULES) for i in range(machines)}
    transitions = 0
    started = time.perf_counter()
    for table in batches:
        for device, samples in _split(table, devices):
            result = rulesets[device].evaluate(samples)  # type: ignore[arg-type]
            transitions += len(result.transitions)
        now_us = int(table.column("ts")[0].value) + 1_000_000
        for ruleset in rulesets.values():
            ruleset.tick(now_us)
    rules_s = time.perf_counter() - started
    simulated = minutes * 60.0
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "machines": machines,
        "rules": machines * len(RULES),
        "simulated_s": simulated,
        "points": points,
        "floor_s": floor_s,
        "with_rules_s": rules_s,
        "rules_only_s": rules_s - floor_s,
        "transitions": transitions,
        "core_share": rules_s / simulated,
        "points_per_s": points / rules_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--machines", type=int, default=200)
    parser.add_argument("--minutes", type=int, default=10)
    args = parser.parse_args()
    result = run(args.machines, args.minutes)
    table = Table("what", "value")
    table.add_row("rules", f"{result['rules']:,} on {result['machines']} machines")
    table.add_row("simulated", f"{result['simulated_s']:.0f} s, {result['points']:,} points")
    table.add_row("split and convert only (floor)", f"{result['floor_s']:.2f} s")
    table.add_row("with every rule evaluated", f"{result['with_rules_s']:.2f} s")
    table.add_row("share of one core in real time", f"{result['core_share'] * 100:.1f} %")
    table.add_row("transitions", f"{result['transitions']:,}")
    Console().print(table)
    print(write_results("alarms", result))


if __name__ == "__main__":
    main()
