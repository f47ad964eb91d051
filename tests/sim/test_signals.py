"""Signal models: determinism, plausible ranges, counters, and faults that show exactly where labelled."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clusterbrain.sim.profiles import MACHINE_STATES, PROFILES, ProfileSpec
from clusterbrain.sim.signals import (
    FAULT_DURATION_S,
    MODEL_CLASSES,
    FaultKind,
    Sample,
    affected_tags,
    fault_targets,
    make_model,
    plan_faults,
    shift_index,
    simulate,
)

T0 = 1_795_568_400.0  # 2026-11-25 01:00 UTC = 09:00 in Zhongshan, a Wednesday: mid day shift
KINDS = sorted(PROFILES)
PRODUCING = ["injection_moulding", "cnc", "air_compressor"]
COUNTERS = {kind: PROFILES[kind].counters for kind in KINDS}


def run(
    kind: str,
    seed: int,
    steps: int,
    dt: float = 1.0,
    fault: tuple[FaultKind, float, float, str | None] | None = None,
) -> list[Sample]:
    model = make_model(kind, np.random.default_rng(seed))
    if fault is not None:
        kind_, start, duration, tag = fault
        model.inject(kind_, start, duration, tag)
    return [sample for _, sample in simulate(model, T0, steps, dt)]


def column(samples: list[Sample], tag: str) -> np.ndarray:
    return np.array([s[tag] for s in samples], dtype=float)


def in_window(dt: float, start: float, end: float, steps: int) -> np.ndarray:
    t = T0 + np.arange(steps) * dt
    return (t >= start) & (t < end)


def assert_in_profile(profile: ProfileSpec, sample: Sample) -> None:
    assert set(sample) == set(profile.tag_names)
    for spec in profile.tags:
        value = sample[spec.name]
        if spec.data_type == "string":
            assert value in MACHINE_STATES
        elif spec.data_type == "bool":
            assert isinstance(value, bool)
        else:
            expected = int if spec.data_type == "int" else float
            assert type(value) is expected, (spec.name, value)
            assert isinstance(value, int | float) and math.isfinite(value)
            assert spec.min_value is None or value >= spec.min_value, (spec.name, value)
            assert spec.max_value is None or value <= spec.max_value, (spec.name, value)


# --- determinism -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_gives_the_same_signals(kind: str) -> None:
    assert run(kind, 7, 2000) == run(kind, 7, 2000)


@pytest.mark.parametrize("kind", KINDS)
def test_different_seeds_give_different_signals(kind: str) -> None:
    assert run(kind, 7, 200) != run(kind, 8, 200)


# --- normal operation ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_values_stay_inside_the_profile_in_normal_operation(kind: str, seed: int) -> None:
    for sample in run(kind, seed, 8 * 3600 // 2, dt=2.0):
        assert_in_profile(PROFILES[kind], sample)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**63), kind=st.sampled_from(KINDS), dt=st.sampled_from([1.0, 60.0]))
def test_any_seed_and_step_stays_inside_the_profile(kind: str, seed: int, dt: float) -> None:
    for sample in run(kind, seed, 600, dt=dt):
        assert_in_profile(PROFILES[kind], sample)


@pytest.mark.parametrize("kind", ["injection_moulding", "cnc"])
def test_counters_only_grow_except_resets_to_zero_at_a_shift_change(kind: str) -> None:
    dt, steps = 10.0, 4 * 86400 // 10
    resets = shift_changes = 0
    for seed in range(4):
        samples = run(kind, seed, steps, dt)
        shifts = [shift_index(T0 + i * dt) for i in range(steps)]
        shift_changes += len(set(shifts)) - 1
        for tag in COUNTERS[kind]:
            values = column(samples, tag)
            drops = np.flatnonzero(np.diff(values) < 0) + 1
            for i in drops:
                assert shifts[i] != shifts[i - 1], f"{tag} fell outside a shift change"
                assert values[i] <= values[i - 1] / 2 or values[i] < 50
            resets += len(drops)
    assert 0 < resets < shift_changes * len(COUNTERS[kind])


def test_injection_moulding_counts_parts_while_running_only() -> None:
    samples = run("injection_moulding", 3, 6 * 3600)
    parts = column(samples, "good_count") + column(samples, "scrap_count")
    grew = np.flatnonzero(np.diff(parts) > 0) + 1
    assert len(grew) > 100
    assert all(samples[i]["state"] == "running" for i in grew)
    scrap_share = column(samples, "scrap_count")[-1] / max(parts[-1], 1)
    assert 0.0 <= scrap_share < 0.2


def test_compressor_pressure_saw_tooths_between_its_setpoints() -> None:
    samples = run("air_compressor", 4, 3600)
    running = [s for s in samples if s["state"] == "running"]
    pressure = column(running, "discharge_pressure")
    assert 6.0 < pressure.min() < pressure.max() < 9.0
    loaded = column(running, "motor_current") > 0.6 * column(running, "motor_current").max()
    assert 5 < np.count_nonzero(np.diff(loaded.astype(int)) == 1) < 200


def test_power_meter_follows_the_working_day() -> None:
    samples = run("power_meter", 5, 24 * 60, dt=60.0)
    power = column(samples, "active_power")
    hours = [(9 + i / 60) % 24 for i in range(len(samples))]  # T0 is 09:00 local
    day = power[[i for i, h in enumerate(hours) if 9 <= h < 11]].mean()
    night = power[[i for i, h in enumerate(hours) if 1 <= h < 5]].mean()
    assert day > 2 * night


def test_coarse_steps_keep_the_energy_of_fine_steps() -> None:
    fine = run("power_meter", 6, 6 * 3600, dt=1.0)[-1]["energy_kwh"]
    coarse = run("power_meter", 6, 6 * 60, dt=60.0)[-1]["energy_kwh"]
    assert isinstance(fine, float) and isinstance(coarse, float)
    assert coarse == pytest.approx(fine, rel=0.05)


# --- faults ----------------------------------------------------------------------------------


def paired(
    kind: str, seed: int, fault: FaultKind, tag: str | None, start_s: float, duration: float
) -> tuple[list[Sample], list[Sample], np.ndarray, tuple[str, ...]]:
    """The same machine without and with the fault; the fault window; the labelled tags."""
    steps = int(start_s + duration + 600)
    start = T0 + start_s
    base = run(kind, seed, steps)
    faulty = run(kind, seed, steps, fault=(fault, start, duration, tag))
    window = in_window(1.0, start, start + duration, steps)
    return base, faulty, window, affected_tags(kind, fault, tag)


def assert_unlabelled_tags_unchanged(
    base: list[Sample], faulty: list[Sample], labelled: tuple[str, ...]
) -> None:
    for tag in base[0]:
        if tag not in labelled:
            assert [s[tag] for s in base] == [s[tag] for s in faulty], tag


def test_heater_drift_moves_one_zone_away_from_the_healthy_run() -> None:
    tag = "barrel_zone3_temp"
    base, faulty, window, labelled = paired(
        "injection_moulding", 11, FaultKind.HEATER_DRIFT, tag, 600, 40 * 60
    )
    gap = np.abs(column(faulty, tag) - column(base, tag))
    assert gap[~window][:600].max() == 0.0
    assert gap[window][-60:].min() > 10.0
    assert labelled[0] == tag
    assert_unlabelled_tags_unchanged(base, faulty, labelled)


@pytest.mark.parametrize("kind", ["cnc", "air_compressor"])
def test_bearing_wear_raises_vibration_progressively(kind: str) -> None:
    base, faulty, window, labelled = paired(kind, 12, FaultKind.BEARING_WEAR, None, 600, 3 * 3600)
    turning = (column(base, "vibration_rms") > 0.3) & (column(faulty, "vibration_rms") > 0.3)
    ratio = column(faulty, "vibration_rms") / np.maximum(column(base, "vibration_rms"), 1e-6)
    idx = np.flatnonzero(window & turning)
    assert len(idx) > 1000
    early, late = idx[: len(idx) // 5], idx[-len(idx) // 5 :]
    assert ratio[early].mean() < 1.5
    assert ratio[late].mean() > 2.5
    assert "vibration_rms" in labelled
    assert_unlabelled_tags_unchanged(base, faulty, labelled)


@pytest.mark.parametrize("kind", KINDS)
def test_stuck_sensor_holds_its_last_value(kind: str) -> None:
    tag = {"injection_moulding": "mould_temp", "cnc": "power"}.get(
        kind, fault_targets(kind, FaultKind.STUCK_SENSOR)[0]
    )
    base, faulty, window, labelled = paired(kind, 13, FaultKind.STUCK_SENSOR, tag, 300, 1200)
    stuck = column(faulty, tag)[window]
    first = int(np.flatnonzero(window)[0])
    assert np.all(stuck == faulty[first - 1][tag])
    assert np.ptp(column(base, tag)[window]) > 0
    after = ~window & (np.arange(len(base)) > first)
    assert column(faulty, tag)[after].tolist() == column(base, tag)[after].tolist()
    assert labelled == (tag,)
    assert_unlabelled_tags_unchanged(base, faulty, labelled)


@pytest.mark.parametrize("kind", PRODUCING)
def test_unplanned_stop_sets_down_stops_counting_and_drops_power(kind: str) -> None:
    base, faulty, window, labelled = paired(kind, 14, FaultKind.UNPLANNED_STOP, None, 300, 1800)
    stopped = [s for s, w in zip(faulty, window, strict=True) if w]
    assert {s["state"] for s in stopped} == {"down"}
    assert all(s["alarm_active"] is True for s in stopped)
    for tag in COUNTERS[kind]:
        assert len({s[tag] for s in stopped}) == 1
    assert column(stopped, "power").mean() < 0.5 * column(base, "power")[window].mean()
    after = int(np.flatnonzero(window)[-1]) + 1
    assert faulty[after]["state"] == "running"
    assert set(labelled) == set(PROFILES[kind].tag_names)
    assert base[:300] == faulty[:300]


def test_faults_a_kind_cannot_have_are_refused() -> None:
    meter = make_model("power_meter", np.random.default_rng(0))
    with pytest.raises(ValueError):
        meter.inject(FaultKind.UNPLANNED_STOP, T0, 60)
    cnc = make_model("cnc", np.random.default_rng(0))
    with pytest.raises(ValueError):
        cnc.inject(FaultKind.HEATER_DRIFT, T0, 60)
    with pytest.raises(ValueError):
        cnc.inject(FaultKind.STUCK_SENSOR, T0, 60, tag="part_count")
    with pytest.raises(ValueError):
        cnc.inject(FaultKind.BEARING_WEAR, T0, 60, tag="power")
    with pytest.raises(ValueError):
        cnc.inject(FaultKind.STUCK_SENSOR, T0, 0)


def test_inject_picks_a_valid_target_when_none_is_given() -> None:
    model = make_model("injection_moulding", np.random.default_rng(0))
    tags = model.inject(FaultKind.HEATER_DRIFT, T0, 600)
    assert tags[0] in fault_targets("injection_moulding", FaultKind.HEATER_DRIFT)


# --- fault planning --------------------------------------------------------------------------


MACHINES = {f"m{i}": kind for i, kind in enumerate(KINDS * 3)}


def test_plan_faults_is_deterministic_and_fits_each_machine() -> None:
    horizon = 48 * 3600.0
    plan = plan_faults(np.random.default_rng(1), MACHINES, horizon, 0.5, start=T0)
    assert plan == plan_faults(np.random.default_rng(1), MACHINES, horizon, 0.5, start=T0)
    assert len(plan) > len(MACHINES)
    assert plan == sorted(plan, key=lambda e: e.start)
    for event in plan:
        kind = MACHINES[event.machine_id]
        assert event.fault in MODEL_CLASSES[kind].faults
        assert T0 <= event.start < T0 + horizon
        lo, hi = FAULT_DURATION_S[event.fault]
        assert lo <= event.duration <= hi
        targets = fault_targets(kind, event.fault)
        assert (event.tag in targets) if targets else event.tag is None


def test_planned_faults_of_one_machine_never_overlap() -> None:
    plan = plan_faults(np.random.default_rng(2), MACHINES, 7 * 86400.0, 2.0)
    for machine in MACHINES:
        mine = [e for e in plan if e.machine_id == machine]
        assert all(a.end <= b.start for a, b in itertools.pairwise(mine))


def test_no_rate_means_no_faults() -> None:
    assert plan_faults(np.random.default_rng(0), MACHINES, 86400.0, 0.0) == []


def test_a_planned_fault_can_be_injected_as_planned() -> None:
    plan = plan_faults(np.random.default_rng(3), MACHINES, 86400.0, 1.0)
    for event in plan[:20]:
        model = make_model(MACHINES[event.machine_id], np.random.default_rng(0))
        tags = model.inject(event.fault, event.start, event.duration, event.tag)
        assert tags


def test_producing_machines_stop_in_the_calendar_s_meal_breaks() -> None:
    from clusterbrain.api.provision import DEMO_CALENDAR
    from clusterbrain.sim.signals import BREAKS_LOCAL_H

    breaks = [b for shift in DEMO_CALENDAR["pattern"]["shifts"] for b in shift["breaks"]]  # type: ignore[index]
    hours = [tuple(int(t[:2]) + int(t[3:]) / 60 for t in (b["start"], b["end"])) for b in breaks]
    assert sorted(hours) == sorted(BREAKS_LOCAL_H)  # the simulator follows the demo calendar
    model = make_model("injection_moulding", np.random.default_rng(5))
    lunch = 1_790_000_000 - 1_790_000_000 % 86400 + 4 * 3600  # 12:00 local
    model.step(lunch - 60, 1.0)
    states = {model.step(lunch + 60 * i + 30, 60.0)["state"] for i in range(59)}
    assert "running" not in states


def test_the_air_compressor_runs_through_the_breaks_without_flipping_its_state() -> None:
    model = make_model("air_compressor", np.random.default_rng(5))
    lunch = 1_790_000_000 - 1_790_000_000 % 86400 + 4 * 3600  # 12:00 local
    model.step(lunch - 1, 1.0)
    states = [model.step(lunch + s, 1.0)["state"] for s in range(3600)]
    changes = sum(a != b for a, b in itertools.pairwise(states))
    assert changes <= 6, changes
    assert "running" in states  # the network still draws air in the break
