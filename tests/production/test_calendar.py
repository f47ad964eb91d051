"""Shift calendars: a Zhongshan two-shift week, holidays, DST nights in Berlin, and properties."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from clusterbrain.platform.errors import InvalidInput
from clusterbrain.production.calendar import (
    BreakSpec,
    ShiftPattern,
    ShiftSpec,
    SiteCalendar,
    TimeWindow,
    clip_windows,
    merge_windows,
    period_bounds,
    periods_between,
    planned_busy_seconds,
    planned_busy_windows,
    planned_down_windows,
    planned_operation_windows,
    production_date,
    shifts_between,
    subtract_windows,
    total_seconds,
)

H = timedelta(hours=1)
MON_SAT = ["mon", "tue", "wed", "thu", "fri", "sat"]


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def zhongshan(**extra: object) -> SiteCalendar:
    """Day shift 08-20 with lunch and dinner, night shift 20-08 with a midnight meal, Mon-Sat."""
    return SiteCalendar.model_validate(
        {
            "pattern": {
                "shifts": [
                    {
                        "name": "day",
                        "start": "08:00",
                        "end": "20:00",
                        "days": MON_SAT,
                        "breaks": [
                            {"name": "lunch", "start": "12:00", "end": "13:00"},
                            {"name": "dinner", "start": "17:00", "end": "17:30"},
                        ],
                    },
                    {
                        "name": "night",
                        "start": "20:00",
                        "end": "08:00",
                        "days": MON_SAT,
                        "breaks": [{"name": "meal", "start": "00:00", "end": "00:30"}],
                    },
                ]
            },
            "holidays": ["2026-10-01"],
            **extra,
        }
    )


def berlin_three_shifts() -> SiteCalendar:
    shifts = [
        ShiftSpec(name="early", start=time(6), end=time(14)),
        ShiftSpec(name="late", start=time(14), end=time(22)),
        ShiftSpec(name="night", start=time(22), end=time(6)),
    ]
    return SiteCalendar(pattern=ShiftPattern(shifts=tuple(shifts)), timezone="Europe/Berlin")


# --- the Zhongshan two-shift week --------------------------------------------------------------


def test_a_working_day_has_two_shifts_with_breaks_in_utc() -> None:
    # Tuesday 2026-09-29 in Zhongshan is 2026-09-29 00:00 UTC .. 2026-09-30 00:00 UTC.
    day = period_bounds(zhongshan(), "day", utc(2026, 9, 29, 3))
    assert day == TimeWindow(utc(2026, 9, 29, 0), utc(2026, 9, 30, 0))
    shifts = shifts_between(zhongshan(), *day)
    assert [(s.name, s.start_utc, s.end_utc) for s in shifts] == [
        ("day", utc(2026, 9, 29, 0), utc(2026, 9, 29, 12)),
        ("night", utc(2026, 9, 29, 12), utc(2026, 9, 30, 0)),
    ]
    assert shifts[0].breaks_utc == (
        TimeWindow(utc(2026, 9, 29, 4), utc(2026, 9, 29, 5)),
        TimeWindow(utc(2026, 9, 29, 9), utc(2026, 9, 29, 9, 30)),
    )
    assert shifts[1].breaks_utc == (TimeWindow(utc(2026, 9, 29, 16), utc(2026, 9, 29, 16, 30)),)
    assert planned_busy_seconds(zhongshan(), *day) == (24 - 2) * 3600


def test_a_holiday_has_no_shifts_but_the_night_before_runs_into_it() -> None:
    cal = zhongshan()
    holiday = period_bounds(cal, "day", utc(2026, 10, 1, 6))
    assert shifts_between(cal, *holiday) == []
    assert planned_busy_seconds(cal, *holiday) == 0
    eve = shifts_between(cal, utc(2026, 9, 30, 23), utc(2026, 10, 1, 0))
    assert [(s.name, s.production_date) for s in eve] == [("night", date(2026, 9, 30))]


def test_sunday_is_free_and_a_makeup_workday_follows_the_monday_pattern() -> None:
    sunday = (utc(2026, 10, 4, 0), utc(2026, 10, 5, 0))  # 08:00 Sunday to 08:00 Monday local
    assert shifts_between(zhongshan(), *sunday) == []
    cal = zhongshan(makeup_workdays=["2026-10-04"])
    assert [s.name for s in shifts_between(cal, *sunday)] == ["day", "night"]


def test_a_week_of_six_working_days_and_one_holiday() -> None:
    cal = zhongshan()
    week = period_bounds(cal, "week", utc(2026, 10, 1, 6))
    assert week == TimeWindow(utc(2026, 9, 28, 0), utc(2026, 10, 5, 0))  # Mon 08:00 .. Mon 08:00
    assert len(shifts_between(cal, *week)) == 2 * 5  # Mon-Sat less Thursday 1 October
    assert planned_busy_seconds(cal, *week) == 5 * 22 * 3600


def test_maintenance_counts_as_planned_down_only_inside_shifts_and_once() -> None:
    # Saturday 20:00 local (12:00 UTC) .. Sunday 12:00 local, across the end of the night shift
    # and over the midnight meal break.
    cal = zhongshan(maintenance=[{"start": "2026-10-03T12:00:00Z", "end": "2026-10-04T04:00:00Z"}])
    day = period_bounds(cal, "day", utc(2026, 10, 3, 13))
    down = planned_down_windows(cal, *day)
    assert down == [TimeWindow(utc(2026, 10, 3, 4), utc(2026, 10, 3, 5)), *down[1:]]
    assert down[-1] == TimeWindow(utc(2026, 10, 3, 12), utc(2026, 10, 4, 0))
    assert planned_busy_seconds(cal, *day) == (12 - 1.5) * 3600


def test_planned_windows_are_clipped_to_the_asked_range() -> None:
    cal = zhongshan()
    start, end = utc(2026, 9, 29, 3), utc(2026, 9, 29, 10)  # 11:00-18:00 local
    assert planned_operation_windows(cal, start, end) == [TimeWindow(start, end)]
    assert planned_busy_windows(cal, start, end) == [
        TimeWindow(start, utc(2026, 9, 29, 4)),
        TimeWindow(utc(2026, 9, 29, 5), utc(2026, 9, 29, 9)),
        TimeWindow(utc(2026, 9, 29, 9, 30), end),
    ]
    assert planned_busy_seconds(cal, start, end) == 5.5 * 3600


# --- production days and periods ---------------------------------------------------------------


def test_the_production_day_starts_at_the_first_shift() -> None:
    cal = zhongshan()
    assert cal.pattern.production_day_start == time(8)
    assert production_date(cal, utc(2026, 9, 29, 0)) == date(2026, 9, 29)  # 08:00 local
    just_before = utc(2026, 9, 29, 0) - timedelta(microseconds=1)
    assert production_date(cal, just_before) == date(2026, 9, 28)


def test_an_explicit_day_start_puts_the_night_shift_into_the_next_day() -> None:
    cal = berlin_three_shifts().model_copy(
        update={
            "pattern": ShiftPattern(
                shifts=berlin_three_shifts().pattern.shifts, day_start=time(22)
            ),
            "holidays": frozenset({date(2026, 5, 1)}),
        }
    )
    # The night shift that starts at 22:00 on 30 April belongs to 1 May, a holiday.
    evening = (utc(2026, 4, 30, 19), utc(2026, 4, 30, 23))  # 21:00-01:00 CEST
    assert [s.name for s in shifts_between(cal, *evening)] == ["late"]


def test_month_and_week_bounds_in_shanghai() -> None:
    cal = zhongshan()
    month = period_bounds(cal, "month", utc(2026, 2, 14, 12))
    assert month == TimeWindow(utc(2026, 2, 1, 0), utc(2026, 3, 1, 0))
    december = period_bounds(cal, "month", utc(2026, 12, 31, 23, 59))  # 1 Jan 07:59 local
    assert december == TimeWindow(utc(2026, 12, 1, 0), utc(2027, 1, 1, 0))
    weeks = periods_between(cal, "week", utc(2026, 9, 1), utc(2026, 9, 30))
    assert all(w.end - w.start == timedelta(days=7) for w in weeks) and len(weeks) == 5
    with pytest.raises(InvalidInput):
        period_bounds(cal, "year", utc(2026, 1, 1))  # type: ignore[arg-type]


def test_berlin_dst_days_and_night_shifts() -> None:
    cal = berlin_three_shifts()
    spring = period_bounds(cal, "day", utc(2026, 3, 28, 12))
    autumn = period_bounds(cal, "day", utc(2026, 10, 24, 12))
    assert spring.end - spring.start == timedelta(hours=23)
    assert autumn.end - autumn.start == timedelta(hours=25)
    nights = {
        s.production_date: s.end_utc - s.start_utc
        for s in shifts_between(cal, utc(2026, 3, 27), utc(2026, 10, 27))
        if s.name == "night"
    }
    assert nights[date(2026, 3, 28)] == timedelta(hours=7)
    assert nights[date(2026, 10, 24)] == timedelta(hours=9)
    assert nights[date(2026, 6, 1)] == timedelta(hours=8)
    assert planned_busy_seconds(cal, *spring) == 23 * 3600
    assert planned_busy_seconds(cal, *autumn) == 25 * 3600
    summer = shifts_between(cal, utc(2026, 7, 1, 4), utc(2026, 7, 1, 5))
    assert summer[0].start_utc == utc(2026, 7, 1, 4)  # 06:00 CEST


def test_a_shift_inside_the_spring_forward_gap_loses_the_skipped_hour() -> None:
    shift = ShiftSpec(
        name="maint",
        start=time(2),
        end=time(4),
        breaks=(BreakSpec(start=time(2, 30), end=time(3)),),
    )
    cal = SiteCalendar(pattern=ShiftPattern(shifts=(shift,)), timezone="Europe/Berlin")
    [instance] = shifts_between(cal, utc(2026, 3, 29, 0), utc(2026, 3, 29, 3))
    assert (instance.start_utc, instance.end_utc) == (utc(2026, 3, 29, 1), utc(2026, 3, 29, 2))
    assert instance.breaks_utc == ()  # 02:30-03:00 did not happen that night
    assert planned_busy_seconds(cal, utc(2026, 3, 29, 0), utc(2026, 3, 29, 3)) == 3600


def test_a_shift_ending_at_its_start_lasts_a_day() -> None:
    shift = ShiftSpec(name="continuous", start=time(8), end=time(8))
    cal = SiteCalendar(pattern=ShiftPattern(shifts=(shift,)))
    week = period_bounds(cal, "week", utc(2026, 6, 3))
    assert planned_busy_seconds(cal, *week) == 7 * 86400


# --- validation and serialisation --------------------------------------------------------------


def test_invalid_calendars_are_refused() -> None:
    with pytest.raises(ValidationError, match="not inside"):
        ShiftSpec(
            name="day",
            start=time(8),
            end=time(17),
            breaks=(BreakSpec(start=time(16, 30), end=time(17, 30)),),
        )
    with pytest.raises(ValidationError, match="time zone"):
        SiteCalendar(timezone="Mars/Olympus_Mons")
    with pytest.raises(ValidationError):
        ShiftSpec.model_validate({"name": "x", "start": "08:00", "end": "09:00", "days": ["xyz"]})
    with pytest.raises(ValidationError, match="end after"):
        SiteCalendar.model_validate(
            {"maintenance": [{"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}]}
        )
    with pytest.raises(InvalidInput):
        shifts_between(zhongshan(), utc(2026, 1, 2), utc(2026, 1, 1))


def test_a_calendar_survives_json() -> None:
    cal = zhongshan(maintenance=[{"start": "2026-10-03T12:00:00", "end": "2026-10-03T14:00:00"}])
    again = SiteCalendar.model_validate_json(cal.model_dump_json())
    assert again == cal
    assert again.maintenance[0].start == utc(2026, 10, 3, 12)  # naive means UTC
    assert cal.pattern.shifts[0].days == frozenset(range(6))


def test_window_algebra() -> None:
    t = utc(2026, 1, 1)
    a = [(t, t + 4 * H), (t + 6 * H, t + 8 * H)]
    assert subtract_windows(a, [(t + H, t + 7 * H)]) == [
        TimeWindow(t, t + H),
        TimeWindow(t + 7 * H, t + 8 * H),
    ]
    assert clip_windows(a, t + 3 * H, t + 7 * H) == [
        TimeWindow(t + 3 * H, t + 4 * H),
        TimeWindow(t + 6 * H, t + 7 * H),
    ]
    assert merge_windows([(t, t)]) == []
    assert total_seconds(a + a) == 6 * 3600


# --- properties --------------------------------------------------------------------------------

ZONES = ["Asia/Shanghai", "Europe/Berlin"]
SPAN_START = utc(2026, 1, 1)
SPAN_HOURS = 24 * 366


@st.composite
def shift_specs(draw: st.DrawFn, index: int) -> ShiftSpec:
    start = draw(st.integers(0, 47)) * 30
    length = draw(st.integers(1, 48)) * 30
    breaks = []
    if length > 60 and draw(st.booleans()):
        offset = draw(st.integers(1, length // 30 - 1)) * 30
        brk_len = draw(st.integers(1, (length - offset) // 15)) * 15
        brk_start = (start + offset) % 1440
        brk_end = (brk_start + brk_len) % 1440
        breaks.append(BreakSpec(start=_hm(brk_start), end=_hm(brk_end)))
    days = draw(st.frozensets(st.integers(0, 6), min_size=1))
    return ShiftSpec(
        name=f"s{index}",
        start=_hm(start),
        end=_hm((start + length) % 1440),
        days=days,
        breaks=tuple(breaks),
    )


def _hm(minutes: int) -> time:
    return time(minutes // 60, minutes % 60)


@st.composite
def calendars(draw: st.DrawFn) -> SiteCalendar:
    shifts = [draw(shift_specs(i)) for i in range(draw(st.integers(0, 3)))]
    holidays = draw(st.frozensets(st.dates(date(2026, 1, 1), date(2026, 12, 31)), max_size=20))
    maintenance = []
    for _ in range(draw(st.integers(0, 3))):
        begin = SPAN_START + timedelta(minutes=draw(st.integers(0, SPAN_HOURS * 60)))
        maintenance.append(
            {"start": begin, "end": begin + timedelta(minutes=draw(st.integers(1, 900)))}
        )
    return SiteCalendar.model_validate(
        {
            "pattern": {
                "shifts": shifts,
                "day_start": draw(st.none() | st.integers(0, 47).map(lambda m: _hm(m * 30))),
            },
            "timezone": draw(st.sampled_from(ZONES)),
            "holidays": holidays,
            "maintenance": maintenance,
        }
    )


def moments(max_hours: int = SPAN_HOURS) -> st.SearchStrategy[datetime]:
    return st.integers(0, max_hours * 3600).map(lambda s: SPAN_START + timedelta(seconds=s))


@settings(max_examples=60, deadline=None)
@given(calendars(), moments(), st.integers(0, 72 * 3600), st.integers(0, 72 * 3600))
def test_planned_busy_time_adds_up_over_splits(
    cal: SiteCalendar, a: datetime, first: int, second: int
) -> None:
    b = a + timedelta(seconds=first)
    c = b + timedelta(seconds=second)
    whole = planned_busy_seconds(cal, a, c)
    assert whole == pytest.approx(planned_busy_seconds(cal, a, b) + planned_busy_seconds(cal, b, c))
    operation = total_seconds(planned_operation_windows(cal, a, c))
    assert 0.0 <= whole <= operation <= (c - a).total_seconds()


@settings(max_examples=60, deadline=None)
@given(calendars(), moments(), st.integers(0, 96 * 3600))
def test_planned_windows_are_sorted_disjoint_and_inside_the_range(
    cal: SiteCalendar, a: datetime, length: int
) -> None:
    b = a + timedelta(seconds=length)
    for windows in (
        planned_operation_windows(cal, a, b),
        planned_down_windows(cal, a, b),
        planned_busy_windows(cal, a, b),
    ):
        assert all(a <= w.start < w.end <= b for w in windows)
        assert all(x.end < y.start for x, y in itertools.pairwise(windows))
    shifts = shifts_between(cal, a, b)
    assert shifts == sorted(shifts, key=lambda s: (s.start_utc, s.name))
    assert all(s.start_utc < b and s.end_utc > a for s in shifts)
    assert all(s.production_date not in cal.holidays for s in shifts)
    for s in shifts:
        assert all(s.start_utc <= w.start < w.end <= s.end_utc for w in s.breaks_utc)


@settings(max_examples=80, deadline=None)
@given(calendars(), moments(), st.sampled_from(["day", "week", "month"]))
def test_periods_contain_their_moment_and_tile_time(
    cal: SiteCalendar, at: datetime, period: str
) -> None:
    window = period_bounds(cal, period, at)  # type: ignore[arg-type]
    assert window.start <= at < window.end
    following = period_bounds(cal, period, window.end)  # type: ignore[arg-type]
    assert following.start == window.end
    assert production_date(cal, window.start) == production_date(cal, at) or period != "day"
    hours = (window.end - window.start) / H
    expected = {"day": (23, 25), "week": (167, 169), "month": (28 * 24 - 1, 31 * 24 + 1)}
    lo, hi = expected[period]
    assert lo <= hours <= hi
