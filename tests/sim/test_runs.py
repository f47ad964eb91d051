"""Closed-form runs agree with the step-by-step models in distribution, and keep their rules."""

from __future__ import annotations

import numpy as np
import pytest

from clusterbrain.sim.runs import STATES, break_windows, producing_run
from clusterbrain.sim.signals import in_break, make_model, shift_index

START = 1_763_942_400.0  # 2025-11-24 00:00 UTC, 08:00 in Zhongshan: a shift begins
COUNTER = {"injection_moulding": "good_count", "cnc": "part_count"}


def _stepped(kind: str, seed: int, samples: int, step: float) -> tuple[np.ndarray, np.ndarray]:
    model = make_model(kind, np.random.default_rng([11, seed]))
    now = START - step
    model.step(now, step)
    states, counts = [], []
    for _ in range(samples):
        now += step
        sample = model.step(now, step)
        states.append(sample["state"])
        counts.append(sample[COUNTER[kind]])
    return np.array(states, dtype=object), np.array(counts)


def _made(counts: np.ndarray) -> int:
    """Parts counted, across the shift resets."""
    return int(np.maximum(np.diff(counts), 0).sum())


@pytest.mark.parametrize("kind", ["injection_moulding", "cnc"])
def test_a_run_has_the_statistics_of_the_stepped_model(kind: str) -> None:
    """Eight machines, a week each at one-minute steps: the same share of time in each state
    (pooled) and the same parts per running hour (per machine: same machine, same cycle)."""
    samples, step = 7 * 1440, 60.0
    shares = {"stepped": np.zeros(len(STATES)), "run": np.zeros(len(STATES))}
    for seed in range(8):
        states, counts = _stepped(kind, seed, samples, step)
        model = make_model(kind, np.random.default_rng([11, seed]))
        run = producing_run(model, START + step, samples, step)
        fast_states, fast_counts = run.states(), run.counters[COUNTER[kind]]
        for name, got in (("stepped", states), ("run", fast_states)):
            shares[name] += [np.mean(got == s) / 8 for s in STATES]
        per_hour = [
            _made(c) / max(1, np.sum(s == "running")) * 60
            for s, c in ((states, counts), (fast_states, fast_counts))
        ]
        assert per_hour[1] == pytest.approx(per_hour[0], rel=0.05), (seed, per_hour)
    assert np.abs(shares["run"] - shares["stepped"]).max() < 0.05, shares


def test_moulding_scrap_and_energy_are_those_of_the_stepped_model() -> None:
    scrap = {"stepped": [0, 0], "run": [0, 0]}
    energy = {"stepped": 0.0, "run": 0.0}
    for seed in range(6):
        model = make_model("injection_moulding", np.random.default_rng([11, seed]))
        now, step = START, 60.0
        model.step(now, step)
        samples = [model.step(now + step * (n + 1), step) for n in range(3 * 1440)]
        good = np.array([s["good_count"] for s in samples])
        bad = np.array([s["scrap_count"] for s in samples])
        scrap["stepped"][0] += _made(bad)
        scrap["stepped"][1] += _made(bad) + _made(good)
        energy["stepped"] += float(samples[-1]["energy"]) - float(samples[0]["energy"])
        model = make_model("injection_moulding", np.random.default_rng([11, seed]))
        run = producing_run(model, START + step, 3 * 1440, step)
        scrap["run"][0] += _made(run.counters["scrap_count"])
        scrap["run"][1] += _made(run.counters["scrap_count"]) + _made(run.counters["good_count"])
        energy["run"] += float(run.counters["energy"][-1] - run.counters["energy"][0])
    ratios = {k: v[0] / v[1] for k, v in scrap.items()}
    assert ratios["run"] == pytest.approx(ratios["stepped"], abs=0.006), ratios
    assert energy["run"] == pytest.approx(energy["stepped"], rel=0.1), energy


@pytest.mark.parametrize("kind", ["injection_moulding", "cnc"])
def test_a_run_keeps_breaks_counters_and_seeds(kind: str) -> None:
    model = make_model(kind, np.random.default_rng(3))
    run = producing_run(model, START, 3 * 86400, 1.0)
    states = run.states()
    breaks = np.array([in_break(t) for t in run.ts[::30]])
    assert (states[::30][breaks] == "idle").all() and breaks.any()
    counts = run.counters[COUNTER[kind]]
    assert counts.min() >= 0 and counts[0] <= 8
    drops = np.flatnonzero(np.diff(counts) < 0) + 1
    shifts = np.array([shift_index(t) for t in run.ts[drops]])
    before = np.array([shift_index(t) for t in run.ts[drops - 1]])
    assert (shifts != before).all()  # a counter only goes back at a shift change
    grows = np.diff(counts) > 0
    assert (states[1:][grows] == "running").all()  # parts are made only while running
    again = producing_run(make_model(kind, np.random.default_rng(3)), START, 3 * 86400, 1.0)
    assert (again.state == run.state).all() and (again.counters[COUNTER[kind]] == counts).all()


def test_only_machines_that_make_parts_have_runs() -> None:
    with pytest.raises(ValueError, match="air_compressor"):
        producing_run(make_model("air_compressor", np.random.default_rng(1)), START, 10, 1.0)


def test_break_windows_are_the_meal_breaks_in_utc() -> None:
    windows = break_windows(START, START + 86400)
    hours = sorted(((w[0] - START) / 3600, (w[1] - START) / 3600) for w in windows)
    assert hours == [(4.0, 5.0), (16.0, 16.5)]  # 12:00-13:00 and 00:00-00:30 local
