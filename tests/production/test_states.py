"""Machine states: rule documents, holding and offline gaps, debounce, planned stops, durations."""

from __future__ import annotations

import itertools
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from clusterbrain.platform.errors import InvalidInput
from clusterbrain.production.calendar import SiteCalendar, planned_down_windows
from clusterbrain.production.states import (
    MachineState,
    SignalFrame,
    StateInterval,
    StateRules,
    derive_intervals,
    durations_by_state,
    durations_in_windows,
    overlay_planned,
    sample_states,
)
from clusterbrain.sim.signals import make_model, simulate

R, IDLE, DOWN, SETUP = (
    MachineState.RUNNING,
    MachineState.IDLE,
    MachineState.UNPLANNED_DOWN,
    MachineState.SETUP,
)
PLANNED, OFFLINE = MachineState.PLANNED_STOP, MachineState.OFFLINE
T0 = datetime(2026, 5, 4, 0, 0, tzinfo=UTC)  # Monday 08:00 in Zhongshan
E0 = T0.timestamp()

STATE_TAG = StateRules.from_dict({"state_tag": "state", "offline_after_s": 60})
POWER_RULES = StateRules.from_dict(
    {
        "rules": [
            {"state": "running", "when": {"tag": "power", "gt": 5.0}},
            {"state": "idle", "when": {"tag": "power", "gt": 0.5}},
        ],
        "default": "unplanned_down",
        "min_duration_s": 30,
        "offline_after_s": 120,
    }
)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def summary(intervals: list[StateInterval]) -> list[tuple[str, float]]:
    return [(i.state.value, i.seconds) for i in intervals]


def rows(*pairs: tuple[float, dict[str, Any]]) -> list[tuple[float, dict[str, Any]]]:
    return [(E0 + t, sample) for t, sample in pairs]


# --- the rule document -------------------------------------------------------------------------


def test_rule_documents_validate_and_round_trip() -> None:
    again = StateRules.from_dict(POWER_RULES.to_dict())
    assert again == POWER_RULES
    assert POWER_RULES.tags == ("power",)
    assert StateRules.model_validate_json(STATE_TAG.model_dump_json()) == STATE_TAG
    with pytest.raises(ValidationError, match="either state_tag"):
        StateRules.from_dict({"state_tag": "state", "rules": POWER_RULES.to_dict()["rules"]})
    with pytest.raises(ValidationError, match="either state_tag"):
        StateRules.from_dict({})
    with pytest.raises(ValidationError, match="no test"):
        StateRules.from_dict({"rules": [{"state": "running", "when": {"tag": "power"}}]})
    with pytest.raises(ValidationError):
        StateRules.from_dict({"state_tag": "state", "map": {"x": "broken"}})
    with pytest.raises(ValidationError):
        StateRules.from_dict({"state_tag": "state", "offline_after_s": 0})


def test_state_values_are_mapped_with_defaults_numeric_codes_and_a_fallback() -> None:
    rules = StateRules.from_dict(
        {"state_tag": "mode", "map": {"1": "running", "2": "setup", "AUTO": "running"}}
    )
    frame = SignalFrame.from_arrays(
        [0, 1, 2, 3, 4, 5], {"mode": [None, 1.0, 2, "AUTO", "down", "E-STOP"]}
    )
    assert sample_states(frame, rules) == [OFFLINE, R, SETUP, R, DOWN, DOWN]
    with_default = rules.model_copy(update={"default": IDLE})
    assert sample_states(frame, with_default)[-1] is IDLE


def test_conditions_on_text_booleans_and_several_tags() -> None:
    rules = StateRules.from_dict(
        {
            "rules": [
                {"state": "unplanned_down", "when": {"tag": "alarm_active", "eq": True}},
                {
                    "state": "running",
                    "when": [{"tag": "power", "ge": 5}, {"tag": "mode", "ne": "manual"}],
                },
                {"state": "setup", "when": {"tag": "mode", "eq": "manual"}},
            ],
            "default": "idle",
        }
    )
    frame = SignalFrame.from_rows(
        [
            (0, {"power": 9.0, "mode": "auto", "alarm_active": False}),
            (1, {"power": 9.0, "mode": "manual", "alarm_active": False}),
            (2, {"power": 9.0, "mode": "auto", "alarm_active": True}),
            (3, {"power": 1.0, "mode": "auto", "alarm_active": False}),
            (4, {"power": "n/a", "mode": "auto"}),  # alarm_active keeps its last value
        ]
    )
    assert sample_states(frame, rules) == [R, SETUP, DOWN, IDLE, IDLE]


# --- holding, offline and debounce -------------------------------------------------------------


def test_a_state_holds_until_the_next_sample_and_a_long_gap_goes_offline() -> None:
    samples = rows((0, {"state": "running"}), (30, {"state": "idle"}), (200, {"state": "running"}))
    intervals = derive_intervals(samples, STATE_TAG, at(0), at(300))
    assert summary(intervals) == [
        ("running", 30),
        ("idle", 60),  # held for offline_after_s ...
        ("offline", 110),  # ... then no data until the next sample
        ("running", 60),
        ("offline", 40),
    ]
    assert intervals[0].start == at(0) and intervals[-1].end == at(300)
    never = STATE_TAG.model_copy(update={"offline_after_s": None})
    assert summary(derive_intervals(samples, never, at(0), at(300))) == [
        ("running", 30),
        ("idle", 170),
        ("running", 100),
    ]


def test_the_window_starts_from_the_last_sample_before_it() -> None:
    samples = rows((-20, {"state": "setup"}), (10, {"state": "running"}))
    assert summary(derive_intervals(samples, STATE_TAG, at(0), at(20))) == [
        ("setup", 10),
        ("running", 10),
    ]
    stale = rows((-100, {"state": "setup"}), (10, {"state": "running"}))
    assert summary(derive_intervals(stale, STATE_TAG, at(0), at(20))) == [
        ("offline", 10),
        ("running", 10),
    ]
    assert summary(derive_intervals([], STATE_TAG, at(0), at(20))) == [("offline", 20)]
    assert derive_intervals(samples, STATE_TAG, at(5), at(5)) == []
    with pytest.raises(InvalidInput):
        derive_intervals(samples, STATE_TAG, at(5), at(4))


def test_samples_without_the_state_tag_keep_the_machine_online() -> None:
    samples = rows((0, {"state": "running"}), *[(t, {"power": 7.0}) for t in range(50, 500, 50)])
    assert summary(derive_intervals(samples, STATE_TAG, at(0), at(500))) == [("running", 500)]


def test_a_power_meter_with_flicker_is_debounced() -> None:
    power = [12.0] * 100 + [0.8, 12.0] * 5 + [2.0] * 100 + [0.1] * 100
    frame = SignalFrame.from_arrays(E0 + np.arange(len(power)), {"power": np.array(power)})
    intervals = derive_intervals(frame, POWER_RULES, at(0), at(len(power)))
    assert summary(intervals) == [("running", 110), ("idle", 100), ("unplanned_down", 100)]
    raw = POWER_RULES.model_copy(update={"min_duration_s": 0.0})
    assert len(derive_intervals(frame, raw, at(0), at(len(power)))) == 3 + 10


def test_columnar_and_long_input_agree_with_rows() -> None:
    samples = rows(
        (0, {"state": "running", "power": 10.0}),
        (5, {"state": "idle"}),
        (7, {"power": 1.0}),
        (9, {"state": "down", "power": 0.0}),
    )
    expected = derive_intervals(samples, STATE_TAG, at(0), at(12))
    ts64 = np.array([np.datetime64(at(t).replace(tzinfo=None), "us") for t in (0, 5, 7, 9)])
    columns = {"state": ["running", "idle", None, "down"], "power": [10.0, None, 1.0, 0.0]}
    assert derive_intervals(SignalFrame.from_arrays(ts64, columns), STATE_TAG, at(0), at(12)) == (
        expected
    )
    long = [(tag, t, v) for t, sample in samples for tag, v in sample.items()]
    frame = SignalFrame.from_long(*zip(*long, strict=True))
    assert derive_intervals(frame, STATE_TAG, at(0), at(12)) == expected
    with pytest.raises(InvalidInput):
        SignalFrame.from_arrays([0, 1], {"state": ["running"]})


# --- planned stops and durations ---------------------------------------------------------------


def test_planned_windows_turn_stops_into_planned_stops_but_not_running() -> None:
    day = [
        StateInterval(R, at(0), at(100)),
        StateInterval(IDLE, at(100), at(160)),
        StateInterval(OFFLINE, at(160), at(200)),
        StateInterval(R, at(200), at(300)),
    ]
    lunch = [(at(90), at(180)), (at(250), at(260))]
    overlaid = overlay_planned(day, lunch)
    assert summary(overlaid) == [
        ("running", 100),
        ("planned_stop", 80),  # idle and offline inside the break
        ("offline", 20),
        ("running", 100),  # running through the second window stays running
    ]
    assert overlay_planned(day, []) == day
    assert overlay_planned([], lunch) == []


def test_durations_clip_to_the_window_and_to_sets_of_windows() -> None:
    day = [StateInterval(R, at(0), at(100)), StateInterval(DOWN, at(100), at(160))]
    assert durations_by_state(day, at(50), at(120)) == {
        **dict.fromkeys(MachineState, 0.0),
        R: 50.0,
        DOWN: 20.0,
    }
    busy = [(at(0), at(10)), (at(5), at(20)), (at(150), at(500))]
    totals = durations_in_windows(day, busy)
    assert totals[R] == 20.0 and totals[DOWN] == 10.0


# --- a simulated injection moulding machine ----------------------------------------------------


def test_a_simulated_morning_adds_up_and_matches_the_reported_states() -> None:
    model = make_model("injection_moulding", np.random.default_rng(7))
    samples = simulate(model, E0 - 2 * 3600, 5 * 3600, 1.0)  # 06:00-11:00 local, 1 s steps
    start, end = at(0), at(3 * 3600)
    intervals = derive_intervals(samples, StateRules.from_dict({"state_tag": "state"}), start, end)
    totals = durations_by_state(intervals, start, end)
    assert sum(totals.values()) == (end - start).total_seconds()
    reported = [str(s["state"]) for t, s in samples if start.timestamp() <= t < end.timestamp()]
    names = {"running": R, "idle": IDLE, "down": DOWN, "setup": SETUP}
    for name, state in names.items():
        assert totals[state] == reported.count(name)  # 1 s per sample
    assert totals[OFFLINE] == 0 and len({i.state for i in intervals}) >= 2

    calendar = SiteCalendar.model_validate(
        {
            "pattern": {
                "shifts": [
                    {
                        "name": "day",
                        "start": "08:00",
                        "end": "20:00",
                        "breaks": [{"start": "09:30", "end": "10:00"}],
                    }
                ]
            }
        }
    )
    overlaid = overlay_planned(intervals, planned_down_windows(calendar, start, end))
    after = durations_by_state(overlaid, start, end)
    assert after[R] == totals[R]
    assert after[PLANNED] == 1800 - durations_by_state(intervals, at(5400), at(7200))[R]
    assert sum(after.values()) == (end - start).total_seconds()


# --- properties --------------------------------------------------------------------------------

state_values = st.sampled_from(["running", "idle", "down", "setup", "E-STOP", None])


@st.composite
def sample_rows(draw: st.DrawFn) -> list[tuple[float, dict[str, Any]]]:
    offsets = draw(st.lists(st.integers(-300, 3000), min_size=0, max_size=40, unique=True))
    return [(E0 + o, {"state": draw(state_values)}) for o in sorted(offsets)]


rule_sets = st.builds(
    lambda hold, debounce: StateRules.from_dict(
        {"state_tag": "state", "offline_after_s": hold, "min_duration_s": debounce}
    ),
    st.none() | st.integers(1, 600),
    st.sampled_from([0, 0, 5, 60]),
)
window_bounds = st.tuples(st.integers(-100, 3200), st.integers(0, 3000))


def check_cover(intervals: list[StateInterval], start: datetime, end: datetime) -> None:
    assert intervals[0].start == start and intervals[-1].end == end
    assert all(i.start < i.end for i in intervals)
    for left, right in itertools.pairwise(intervals):
        assert left.end == right.start and left.state != right.state


@settings(max_examples=200, deadline=None)
@given(sample_rows(), rule_sets, window_bounds)
def test_intervals_cover_the_window_exactly(
    samples: list[tuple[float, dict[str, Any]]], rules: StateRules, bounds: tuple[int, int]
) -> None:
    start, end = at(bounds[0]), at(bounds[0] + bounds[1] + 1)
    intervals = derive_intervals(samples, rules, start, end)
    check_cover(intervals, start, end)
    totals = durations_by_state(intervals, start, end)
    assert sum(totals.values()) == pytest.approx((end - start).total_seconds())
    minimum = timedelta(seconds=rules.min_duration_s)
    assert all(i.end - i.start >= minimum for i in intervals[1:])


@settings(max_examples=150, deadline=None)
@given(sample_rows(), rule_sets, window_bounds, st.randoms(use_true_random=False))
def test_the_order_of_samples_does_not_matter(
    samples: list[tuple[float, dict[str, Any]]],
    rules: StateRules,
    bounds: tuple[int, int],
    rnd: Any,
) -> None:
    start, end = at(bounds[0]), at(bounds[0] + bounds[1] + 1)
    shuffled = list(samples)
    rnd.shuffle(shuffled)
    assert derive_intervals(shuffled, rules, start, end) == derive_intervals(
        samples, rules, start, end
    )


def merged(intervals: list[StateInterval]) -> list[StateInterval]:
    out: list[StateInterval] = []
    for interval in intervals:
        if out and out[-1].state == interval.state and out[-1].end == interval.start:
            out[-1] = StateInterval(interval.state, out[-1].start, interval.end)
        else:
            out.append(interval)
    return out


@settings(max_examples=150, deadline=None)
@given(sample_rows(), st.none() | st.integers(1, 600), st.integers(-100, 3200), st.data())
def test_windows_split_anywhere_join_into_the_whole(
    samples: list[tuple[float, dict[str, Any]]],
    hold: int | None,
    a: int,
    data: st.DataObject,
) -> None:
    rules = StateRules.from_dict({"state_tag": "state", "offline_after_s": hold})
    b = data.draw(st.integers(a, a + 3000))
    c = data.draw(st.integers(b + 1, b + 3000))
    whole = derive_intervals(samples, rules, at(a), at(c))
    parts = derive_intervals(samples, rules, at(a), at(b)) + derive_intervals(
        samples, rules, at(b), at(c)
    )
    assert merged(parts) == whole
    split = [durations_by_state(whole, at(a), at(b)), durations_by_state(whole, at(b), at(c))]
    total = durations_by_state(whole, at(a), at(c))
    for state in MachineState:
        assert split[0][state] + split[1][state] == pytest.approx(total[state])


@settings(max_examples=150, deadline=None)
@given(
    sample_rows(),
    st.lists(st.tuples(st.integers(-200, 3200), st.integers(1, 900)), max_size=4),
)
def test_overlay_only_relabels_stops_inside_planned_windows(
    samples: list[tuple[float, dict[str, Any]]], windows: list[tuple[int, int]]
) -> None:
    start, end = at(0), at(3000)
    intervals = derive_intervals(samples, STATE_TAG, start, end)
    planned = [(at(s), at(s + n)) for s, n in windows]
    overlaid = overlay_planned(intervals, planned)
    check_cover(overlaid, start, end)
    before, after = (
        durations_by_state(intervals, start, end),
        durations_by_state(overlaid, start, end),
    )
    assert after[R] == before[R]
    assert sum(after.values()) == pytest.approx(sum(before.values()))
    inside = durations_in_windows(overlaid, planned)
    assert all(inside[s] == 0 for s in MachineState if s not in (R, PLANNED))


def test_the_documented_rule_and_calendar_examples_are_valid() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "production-states.md").read_text()
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", text, re.S)]
    assert len(blocks) == 3
    assert StateRules.from_dict(blocks[0]).state_map["3"] is IDLE
    assert StateRules.from_dict(blocks[1]).tags == ("alarm_active", "power", "mode")
    assert len(SiteCalendar.model_validate(blocks[2]).pattern.shifts) == 2
