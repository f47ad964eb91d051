"""Rule documents and their evaluators: threshold hysteresis and delay, rate of change, silence,
state duration, expressions, the evaluation-error contract and rule sets."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from clusterbrain.platform.errors import InvalidInput
from clusterbrain.production.rules import (
    AnyRule,
    ExpressionRule,
    NoDataRule,
    RateOfChangeRule,
    RuleEvaluationError,
    RuleSet,
    Sample,
    StateDurationRule,
    ThresholdRule,
    Transition,
    iter_samples,
    parse_rule,
)
from clusterbrain.production.states import MachineState, SignalFrame

S = 1_000_000  # microseconds per second


def at(seconds: float) -> int:
    return round(seconds * S)


def series(tag: str, points: Iterable[tuple[float, Any]]) -> list[Sample]:
    return [Sample(at(t), tag, v) for t, v in points]


def kinds(transitions: Sequence[Transition]) -> list[tuple[str, float]]:
    return [(t.kind, t.ts_us / S) for t in transitions]


# --- documents ---------------------------------------------------------------------------------

DOCUMENTS: list[dict[str, Any]] = [
    {"type": "threshold", "id": "zone1_hot", "tag": "barrel_zone1_temp", "op": ">", "limit": 240,
     "deadband": 5, "delay_s": 10},
    {"type": "threshold", "id": "air_low", "tag": "pressure_bar", "op": "<=", "limit": 6.5},
    {"type": "rate_of_change", "id": "pressure_jump", "tag": "pressure_bar",
     "max_rate_per_s": 0.5, "window_s": 10},
    {"type": "no_data", "id": "offline", "timeout_s": 120},
    {"type": "no_data", "id": "power_meter_silent", "tag": "power_kw", "timeout_s": 60},
    {"type": "state_duration", "id": "down_10_min", "state": "unplanned_down",
     "min_duration_s": 600},
    {"type": "state_duration", "id": "controller_alarm", "tag": "mode", "state": "ALARM",
     "min_duration_s": 0},
    {"type": "expression", "id": "zones_apart",
     "expression": "barrel_zone1_temp - barrel_zone2_temp > 15 and state == 'running'",
     "delay_s": 30},
]  # fmt: skip


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda d: d["id"])
def test_rules_round_trip_through_json(document: dict[str, Any]) -> None:
    rule = parse_rule(json.dumps(document))
    assert parse_rule(rule.to_dict()) == rule
    assert parse_rule(rule.model_dump_json()) == rule
    assert rule.to_dict() == document


def test_a_state_is_a_machine_state_or_the_machines_own_text() -> None:
    assert StateDurationRule(id="d", state="unplanned_down", min_duration_s=1).state is (
        MachineState.UNPLANNED_DOWN
    )
    raw = StateDurationRule(id="d", state="ALARM", min_duration_s=1)
    assert raw.state == "ALARM" and not isinstance(raw.state, MachineState)
    assert parse_rule(raw.to_dict()) == raw


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"type": "thresold", "id": "x"}, "does not match any of the expected tags"),
        ({"id": "x", "tag": "t", "op": ">", "limit": 1}, "discriminator 'type'"),
        ({"type": "threshold", "id": "x", "tag": "t", "op": "=>", "limit": 1}, "op"),
        ({"type": "threshold", "id": "x", "tag": "t", "op": ">"}, "limit\n  Field required"),
        ({"type": "threshold", "id": "x", "tag": "t", "op": ">", "limit": 1, "deadband": -1},
         "greater than or equal to 0"),
        ({"type": "threshold", "id": "x", "tag": "t", "op": ">", "limit": "NaN"}, "finite"),
        ({"type": "threshold", "id": "x", "tag": "t", "op": ">", "limit": 1, "color": "red"},
         "Extra inputs are not permitted"),
        ({"type": "threshold", "id": "bad id!", "tag": "t", "op": ">", "limit": 1}, "pattern"),
        ({"type": "rate_of_change", "id": "x", "tag": "t", "max_rate_per_s": 1, "window_s": 0},
         "greater than 0"),
        ({"type": "no_data", "id": "x", "timeout_s": -5}, "greater than 0"),
        ({"type": "state_duration", "id": "x", "state": "", "min_duration_s": 1}, "state"),
        ({"type": "expression", "id": "x", "expression": "__import__('os')"},
         "call of __import__() is not allowed"),
        ({"type": "expression", "id": "x", "expression": "temp.real > 1"},
         "attribute access is not allowed"),
        ({"type": "expression", "id": "x", "expression": "max([t for t in temps]) > 1"},
         "list comprehension is not allowed"),
        ({"type": "expression", "id": "x", "expression": "(lambda: 1)() > 0"},
         "lambda is not allowed"),
    ],
)  # fmt: skip
def test_invalid_documents_say_what_is_wrong(document: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_rule(document)
    assert message in str(caught.value)


# --- threshold ---------------------------------------------------------------------------------


def hot(**settings: Any) -> ThresholdRule:
    return ThresholdRule(id="hot", tag="t", op=">", limit=80, **settings)


def test_threshold_activates_above_and_clears_at_or_below_the_limit() -> None:
    evaluator = hot().evaluator()
    out = evaluator.evaluate(series("t", [(0, 79.0), (1, 80.0), (2, 80.5), (3, 90.0), (4, 80.0)]))
    assert kinds(out) == [("activated", 2), ("cleared", 4)]
    assert out[0].value == 80.5 and out[0].context == {"tag": "t", "op": ">", "limit": 80.0}


def test_deadband_keeps_a_hovering_value_from_flapping() -> None:
    values = [81, 79, 81, 78.5, 81, 79.9, 78, 79, 81]
    points = list(enumerate(map(float, values)))
    plain = hot().evaluator().evaluate(series("t", points))
    banded = hot(deadband=2).evaluator().evaluate(series("t", points))
    assert len(plain) == 7
    assert kinds(banded) == [("activated", 0), ("cleared", 6), ("activated", 8)]


@pytest.mark.parametrize(
    ("op", "values", "expected"),
    [
        ("<", [7.0, 5.9, 6.2, 6.6], [("activated", 1), ("cleared", 3)]),  # clears at >= 6.5
        ("<=", [6.0, 6.4, 6.5, 6.6], [("activated", 0), ("cleared", 3)]),  # clears above 6.5
        (">=", [8.0, 7.6, 7.4], [("activated", 0), ("cleared", 2)]),  # clears below 7.5
    ],
)
def test_each_operator_has_its_own_side_of_the_band(
    op: Any, values: list[float], expected: list[tuple[str, float]]
) -> None:
    limit = 8.0 if op == ">=" else 6.0
    rule = ThresholdRule(id="r", tag="p", op=op, limit=limit, deadband=0.5)
    assert kinds(rule.evaluator().evaluate(series("p", enumerate(values)))) == expected


def test_a_delay_ignores_short_excursions_and_dates_activation_when_it_elapsed() -> None:
    evaluator = hot(delay_s=10).evaluator()
    short = series("t", [(0, 85.0), (5, 86.0), (9, 70.0)])
    assert evaluator.evaluate(short) == []
    long = series("t", [(20, 85.0), (25, 86.0), (33, 87.0), (40, 60.0)])
    assert kinds(evaluator.evaluate(long)) == [("activated", 30), ("cleared", 40)]


def test_a_tick_completes_a_delay_without_new_samples() -> None:
    evaluator = hot(delay_s=10).evaluator()
    assert evaluator.evaluate(series("t", [(0, 85.0)])) == []
    assert evaluator.tick(at(9.999)) == []
    assert not evaluator.active
    out = evaluator.tick(at(60))
    assert kinds(out) == [("activated", 10)] and out[0].value == 85.0
    assert evaluator.active and evaluator.tick(at(70)) == []


def test_threshold_reads_booleans_as_numbers_and_skips_absent_values() -> None:
    rule = ThresholdRule(id="alarm_on", tag="alarm_active", op=">=", limit=1)
    samples = series("alarm_active", [(0, False), (1, None), (2, True), (3, float("nan"))])
    assert kinds(rule.evaluator().evaluate(samples)) == [("activated", 2)]


def test_other_tags_are_ignored() -> None:
    samples = [Sample(0, "other", 1000.0), Sample(1, "t", 1.0), Sample(2, "other", "text")]
    assert hot().evaluator().evaluate(samples) == []


# --- the evaluation-error contract -------------------------------------------------------------


def test_text_where_a_number_is_needed_raises_with_what_happened_before() -> None:
    evaluator = hot().evaluator()
    with pytest.raises(RuleEvaluationError) as caught:
        evaluator.evaluate(series("t", [(0, 90.0), (1, "sensor fault"), (2, 10.0)]))
    error = caught.value
    assert error.rule_id == "hot" and error.ts_us == at(1)
    assert "text value 'sensor fault'" in error.reason
    assert kinds(error.transitions) == [("activated", 0)]
    assert error.status == 422 and error.type_slug == "rule-evaluation"


def test_a_failed_evaluator_is_spent() -> None:
    evaluator = hot().evaluator()
    with pytest.raises(RuleEvaluationError) as first:
        evaluator.evaluate([(0, "t", "bad")])
    for call in (lambda: evaluator.evaluate([(1, "t", 1.0)]), lambda: evaluator.tick(5)):
        with pytest.raises(RuleEvaluationError) as again:
            call()
        assert again.value is first.value


def test_division_by_zero_in_an_expression_is_an_evaluation_error() -> None:
    rule = ExpressionRule(id="ratio", expression="scrap / good > 0.05")
    evaluator = rule.evaluator()
    with pytest.raises(RuleEvaluationError) as caught:
        evaluator.evaluate([(0, "scrap", 10), (0, "good", 100), (5, "good", 0)])
    assert caught.value.reason == "division by zero in `scrap / good`"
    assert kinds(caught.value.transitions) == [("activated", 0)]
    assert caught.value.ts_us == 5


# --- rate of change ----------------------------------------------------------------------------


def test_a_ramp_reads_as_its_slope() -> None:
    slow = [(t, 0.5 * t) for t in range(0, 60)]
    fast = [(t, 2.0 * t) for t in range(0, 60)]
    rule = RateOfChangeRule(id="roc", tag="p", max_rate_per_s=1.0, window_s=10)
    assert rule.evaluator().evaluate(series("p", slow)) == []
    evaluator = rule.evaluator()
    out = evaluator.evaluate(series("p", fast))
    assert kinds(out) == [("activated", 10)]
    assert out[0].value == pytest.approx(1.8)  # at 10 s, before that second's sample: 18 / 10
    assert evaluator.rate_at(at(59)) == pytest.approx(2.0)


def test_a_step_is_active_for_one_window_and_a_drop_counts_too() -> None:
    rule = RateOfChangeRule(id="roc", tag="p", max_rate_per_s=1.0, window_s=10)
    evaluator = rule.evaluator()
    out = evaluator.evaluate(series("p", [(0, 50.0), (30, 50.0), (31, 30.0)]))
    assert kinds(out) == [("activated", 31)] and out[0].value == pytest.approx(-2.0)
    assert evaluator.tick(at(40.9)) == []
    assert kinds(evaluator.tick(at(45))) == [("cleared", 41)]


def test_no_rate_before_a_full_window_of_history() -> None:
    rule = RateOfChangeRule(id="roc", tag="p", max_rate_per_s=1.0, window_s=10)
    evaluator = rule.evaluator()
    assert evaluator.evaluate(series("p", [(0, 0.0), (5, 100.0)])) == []
    assert kinds(evaluator.tick(at(10))) == [("activated", 10)]
    assert kinds(evaluator.tick(at(100))) == [("cleared", 15)]


# --- no data -----------------------------------------------------------------------------------


def test_silence_longer_than_the_timeout_is_found_by_tick_and_cleared_by_data() -> None:
    evaluator = NoDataRule(id="offline", timeout_s=60).evaluator()
    assert evaluator.evaluate([(at(0), "a", 1.0), (at(30), "b", 2.0)]) == []
    assert evaluator.tick(at(90)) == []  # exactly the timeout: not yet
    out = evaluator.tick(at(95))
    assert kinds(out) == [("activated", 90)] and out[0].context["last_seen_us"] == at(30)
    assert evaluator.tick(at(200)) == []
    out = evaluator.evaluate([(at(210), "a", 1.0)])
    assert kinds(out) == [("cleared", 210)] and out[0].context["silent_s"] == 180


def test_a_late_sample_after_a_gap_reports_the_gap_too() -> None:
    evaluator = NoDataRule(id="offline", timeout_s=60).evaluator()
    out = evaluator.evaluate([(at(0), "a", 1.0), (at(100), "a", 1.0)])
    assert kinds(out) == [("activated", 60), ("cleared", 100)]


def test_the_watch_starts_at_the_first_tick_and_absent_values_are_no_sign_of_life() -> None:
    evaluator = NoDataRule(id="meter", tag="power_kw", timeout_s=60).evaluator()
    assert evaluator.tick(at(1000)) == []
    assert evaluator.evaluate([(at(1030), "power_kw", None), (at(1040), "state", "running")]) == []
    assert kinds(evaluator.tick(at(1061))) == [("activated", 1060)]


# --- state duration ----------------------------------------------------------------------------


def test_down_for_more_than_ten_minutes() -> None:
    rule = parse_rule(DOCUMENTS[5])
    evaluator = rule.evaluator()
    samples = series("state", [(0, "running"), (100, "down"), (500, "running"), (600, "down")])
    assert evaluator.evaluate(samples) == []
    assert evaluator.tick(at(1199)) == []
    out = evaluator.tick(at(1300))
    assert kinds(out) == [("activated", 1200)] and out[0].value == "down"
    assert kinds(evaluator.evaluate(series("state", [(1400, "setup")]))) == [("cleared", 1400)]


def test_raw_controller_states_match_exactly() -> None:
    rule = StateDurationRule(id="r", tag="mode", state="ALARM", min_duration_s=0)
    out = rule.evaluator().evaluate(series("mode", [(0, "AUTO"), (1, "ALARM"), (2, "alarm")]))
    assert kinds(out) == [("activated", 1), ("cleared", 2)]


def test_numeric_state_codes_match_as_text() -> None:
    rule = StateDurationRule(id="r", tag="code", state="3", min_duration_s=0)
    assert kinds(rule.evaluator().evaluate(series("code", [(0, 2.0), (1, 3.0)]))) == [
        ("activated", 1)
    ]


# --- expressions -------------------------------------------------------------------------------


ZONES = "barrel_zone1_temp - barrel_zone2_temp > 15 and state == 'running'"


def test_an_expression_over_several_tags() -> None:
    evaluator = ExpressionRule(id="zones", expression=ZONES).evaluator()
    samples = [
        (at(0), "barrel_zone1_temp", 230.0),
        (at(0), "barrel_zone2_temp", 220.0),
        (at(1), "state", "running"),
        (at(2), "barrel_zone1_temp", 240.0),
        (at(3), "state", "idle"),
    ]
    out = evaluator.evaluate(samples)
    assert kinds(out) == [("activated", 2), ("cleared", 3)]
    assert out[0].value is True
    assert out[0].context == {
        "barrel_zone1_temp": 240.0,
        "barrel_zone2_temp": 220.0,
        "state": "running",
    }


def test_samples_of_one_time_are_evaluated_together() -> None:
    """Zone 1 arrives before zone 2 in the same message; no alarm flashes in between."""
    evaluator = ExpressionRule(id="zones", expression="z1 - z2 > 15").evaluator()
    assert evaluator.evaluate([(0, "z1", 200.0), (0, "z2", 195.0)]) == []
    assert evaluator.evaluate([(1, "z1", 240.0), (1, "z2", 235.0)]) == []


def test_missing_tags_leave_the_condition_unknown_and_not_active() -> None:
    evaluator = ExpressionRule(id="zones", expression=ZONES).evaluator()
    assert evaluator.evaluate([(0, "barrel_zone1_temp", 300.0), (0, "state", "running")]) == []
    assert not evaluator.active
    assert evaluator.tick(at(100)) == []
    out = evaluator.evaluate([(at(101), "barrel_zone2_temp", 200.0)])
    assert kinds(out) == [("activated", 101)]


def test_an_expression_with_a_delay() -> None:
    evaluator = ExpressionRule(id="x", expression="p > 5", delay_s=30).evaluator()
    assert evaluator.evaluate(series("p", [(0, 6.0), (20, 7.0)])) == []
    assert kinds(evaluator.tick(at(31))) == [("activated", 30)]


# --- inputs ------------------------------------------------------------------------------------


def test_columns_give_the_same_transitions_as_samples() -> None:
    frame = SignalFrame.from_arrays(
        [0, 1, 2, 3, 4],
        {"t": [70.0, 85.0, None, 75.0, 90.0], "state": ["running", None, "idle", None, None]},
    )
    rows = list(iter_samples(frame))
    assert rows[:3] == [(0, "t", 70.0), (0, "state", "running"), (at(1), "t", 85.0)]
    for rule in (hot(deadband=2), ExpressionRule(id="e", expression="t > 80 and state == 'idle'")):
        assert rule.evaluator().evaluate(frame) == rule.evaluator().evaluate(rows)


def test_late_samples_count_at_the_evaluators_clock() -> None:
    evaluator = hot().evaluator()
    assert kinds(evaluator.evaluate([(at(10), "t", 90.0)])) == [("activated", 10)]
    assert kinds(evaluator.evaluate([(at(5), "t", 70.0)])) == [("cleared", 10)]
    assert evaluator.clock_us == at(10)


# --- rule sets ---------------------------------------------------------------------------------


def test_a_failing_rule_does_not_affect_the_other_rules() -> None:
    rules = [
        hot(),
        ExpressionRule(id="ratio", expression="t / flow > 20"),
        ThresholdRule(id="flow_low", tag="flow", op="<", limit=1),
        NoDataRule(id="offline", timeout_s=60),
    ]
    samples = [(0, "t", 50.0), (0, "flow", 5.0), (at(1), "flow", 0.0), (at(2), "t", 90.0)]
    together = RuleSet(rules)
    result = together.evaluate(samples)
    assert list(result.errors) == ["ratio"]
    assert result.errors["ratio"].reason == "division by zero in `t / flow`"
    assert [(t.rule_id, t.kind, t.ts_us / S) for t in result.transitions] == [
        ("flow_low", "activated", 1),
        ("hot", "activated", 2),
    ]
    assert set(together.disabled) == {"ratio"}
    assert together.active == {"flow_low", "hot"}

    alone = RuleSet([r for r in rules if r.id != "ratio"]).evaluate(samples)
    assert alone.transitions == result.transitions

    later = together.evaluate([(at(3), "flow", 4.0)])
    assert later.errors == {} and [t.rule_id for t in later.transitions] == ["flow_low"]
    assert kinds(together.tick(at(100)).transitions) == [("activated", 63)]


def test_a_disabled_rule_can_be_enabled_again_with_no_history() -> None:
    rules = RuleSet([ExpressionRule(id="ratio", expression="a / b > 2")])
    assert "ratio" in rules.evaluate([(0, "a", 1), (0, "b", 0)]).errors
    rules.enable("ratio")
    assert rules.disabled == {}
    again = rules.evaluate([(at(5), "a", 9), (at(5), "b", 3)])
    assert kinds(again.transitions) == [("activated", 5)]


def test_rule_ids_are_unique_in_a_set() -> None:
    with pytest.raises(InvalidInput, match="two rules have the id 'hot'"):
        RuleSet([hot(), hot(deadband=1)])


def test_a_rule_set_from_documents() -> None:
    rules = RuleSet.from_dicts(DOCUMENTS)
    assert [r.id for r in rules.rules] == [d["id"] for d in DOCUMENTS]


# --- properties --------------------------------------------------------------------------------


def random_walk(start: float, steps: list[float]) -> list[float]:
    values = [start]
    for step in steps:
        values.append(values[-1] + step)
    return values


walks = st.builds(
    random_walk,
    st.floats(70, 90),
    st.lists(st.floats(-3, 3, allow_nan=False), min_size=1, max_size=200),
)


def band_crossings(values: Sequence[float], limit: float, clear_at: float) -> int:
    """Entries into the active region (beyond the limit) after a visit beyond the clear level."""
    regions = [("hi" if v > limit else "lo" if v <= clear_at else None) for v in values]
    visited = [r for r in regions if r is not None]
    runs = [r for i, r in enumerate(visited) if i == 0 or visited[i - 1] != r]
    return sum(1 for r in runs if r == "hi")


@settings(max_examples=200, deadline=None)
@given(walks, st.floats(0, 5))
def test_a_deadband_never_flaps_more_than_once_per_band_crossing(
    values: list[float], deadband: float
) -> None:
    rule = hot(deadband=deadband)
    out = rule.evaluator().evaluate(series("t", enumerate(values)))
    activations = [t for t in out if t.kind == "activated"]
    assert len(activations) == band_crossings(values, 80, 80 - deadband)
    assert [t.kind for t in out] == ["activated", "cleared"] * (len(out) // 2) + (
        ["activated"] if len(out) % 2 else []
    )
    for t in out:
        value = float(t.value)  # type: ignore[arg-type]
        assert value > 80 if t.kind == "activated" else value <= 80 - deadband


@settings(max_examples=200, deadline=None)
@given(walks, st.floats(0, 5), st.integers(0, 5))
def test_a_delay_only_removes_activations(
    values: list[float], deadband: float, delay_s: int
) -> None:
    points = list(enumerate(values))
    delayed = hot(deadband=deadband, delay_s=delay_s).evaluator().evaluate(series("t", points))
    assert sum(t.kind == "activated" for t in delayed) <= band_crossings(values, 80, 80 - deadband)


def ticked(rule: AnyRule, samples: list[Sample], ticks: list[int]) -> list[Transition]:
    """Feed samples one by one with ticks in between (never past the next sample)."""
    evaluator, out = rule.evaluator(), []
    pending = sorted(ticks)
    for sample in samples:
        while pending and pending[0] <= sample.ts_us:
            out += evaluator.tick(pending.pop(0))
        out += evaluator.evaluate([sample])
    return out + evaluator.tick(samples[-1].ts_us) if samples else out


@settings(max_examples=150, deadline=None)
@given(walks, st.lists(st.integers(0, 200 * S), max_size=30), st.integers(0, 3))
def test_transition_times_do_not_depend_on_ticks_or_batches(
    values: list[float], ticks: list[int], which: int
) -> None:
    rule: AnyRule = [
        hot(deadband=1, delay_s=4),
        RateOfChangeRule(id="roc", tag="t", max_rate_per_s=0.4, window_s=5),
        StateDurationRule(id="sd", tag="t", state="80", min_duration_s=3),
        ExpressionRule(id="ex", expression="abs(t - 80) < 2", delay_s=2),
    ][which]
    samples = series("t", [(2 * i, round(v)) for i, v in enumerate(values)])
    whole = rule.evaluator().evaluate(samples)
    assert ticked(rule, samples, ticks) == whole


rule_strategy = st.one_of(
    st.builds(
        lambda tag, op, limit, deadband, delay: ThresholdRule(
            id="x", tag=tag, op=op, limit=limit, deadband=deadband, delay_s=delay
        ),
        st.sampled_from("abc"),
        st.sampled_from([">", "<", ">=", "<="]),
        st.integers(-5, 5),
        st.integers(0, 3),
        st.integers(0, 3),
    ),
    st.builds(
        lambda tag, rate, window: RateOfChangeRule(
            id="x", tag=tag, max_rate_per_s=rate, window_s=window
        ),
        st.sampled_from("abc"),
        st.floats(0, 2),
        st.integers(1, 5),
    ),
    st.builds(
        lambda tag, timeout: NoDataRule(id="x", tag=tag, timeout_s=timeout),
        st.sampled_from(["a", "b", None]),
        st.integers(1, 5),
    ),
    st.builds(
        lambda expression: ExpressionRule(id="x", expression=expression),
        st.sampled_from(["a - b > 1", "a / b > 1", "c == 1 or a < 0", "min(a, c) >= b"]),
    ),
)
sample_strategy = st.lists(
    st.tuples(st.integers(0, 3), st.sampled_from("abc"), st.integers(-5, 5)), max_size=60
)


def timeline(steps: list[tuple[int, str, int]]) -> list[Sample]:
    now, out = 0, []
    for gap, tag, value in steps:
        now += gap * S
        out.append(Sample(now, tag, float(value)))
    return out


@settings(max_examples=150, deadline=None)
@given(st.lists(rule_strategy, min_size=1, max_size=6), sample_strategy, st.randoms())
def test_the_order_of_independent_rules_does_not_matter(
    rules: list[AnyRule], steps: list[tuple[int, str, int]], shuffle: random.Random
) -> None:
    rules = [rule.model_copy(update={"id": f"r{i}"}) for i, rule in enumerate(rules)]
    samples = timeline(steps)
    end = (samples[-1].ts_us if samples else 0) + 10 * S
    shuffled = list(rules)
    shuffle.shuffle(shuffled)
    results = []
    for order in (rules, shuffled):
        rule_set = RuleSet(order)
        first = rule_set.evaluate(samples)
        last = rule_set.tick(end)
        results.append((first.transitions + last.transitions, set(first.errors), rule_set.active))
    assert results[0] == results[1]

    alone: list[Transition] = []
    for rule in rules:
        single = RuleSet([rule])
        alone += single.evaluate(samples).transitions
    alone.sort(key=lambda t: (t.ts_us, t.rule_id))
    together = RuleSet(rules).evaluate(samples).transitions
    assert together == alone


# --- documentation -----------------------------------------------------------------------------


def test_the_documented_rule_examples_are_valid() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "alarms.md").read_text()
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", text, re.S)]
    rules = [b for b in blocks if isinstance(b, dict) and "type" in b]
    assert {r["type"] for r in rules} == {
        "threshold",
        "rate_of_change",
        "no_data",
        "state_duration",
        "expression",
    }
    for document in rules:
        assert parse_rule(document).to_dict() == document
