"""ISO 22400-2 KPIs: worked examples, zero denominators, and properties of summed elements."""

from __future__ import annotations

import math
from dataclasses import asdict, fields
from random import Random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clusterbrain.production.kpi import (
    KpiSet,
    TimeElements,
    availability,
    compute_kpis,
    effectiveness,
    energy_per_good_unit,
    first_pass_yield,
    mtbf,
    mttr,
    oee,
    quality_ratio,
    sum_elements,
    throughput_rate,
)

MINUTE = 60.0
HOUR = 3600.0

# KPIs that ISO 22400-2 rates between 0 % and 100 %. Effectiveness is among them only while the
# planned run time per unit is right (PRU x PQ <= APT), which consistent elements guarantee.
BOUNDED = (
    "availability",
    "effectiveness",
    "quality_ratio",
    "oee",
    "nee",
    "technical_efficiency",
    "first_pass_yield",
    "scrap_ratio",
    "rework_ratio",
    "setup_ratio",
)


def vorne_shift() -> TimeElements:
    """The well-known worked example: 480 min shift, 2 x 15 min breaks and a 30 min meal."""
    return TimeElements(
        planned_operation_time=480 * MINUTE,
        planned_down_time=60 * MINUTE,
        actual_production_time=373 * MINUTE,
        actual_unit_delay_time=47 * MINUTE,
        produced_quantity=19_271,
        good_quantity=18_848,
        scrap_quantity=423,
        planned_runtime_total=1.0 * 19_271,  # ideal cycle time 1.0 s
    )


def issue_example() -> TimeElements:
    """Planned busy time 480 min, 420 min producing, 400 min of ideal time, 400 made, 380 good."""
    return TimeElements(
        planned_operation_time=480 * MINUTE,
        actual_production_time=420 * MINUTE,
        actual_unit_delay_time=60 * MINUTE,
        produced_quantity=400,
        good_quantity=380,
        scrap_quantity=20,
        planned_runtime_total=400 * MINUTE,  # ideal cycle time 1 min
    )


def test_vorne_worked_example() -> None:
    e = vorne_shift()
    assert e.consistency_issues() == ()
    assert e.planned_busy_time == 420 * MINUTE
    kpis = compute_kpis(e)
    assert kpis.availability is not None and round(kpis.availability, 3) == 0.888
    assert kpis.effectiveness is not None and round(kpis.effectiveness, 3) == 0.861
    assert kpis.quality_ratio is not None and round(kpis.quality_ratio, 3) == 0.978
    assert kpis.oee is not None and round(kpis.oee, 3) == 0.748
    assert kpis.oee == pytest.approx(kpis.availability * kpis.effectiveness * kpis.quality_ratio)


def test_issue_example() -> None:
    e = issue_example()
    a, p, q, total = availability(e), effectiveness(e), quality_ratio(e), oee(e)
    assert a == 0.875
    assert p is not None and round(p, 3) == 0.952
    assert q == 0.95
    assert total is not None
    # The exact product is 0.875 x (400/420) x 0.95 = 19/24 = 0.79167; the stated 79.1 % comes
    # from multiplying the rounded 0.952. Both agree to the stated precision (0.1 percentage point).
    assert total == pytest.approx(19 / 24)
    assert abs(total - 0.791) < 1e-3
    assert round(round(a, 3) * round(p, 3) * round(q, 3), 3) == 0.791


def test_every_kpi_is_none_without_data() -> None:
    kpis = compute_kpis(TimeElements())
    assert set(asdict(kpis).values()) == {None}


def test_planned_time_without_output_is_zero_oee_not_undefined() -> None:
    idle = TimeElements(planned_operation_time=8 * HOUR, actual_unit_down_time=8 * HOUR)
    kpis = compute_kpis(idle)
    assert (kpis.availability, kpis.oee, kpis.nee) == (0.0, 0.0, 0.0)
    assert kpis.effectiveness is None and kpis.quality_ratio is None


def test_effectiveness_above_one_is_not_clamped() -> None:
    wrong_cycle_time = TimeElements(
        planned_operation_time=100, actual_production_time=50, planned_runtime_total=60
    )
    assert effectiveness(wrong_cycle_time) == pytest.approx(1.2)
    assert "PRU x PQ <= APT" in wrong_cycle_time.consistency_issues()


@pytest.mark.parametrize(
    "field", ["actual_production_time", "good_quantity", "energy_kwh", "planned_runtime_total"]
)
@pytest.mark.parametrize("value", [-1.0, math.nan, math.inf])
def test_rejects_negative_and_non_finite_values(field: str, value: float) -> None:
    kwargs: dict[str, Any] = {field: value}
    with pytest.raises(ValueError, match=field):
        TimeElements(**kwargs)


def test_failure_events_are_whole() -> None:
    with pytest.raises(ValueError, match="failure_events"):
        TimeElements(failure_events=1.5)  # type: ignore[arg-type]


def test_mtbf_counts_fe_plus_one_intervals_of_operating_time() -> None:
    e = TimeElements(
        actual_production_time=10 * HOUR,
        actual_unit_setup_time=2 * HOUR,
        actual_unit_delay_time=3 * HOUR,  # delays are not operating time
        time_to_restoration=1 * HOUR,
        failure_events=3,
    )
    assert mtbf(e) == 3 * HOUR
    assert mttr(e) == 20 * MINUTE
    no_failure = TimeElements(actual_production_time=10 * HOUR)
    assert mtbf(no_failure) == 10 * HOUR and mttr(no_failure) is None


def test_units_of_rates() -> None:
    e = TimeElements(
        produced_quantity=500,
        good_quantity=400,
        actual_order_execution_time=4 * HOUR,
        energy_kwh=100,
    )
    assert throughput_rate(e) == 125.0  # units per hour
    assert energy_per_good_unit(e) == 0.25  # kWh per good unit


def test_first_pass_yield_counts_rework_as_not_first_pass() -> None:
    # 10 reworked units later passed and count as good; they still missed the first pass.
    e = TimeElements(produced_quantity=100, good_quantity=95, scrap_quantity=5, rework_quantity=10)
    assert quality_ratio(e) == 0.95
    assert first_pass_yield(e) == 0.85


def test_adding_something_else_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        TimeElements() + 1


def test_empty_sum_is_zero() -> None:
    assert sum_elements([]) == TimeElements()


def test_two_machines_aggregate_time_weighted_not_averaged() -> None:
    ideal_cycle = 1.0  # seconds, the same part on both machines
    big = TimeElements(  # 10 h planned, flawless: OEE 1.0
        planned_operation_time=10 * HOUR,
        actual_production_time=10 * HOUR,
        produced_quantity=36_000,
        good_quantity=36_000,
        planned_runtime_total=ideal_cycle * 36_000,
    )
    small = TimeElements(  # 2 h planned, 1 h producing at half speed: OEE 0.25
        planned_operation_time=2 * HOUR,
        actual_production_time=1 * HOUR,
        actual_unit_delay_time=1 * HOUR,
        produced_quantity=1_800,
        good_quantity=1_800,
        planned_runtime_total=ideal_cycle * 1_800,
    )
    assert oee(big) == 1.0 and oee(small) == 0.25
    line = compute_kpis(big + small)
    assert line.oee == pytest.approx(10.5 / 12)  # (10 h + 0.5 h of ideal good time) / 12 h
    assert line.availability == pytest.approx(11 / 12)
    naive_average = (1.0 + 0.25) / 2
    assert line.oee != pytest.approx(naive_average)


# --- properties -----------------------------------------------------------------------------


@st.composite
def consistent_elements(draw: st.DrawFn, pru: int | None = None) -> TimeElements:
    """Integer-valued elements that satisfy every relation of the time model.

    Integer values keep float sums exact, so equality (not closeness) can be asserted.
    """
    pot = draw(st.integers(0, 10**6))
    pdot = draw(st.integers(0, pot))
    free = pot - pdot
    apt = draw(st.integers(0, free))
    aust = draw(st.integers(0, free - apt))
    adet = draw(st.integers(0, free - apt - aust))
    adot = draw(st.integers(0, free - apt - aust - adet))
    if pru is None:
        pq = draw(st.integers(0, 10**5))
        runtime = draw(st.integers(0, apt))
    else:
        pq = draw(st.integers(0, apt // pru))
        runtime = pru * pq
    sq = draw(st.integers(0, pq))
    return TimeElements(
        planned_operation_time=pot,
        planned_down_time=pdot,
        actual_production_time=apt,
        actual_unit_setup_time=aust,
        actual_unit_delay_time=adet,
        actual_unit_down_time=adot,
        actual_order_execution_time=draw(st.integers(0, 10**6)),
        time_to_restoration=draw(st.integers(0, adet + adot)),
        produced_quantity=pq,
        good_quantity=draw(st.integers(0, pq - sq)),
        scrap_quantity=sq,
        rework_quantity=draw(st.integers(0, pq - sq)),
        planned_runtime_total=runtime,
        failure_events=draw(st.integers(0, 50)),
        energy_kwh=draw(st.integers(0, 10**4)),
    )


@given(consistent_elements())
def test_ratios_the_standard_bounds_stay_in_unit_interval(e: TimeElements) -> None:
    assert e.consistency_issues() == ()
    kpis = asdict(compute_kpis(e))
    for name in BOUNDED:
        value = kpis[name]
        assert value is None or 0.0 <= value <= 1.0 + 1e-12, (name, value)


@given(consistent_elements())
def test_oee_is_availability_times_effectiveness_times_quality(e: TimeElements) -> None:
    k = compute_kpis(e)
    if k.availability is None or k.effectiveness is None or k.quality_ratio is None:
        return
    assert k.oee == pytest.approx(k.availability * k.effectiveness * k.quality_ratio, abs=1e-12)


@given(consistent_elements(), st.data())
def test_splitting_a_period_and_summing_gives_the_whole(
    e: TimeElements, data: st.DataObject
) -> None:
    first, second = {}, {}
    for f in fields(TimeElements):
        total = int(getattr(e, f.name))
        first[f.name] = data.draw(st.integers(0, total), label=f.name)
        second[f.name] = total - first[f.name]
    rejoined = TimeElements(**first) + TimeElements(**second)
    assert rejoined == e
    assert compute_kpis(rejoined) == compute_kpis(e)


@given(st.lists(consistent_elements(), max_size=6), st.randoms())
def test_summing_ignores_order(parts: list[TimeElements], rng: Random) -> None:
    shuffled = list(parts)
    rng.shuffle(shuffled)
    assert sum_elements(shuffled) == sum_elements(parts)


@given(st.integers(1, 60).flatmap(lambda pru: st.tuples(*[consistent_elements(pru)] * 2)))
def test_same_part_on_two_machines_gives_the_busy_time_weighted_oee(
    machines: tuple[TimeElements, TimeElements],
) -> None:
    a, b = machines
    oee_a, oee_b, oee_line = oee(a), oee(b), oee(a + b)
    if oee_a is None or oee_b is None:
        return
    weighted = (a.planned_busy_time * oee_a + b.planned_busy_time * oee_b) / (
        a.planned_busy_time + b.planned_busy_time
    )
    assert oee_line == pytest.approx(weighted, abs=1e-12)


def test_kpi_set_lists_every_kpi_once() -> None:
    names = [f.name for f in fields(KpiSet)]
    assert len(names) == len(set(names)) == 16
