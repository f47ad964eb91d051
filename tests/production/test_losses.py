"""The six big losses: a waterfall from planned busy time to OEE x planned busy time."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clusterbrain.production.kpi import TimeElements, effectiveness, fully_productive_time, oee
from clusterbrain.production.losses import SIX_BIG_LOSSES, LossStep, six_big_losses

MINUTE = 60.0


def shift() -> TimeElements:
    """420 min planned busy: 30 min failures, 10 min changeover, 7 min other stops, 373 min run."""
    return TimeElements(
        planned_operation_time=480 * MINUTE,
        planned_down_time=60 * MINUTE,
        actual_production_time=373 * MINUTE,
        actual_unit_setup_time=10 * MINUTE,
        actual_unit_delay_time=37 * MINUTE,
        time_to_restoration=30 * MINUTE,
        failure_events=2,
        produced_quantity=19_271,
        good_quantity=18_848,
        scrap_quantity=423,
        planned_runtime_total=1.0 * 19_271,
    )


def test_worked_shift() -> None:
    e = shift()
    steps = six_big_losses(e, small_stop_time=5 * MINUTE, startup_reject_quantity=100)
    assert [s.name for s in steps] == list(SIX_BIG_LOSSES)
    lost = {s.name: s.seconds_lost for s in steps}
    assert lost["breakdowns"] == 30 * MINUTE
    assert lost["setup_and_adjustments"] == 10 * MINUTE
    assert lost["small_stops_and_idling"] == 7 * MINUTE + 5 * MINUTE
    assert lost["reduced_speed"] == 368 * MINUTE - 19_271
    assert lost["process_defects"] == pytest.approx(423 - 100)  # ideal cycle time 1 s
    assert lost["reduced_yield"] == pytest.approx(100)
    assert steps[-1].remaining_after == pytest.approx(18_848)
    total_oee = oee(e)
    assert total_oee is not None
    assert steps[-1].remaining_after == pytest.approx(total_oee * e.planned_busy_time)


def test_steps_are_tuples_of_name_loss_remaining() -> None:
    first = six_big_losses(shift())[0]
    name, seconds_lost, remaining_after = first
    assert isinstance(first, LossStep)
    assert (name, seconds_lost, remaining_after) == ("breakdowns", 1800.0, 390 * MINUTE)


def test_small_stops_move_time_from_reduced_speed_only() -> None:
    without = {s.name: s.seconds_lost for s in six_big_losses(shift())}
    with_stops = {s.name: s.seconds_lost for s in six_big_losses(shift(), small_stop_time=600)}
    assert with_stops["small_stops_and_idling"] - without["small_stops_and_idling"] == 600
    assert without["reduced_speed"] - with_stops["reduced_speed"] == 600
    assert sum(with_stops.values()) == pytest.approx(sum(without.values()))


def test_wrong_ideal_cycle_time_shows_as_negative_speed_loss() -> None:
    e = TimeElements(
        planned_operation_time=100,
        actual_production_time=80,
        actual_unit_delay_time=20,
        planned_runtime_total=90,
        produced_quantity=90,
        good_quantity=90,
    )
    assert effectiveness(e) == pytest.approx(90 / 80)
    speed = next(s for s in six_big_losses(e) if s.name == "reduced_speed")
    assert speed.seconds_lost == -10


def test_nothing_planned_nothing_lost() -> None:
    steps = six_big_losses(TimeElements())
    assert all(s.seconds_lost == 0 and s.remaining_after == 0 for s in steps)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"small_stop_time": -1.0}, "small_stop_time"),
        ({"small_stop_time": float("nan")}, "small_stop_time"),
        ({"small_stop_time": 374 * MINUTE}, "cannot exceed"),
        ({"startup_reject_quantity": -1.0}, "startup_reject_quantity"),
        ({"startup_reject_quantity": 424.0}, "cannot exceed"),
    ],
)
def test_rejects_impossible_extra_inputs(extra: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        six_big_losses(shift(), **extra)


@st.composite
def shift_with_extras(draw: st.DrawFn) -> tuple[TimeElements, float, float]:
    """Consistent integer-valued elements, micro-stops within the speed loss, startup rejects."""
    pot = draw(st.integers(0, 10**6))
    pdot = draw(st.integers(0, pot))
    free = pot - pdot
    apt = draw(st.integers(0, free))
    aust = draw(st.integers(0, free - apt))
    adet = draw(st.integers(0, free - apt - aust))
    adot = draw(st.integers(0, free - apt - aust - adet))
    pq = draw(st.integers(0, 10**5))
    gq = draw(st.integers(0, pq))
    runtime = draw(st.integers(0, apt))
    e = TimeElements(
        planned_operation_time=pot,
        planned_down_time=pdot,
        actual_production_time=apt,
        actual_unit_setup_time=aust,
        actual_unit_delay_time=adet,
        actual_unit_down_time=adot,
        time_to_restoration=draw(st.integers(0, adet + adot)),
        produced_quantity=pq,
        good_quantity=gq,
        scrap_quantity=pq - gq,
        planned_runtime_total=runtime,
    )
    small_stops = draw(st.integers(0, apt - runtime))
    startup_rejects = draw(st.integers(0, pq - gq))
    return e, small_stops, startup_rejects


@given(shift_with_extras())
def test_waterfall_is_monotone_and_ends_at_fully_productive_time(
    case: tuple[TimeElements, float, float],
) -> None:
    e, small_stops, startup_rejects = case
    assert e.consistency_issues() == ()
    steps = six_big_losses(e, small_stop_time=small_stops, startup_reject_quantity=startup_rejects)
    assert [s.name for s in steps] == list(SIX_BIG_LOSSES)
    tolerance = 1e-9 * max(1.0, e.planned_busy_time)
    previous = e.planned_busy_time
    for step in steps:
        assert step.seconds_lost >= -tolerance, step
        assert step.remaining_after <= previous + tolerance, step
        previous = step.remaining_after
    fully_productive = steps[-1].remaining_after
    assert fully_productive == fully_productive_time(e)
    total_lost = sum(s.seconds_lost for s in steps)
    assert total_lost == pytest.approx(e.planned_busy_time - fully_productive, abs=tolerance)
    total_oee = oee(e)
    if total_oee is not None:
        assert fully_productive == pytest.approx(total_oee * e.planned_busy_time, abs=tolerance)
