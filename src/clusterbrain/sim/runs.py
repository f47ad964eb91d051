"""Long runs of a producing machine's state and counters at once, with numpy.

``MachineModel.step`` moves one sample at a time (12–45 µs a step in Python), which is right for
live simulation and fault injection but makes a year of one-second samples of a cluster (1.6
billion steps) a matter of days. ``producing_run`` draws the same processes event by event and
samples them on a grid with array operations:

- states: the model's exponential dwell times (``state_means``), drawn per stay rather than per
  step, and forced to idle in the meal breaks as ``_ProducingMachine._next_state`` does;
- parts: injection moulding completes a shot of ``cavities`` parts per cycle of running time
  (each cycle 1 % jittered), scrap drawn per shot (1.5 %, 13.5 % in the first 10 minutes after a
  setup); a CNC machine finishes a part per program cycle of running time;
- shift counters reset to zero at a shift change with the same probability as in ``step``;
- energy (injection moulding) integrates a power level per state.

What it leaves out: faults, and the barrel temperatures that raise scrap only when a heater
drifts (a fault). The two ways agree in distribution, not sample by sample (they draw their
random numbers differently); ``tests/sim/test_runs.py`` compares their statistics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from clusterbrain.sim.signals import (
    BREAKS_LOCAL_H,
    LOCAL_UTC_OFFSET_S,
    SHIFT_LENGTH_S,
    SHIFT_RESET_PROBABILITY,
    CncModel,
    InjectionMouldingModel,
    MachineModel,
)

STATES: tuple[str, ...] = ("running", "idle", "down", "setup")
SETUP_SCRAP_S = 600.0
BASE_SCRAP = 0.015
SETUP_SCRAP = 0.12
IMM_RUNNING_SHAPE = 0.3 * 1.6 + 0.7 * 0.55
"""The pump's mean load over a cycle: 1.6 for the first 30 % (injection), 0.55 after."""


@dataclass(frozen=True, slots=True)
class Run:
    """Samples every ``step`` seconds from ``start`` (UTC epoch seconds), ``ts[0] = start``."""

    ts: np.ndarray
    """Sample times, float64 epoch seconds."""
    state: np.ndarray
    """Index into ``STATES`` per sample (uint8)."""
    counters: dict[str, np.ndarray]
    """Tag → counter value per sample (int64 counts, float64 energy)."""

    def states(self) -> np.ndarray:
        """The state names per sample."""
        names: np.ndarray = np.asarray(STATES, dtype=object)[self.state]
        return names


def producing_run(model: MachineModel, start: float, samples: int, step: float) -> Run:
    """``samples`` samples of a fresh injection moulding or CNC model, ``step`` seconds apart.

    Consumes the model's own random streams, so a seed gives the same run every time.

    >>> import numpy as np
    >>> from clusterbrain.sim.signals import make_model
    >>> model = make_model("cnc", np.random.default_rng(1))
    >>> run = producing_run(model, 1_764_000_000.0, 3 * 3600, 1.0)
    >>> run.state.size, int(run.counters["part_count"].min()) >= 0
    (10800, True)
    """
    if not isinstance(model, InjectionMouldingModel | CncModel):
        raise ValueError(f"no closed-form run for {model.kind}: only machines that make parts")
    ts = start + step * np.arange(samples, dtype=np.float64)
    state = _states(model, ts)
    running = state == 0
    if isinstance(model, InjectionMouldingModel):
        counters = _moulding_counters(model, ts, step, state, running)
    else:
        counters = {"part_count": _resets(model, ts, _cnc_parts(model, step, running))}
    return Run(ts, state, counters)


# --- states ---------------------------------------------------------------------------------------


def break_windows(start: float, end: float) -> np.ndarray:
    """The meal breaks overlapping [start, end) as (begin, end) rows, UTC epoch seconds, sorted.

    >>> break_windows(4 * 3600.0, 5 * 3600.0).tolist()  # 12:00-13:00 in Zhongshan
    [[14400.0, 18000.0]]
    """
    first_day = math.floor((start + LOCAL_UTC_OFFSET_S) / 86400) - 1
    last_day = math.floor((end + LOCAL_UTC_OFFSET_S) / 86400) + 1
    rows = [
        (day * 86400 + a * 3600 - LOCAL_UTC_OFFSET_S, day * 86400 + b * 3600 - LOCAL_UTC_OFFSET_S)
        for day in range(first_day, last_day + 1)
        for a, b in BREAKS_LOCAL_H
    ]
    windows = np.array(sorted(rows), dtype=np.float64)
    keep = (windows[:, 1] > start) & (windows[:, 0] < end)
    return windows[keep]


def _states(model: MachineModel, ts: np.ndarray) -> np.ndarray:
    """Each sample's state: stays drawn one by one, a few hundred a week, then looked up."""
    assert isinstance(model, InjectionMouldingModel | CncModel)
    means = model.state_means
    codes = {name: code for code, name in enumerate(STATES)}
    exits = {
        state: ([codes[t] for t in targets], np.array([1.0 / m for m in targets.values()]))
        for state, targets in means.items()
    }
    rng = model._state_rng
    end = float(ts[-1]) + 1.0
    breaks = break_windows(float(ts[0]), end)
    starts: list[float] = [float(ts[0])]
    entered: list[int] = [codes["running"]]
    now, state, b = float(ts[0]), codes["running"], 0
    while now < end:
        while b < len(breaks) and breaks[b, 1] <= now:
            b += 1
        if b < len(breaks) and breaks[b, 0] <= now:  # in a break: idle until it ends
            if state != codes["idle"]:
                starts.append(now)
                entered.append(codes["idle"])
                state = codes["idle"]
            now = float(breaks[b, 1])
            continue
        targets, rates = exits[STATES[state]]
        total = float(rates.sum())
        dwell = rng.exponential(1.0 / total)
        next_break = float(breaks[b, 0]) if b < len(breaks) else math.inf
        if now + dwell >= next_break:
            now = next_break  # memoryless: the stay goes on after the break as a fresh draw
            continue
        now += dwell
        pick = int(np.searchsorted(np.cumsum(rates), rng.random() * total))
        state = targets[min(pick, len(targets) - 1)]
        starts.append(now)
        entered.append(state)
    # A step model enters a state at the first sample at or after the change.
    index = np.searchsorted(np.asarray(starts), ts, side="right") - 1
    return np.asarray(entered, dtype=np.uint8)[index]


# --- counters -------------------------------------------------------------------------------------


def _resets(model: MachineModel, ts: np.ndarray, cumulative: np.ndarray) -> np.ndarray:
    """A counter zeroed at some shift changes: at the first sample of a new shift, with the
    model's probability, the count before that sample is taken off what follows."""
    shifts = np.floor((ts + LOCAL_UTC_OFFSET_S - 8 * 3600) / SHIFT_LENGTH_S).astype(np.int64)
    changes = np.flatnonzero(np.diff(shifts)) + 1
    zeroed = changes[model._shift_rng.random(changes.size) < SHIFT_RESET_PROBABILITY]
    if zeroed.size == 0:
        return cumulative
    before = np.where(zeroed > 0, cumulative[zeroed - 1], 0)
    which = np.searchsorted(zeroed, np.arange(ts.size), side="right") - 1
    base = np.where(which >= 0, before[np.maximum(which, 0)], 0)
    return cumulative - base


def _running_time(step: float, running: np.ndarray) -> np.ndarray:
    """Seconds of running up to and including each sample's step."""
    return np.cumsum(running * step)


def _cnc_parts(model: CncModel, step: float, running: np.ndarray) -> np.ndarray:
    return np.floor(_running_time(step, running) / model._cycle_s).astype(np.int64)


def _moulding_counters(
    model: InjectionMouldingModel,
    ts: np.ndarray,
    step: float,
    state: np.ndarray,
    running: np.ndarray,
) -> dict[str, np.ndarray]:
    run_s = _running_time(step, running)
    total = float(run_s[-1]) if run_s.size else 0.0
    shots = int(total / model._nominal_cycle * 1.1) + 16
    noise = model._noise_rng.standard_normal(shots)
    done = np.cumsum(model._nominal_cycle * (1.0 + 0.01 * noise))
    done = done[done <= total]
    at = np.searchsorted(run_s, done, side="left")  # the sample whose step finished the shot
    p = np.where(_after_setup(ts, state)[at], BASE_SCRAP + SETUP_SCRAP, BASE_SCRAP)
    scrap_per_shot = model._scrap_rng.binomial(model._cavities, p)
    shots_by = np.searchsorted(done, run_s, side="right")  # shots finished by each sample
    scrap_cum = np.concatenate(([0], np.cumsum(scrap_per_shot)))[shots_by]
    good_cum = shots_by * model._cavities - scrap_cum
    return {
        "good_count": _resets(model, ts, good_cum.astype(np.int64)),
        "scrap_count": _resets(model, ts, scrap_cum.astype(np.int64)),
        "energy": np.round(np.cumsum(_moulding_power(model, state)) * step / 3600.0, 3),
    }


def _after_setup(ts: np.ndarray, state: np.ndarray) -> np.ndarray:
    """Samples in the first ``SETUP_SCRAP_S`` of running that came straight after a setup."""
    change = np.flatnonzero(np.diff(state.astype(np.int16))) + 1
    began = np.concatenate(([0], change))
    previous = np.concatenate(([state[0]], state[change - 1]))
    run_of = np.searchsorted(began, np.arange(state.size), side="right") - 1
    since = ts - ts[began[run_of]]
    setup_code = STATES.index("setup")
    after: np.ndarray = (state == 0) & (previous[run_of] == setup_code) & (since < SETUP_SCRAP_S)
    return after


def _moulding_power(model: InjectionMouldingModel, state: np.ndarray) -> np.ndarray:
    """kW per sample: pump by state (shaped by the cycle, on average, when running), heaters."""
    motor = np.array([IMM_RUNNING_SHAPE, 0.12, 0.0, 0.3])[state] * model._motor_kw
    heater = np.array([0.45, 0.35, 0.3, 0.4])[state] * model._heater_kw
    noise = model._noise_rng.standard_normal(state.size)
    power: np.ndarray = np.maximum(0.0, 0.5 + motor * (1.0 + 0.05 * noise) + heater)
    return power
