"""Shift calendars of a site, and the ISO 22400-2 planned times that follow from them.

A small factory plans its time in local wall-clock terms ("day shift 08:00-20:00, lunch
12:00-13:00, closed on National Day") while telemetry is in UTC. This module is the one place
that turns the first into the second, so that every KPI agrees on where a shift begins, also on
the two nights a year a DST zone has a 23- or 25-hour day.

Conventions (see ``docs/production-states.md``):

- Every result is in aware UTC ``datetime`` values; a naive ``datetime`` argument is UTC, as in
  the telemetry store. Windows are half-open ``[start, end)``.
- A shift end at or before its start time means the shift runs over midnight (night shift);
  ``end == start`` is a 24-hour shift.
- The *production day* starts at ``ShiftPattern.day_start``, by default the earliest start time
  of any shift, so a night shift belongs to the day on which it begins. A ``day_start`` at or
  after noon (a night shift counted first, as in many German plants) starts production day D on
  the evening before D. Weekdays of shifts, holidays and make-up working days are matched
  against this production date.
- Planned operation time (POT) is the union of the shifts; planned down time (PDOT) is breaks
  and maintenance windows inside shifts; planned busy time PBT = POT − PDOT (ISO 22400-2).

All functions are pure: no clock, no database, no settings.
"""

from __future__ import annotations

import calendar as _stdlib_calendar
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any, Literal, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from clusterbrain.platform.errors import InvalidInput

Period = Literal["day", "week", "month"]
Moment = datetime | float
"""An instant: an aware ``datetime`` (naive means UTC) or epoch seconds, as the simulator uses."""
Moments = Sequence[Moment] | npt.NDArray[Any]
"""Many instants: datetimes, epoch seconds, or a numpy ``datetime64`` array (e.g. from Arrow)."""

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

_WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY = timedelta(days=1)


class TimeWindow(NamedTuple):
    """A half-open UTC range ``[start, end)``."""

    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


def _weekday(value: object) -> object:
    """Accept ``"mon"``..``"sun"`` as well as 0..6 so that profiles read naturally in JSON."""
    if isinstance(value, str) and value.strip().lower()[:3] in _WEEKDAY_NAMES:
        return _WEEKDAY_NAMES.index(value.strip().lower()[:3])
    return value


Weekday = Annotated[int, BeforeValidator(_weekday), Field(ge=0, le=6)]
"""Day of the week, Monday = 0 (``date.weekday()``); names like ``"mon"`` are accepted."""


def _minutes_after(start: time, moment: time) -> int:
    """Wall-clock minutes from ``start`` forward to ``moment``, in ``[0, 1440)``."""
    return (moment.hour * 60 + moment.minute - start.hour * 60 - start.minute) % 1440


class BreakSpec(BaseModel):
    """A planned break inside a shift (lunch, dinner), in local wall-clock time."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: time
    end: time
    name: str = "break"


class ShiftSpec(BaseModel):
    """One shift of the weekly pattern; ``days`` are the production days on which it runs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    start: time
    end: time
    days: frozenset[Weekday] = frozenset(range(7))
    breaks: tuple[BreakSpec, ...] = ()

    @property
    def length_minutes(self) -> int:
        """Wall-clock length; over-midnight ends wrap and an end equal to the start is 24 h."""
        return _minutes_after(self.start, self.end) or 1440

    @model_validator(mode="after")
    def _breaks_inside(self) -> ShiftSpec:
        for brk in self.breaks:
            begins = _minutes_after(self.start, brk.start)
            length = _minutes_after(brk.start, brk.end)
            if length == 0 or begins + length > self.length_minutes:
                raise ValueError(f"break {brk.name!r} is not inside shift {self.name!r}")
        return self


class ShiftPattern(BaseModel):
    """The weekly pattern of shifts; ``day_start`` fixes where a production day begins."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    shifts: tuple[ShiftSpec, ...] = ()
    day_start: time | None = None

    @property
    def production_day_start(self) -> time:
        """Explicit ``day_start``, else the earliest shift start, else midnight."""
        if self.day_start is not None:
            return self.day_start
        return min((s.start for s in self.shifts), default=time(0))

    @property
    def day_starts_on_eve(self) -> bool:
        """An afternoon or evening start belongs to the next date: the day is named after the
        date that holds most of it."""
        return self.production_day_start >= time(12)


class MaintenanceWindow(BaseModel):
    """Planned maintenance at absolute UTC times (a naive value is UTC)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: datetime
    end: datetime
    reason: str = ""

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return as_utc(value)

    @model_validator(mode="after")
    def _ordered(self) -> MaintenanceWindow:
        if self.end <= self.start:
            raise ValueError("a maintenance window must end after it starts")
        return self


class SiteCalendar(BaseModel):
    """Shifts, holidays, make-up working days and maintenance of one site, in its time zone.

    ``makeup_workdays`` are the weekend days that Chinese public-holiday rules turn into working
    days (调休); on them every shift whose pattern includes Monday runs.

    >>> cal = SiteCalendar.model_validate(
    ...     {"pattern": {"shifts": [{"name": "day", "start": "08:00", "end": "17:00"}]}}
    ... )
    >>> cal.timezone, cal.pattern.production_day_start
    ('Asia/Shanghai', datetime.time(8, 0))
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    pattern: ShiftPattern = ShiftPattern()
    timezone: str = "Asia/Shanghai"
    holidays: frozenset[date] = frozenset()
    makeup_workdays: frozenset[date] = frozenset()
    maintenance: tuple[MaintenanceWindow, ...] = ()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def runs_on(self, shift: ShiftSpec, production_date: date) -> bool:
        """Whether ``shift`` is planned on ``production_date`` (holidays win over the pattern)."""
        if production_date in self.holidays:
            return False
        if production_date in self.makeup_workdays:
            return 0 in shift.days
        return production_date.weekday() in shift.days


class ShiftInstance(NamedTuple):
    """One planned occurrence of a shift, with its breaks, in UTC."""

    name: str
    production_date: date
    start_utc: datetime
    end_utc: datetime
    breaks_utc: tuple[TimeWindow, ...]

    @property
    def window(self) -> TimeWindow:
        return TimeWindow(self.start_utc, self.end_utc)


# --- time helpers ------------------------------------------------------------------------------


def as_utc(moment: datetime) -> datetime:
    """An aware UTC datetime; naive input is taken to be UTC already, like the telemetry store.

    >>> as_utc(datetime(2026, 1, 1, 8, 0)).isoformat()
    '2026-01-01T08:00:00+00:00'
    """
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def epoch_us(moment: Moment) -> int:
    """Microseconds since the Unix epoch: the telemetry store's resolution, exact in int64.

    >>> epoch_us(datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)), epoch_us(1.5)
    (1000000, 1500000)
    """
    if isinstance(moment, datetime):
        return (as_utc(moment) - EPOCH) // _MICROSECOND
    return round(float(moment) * 1e6)


def from_epoch_us(micros: int) -> datetime:
    """The aware UTC datetime of an epoch-microsecond count."""
    return EPOCH + timedelta(microseconds=int(micros))


def epoch_us_array(moments: Moments) -> npt.NDArray[np.int64]:
    """Instants as an int64 array of epoch microseconds (vectorised for numeric and datetime64).

    >>> epoch_us_array(np.array(["2026-01-01T00:00:00"], dtype="datetime64[s]")).tolist()
    [1767225600000000]
    """
    array = np.asarray(moments)
    if array.dtype.kind == "M":
        return array.astype("datetime64[us]").astype(np.int64)
    if array.dtype.kind in "iuf":
        return np.round(array.astype(np.float64) * 1e6).astype(np.int64)
    return np.fromiter((epoch_us(m) for m in array.ravel()), np.int64, array.size)


def local_to_utc(day: date, wall: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of a local wall-clock time.

    A time skipped by a spring-forward change is read with the offset before the change (so
    02:30 on that night is 03:30 summer time); a repeated autumn time means its first occurrence.
    """
    return datetime.combine(day, wall, tzinfo=zone).astimezone(UTC)


def _check_range(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    start, end = as_utc(start), as_utc(end)
    if end < start:
        raise InvalidInput("the end of a period must not be before its start")
    return start, end


# --- window algebra ----------------------------------------------------------------------------


def merge_windows(windows: Iterable[tuple[datetime, datetime]]) -> list[TimeWindow]:
    """Sorted union of windows; touching or overlapping windows become one, empty ones vanish.

    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> h = timedelta(hours=1)
    >>> [(w.start.hour, w.end.hour) for w in merge_windows([(t + 2 * h, t + 3 * h), (t, t + 2 * h)])]
    [(0, 3)]
    """
    merged: list[TimeWindow] = []
    for start, end in sorted((as_utc(s), as_utc(e)) for s, e in windows):
        if end <= start:
            continue
        if merged and start <= merged[-1].end:
            if end > merged[-1].end:
                merged[-1] = TimeWindow(merged[-1].start, end)
            continue
        merged.append(TimeWindow(start, end))
    return merged


def clip_windows(
    windows: Iterable[tuple[datetime, datetime]], start: datetime, end: datetime
) -> list[TimeWindow]:
    """The merged windows cut to ``[start, end)``."""
    start, end = as_utc(start), as_utc(end)
    return merge_windows((max(s, start), min(e, end)) for s, e in merge_windows(windows))


def intersect_windows(
    a: Iterable[tuple[datetime, datetime]], b: Iterable[tuple[datetime, datetime]]
) -> list[TimeWindow]:
    """Time that lies in both sets of windows."""
    left, right = merge_windows(a), merge_windows(b)
    out: list[TimeWindow] = []
    i = j = 0
    while i < len(left) and j < len(right):
        lo, hi = max(left[i].start, right[j].start), min(left[i].end, right[j].end)
        if lo < hi:
            out.append(TimeWindow(lo, hi))
        if left[i].end <= right[j].end:
            i += 1
        else:
            j += 1
    return out


def subtract_windows(
    a: Iterable[tuple[datetime, datetime]], b: Iterable[tuple[datetime, datetime]]
) -> list[TimeWindow]:
    """Time in ``a`` that is not in ``b``."""
    out: list[TimeWindow] = []
    cuts = merge_windows(b)
    for window in merge_windows(a):
        cursor = window.start
        for cut in cuts:
            if cut.end <= cursor or cut.start >= window.end:
                continue
            if cut.start > cursor:
                out.append(TimeWindow(cursor, cut.start))
            cursor = max(cursor, cut.end)
        if cursor < window.end:
            out.append(TimeWindow(cursor, window.end))
    return out


def total_seconds(windows: Iterable[tuple[datetime, datetime]]) -> float:
    """Length of the union of ``windows``, in seconds (microsecond-exact)."""
    micros = sum((e - s) // timedelta(microseconds=1) for s, e in merge_windows(windows))
    return micros / 1e6


# --- shifts ------------------------------------------------------------------------------------


def _after(day: date, reference: time, wall: time) -> date:
    """Date of the first ``wall`` at or after ``reference`` on ``day`` (next day if earlier)."""
    return day if wall >= reference else day + _DAY


def _instance(calendar: SiteCalendar, shift: ShiftSpec, production_date: date) -> ShiftInstance:
    """The occurrence of ``shift`` on a production date: it starts at the first ``shift.start``
    at or after the production day's start. Breaks lost in a spring-forward gap are dropped."""
    zone = calendar.zone
    start_day = _after(
        _first_local_day(calendar, production_date), _day_start(calendar), shift.start
    )
    window = _local_window(start_day, shift.start, shift.start, shift.end, zone)
    breaks = (_local_window(start_day, shift.start, b.start, b.end, zone) for b in shift.breaks)
    kept = tuple(b for b in breaks if b.end > b.start)
    return ShiftInstance(shift.name, production_date, window.start, window.end, kept)


def _local_window(day: date, reference: time, start: time, end: time, zone: ZoneInfo) -> TimeWindow:
    """The first ``start``–``end`` at or after ``reference`` on ``day``; an end not after its
    start is on the next day. Never negative, even when DST skips the start."""
    start_day = _after(day, reference, start)
    end_day = start_day if end > start else start_day + _DAY
    begins = local_to_utc(start_day, start, zone)
    return TimeWindow(begins, max(begins, local_to_utc(end_day, end, zone)))


def _day_start(calendar: SiteCalendar) -> time:
    return calendar.pattern.production_day_start


def _first_local_day(calendar: SiteCalendar, production_date: date) -> date:
    """The local date on which a production day begins (the eve for an evening ``day_start``)."""
    return production_date - _DAY if calendar.pattern.day_starts_on_eve else production_date


def day_begins(calendar: SiteCalendar, production_date: date) -> datetime:
    """The UTC instant at which a production date begins.

    >>> cal = SiteCalendar.model_validate({"pattern": {"day_start": "22:00"}, "timezone": "UTC"})
    >>> day_begins(cal, date(2026, 5, 1)).isoformat()
    '2026-04-30T22:00:00+00:00'
    """
    first_day = _first_local_day(calendar, production_date)
    return local_to_utc(first_day, _day_start(calendar), calendar.zone)


def production_date(calendar: SiteCalendar, at: datetime) -> date:
    """The local production date that contains the instant ``at``.

    >>> cal = SiteCalendar.model_validate({"pattern": {"day_start": "08:00"}})
    >>> production_date(cal, datetime(2026, 5, 1, 23, 0, tzinfo=UTC))  # 07:00 on 2 May in China
    datetime.date(2026, 5, 1)
    """
    at = as_utc(at)
    local = at.astimezone(calendar.zone).date()
    for candidate in (local + _DAY, local, local - _DAY):
        if day_begins(calendar, candidate) <= at:
            return candidate
    return local - 2 * _DAY  # unreachable for real zones (offsets stay within a day)


def shifts_between(calendar: SiteCalendar, start: datetime, end: datetime) -> list[ShiftInstance]:
    """Every planned shift that overlaps ``[start, end)``, whole (not clipped), by start time.

    Whole instances keep real shift bounds and names for reports; the ``planned_*`` functions
    clip. Shifts on holidays are left out.

    >>> cal = SiteCalendar.model_validate(
    ...     {"pattern": {"shifts": [{"name": "night", "start": "20:00", "end": "08:00"}]}}
    ... )
    >>> [s] = shifts_between(cal, datetime(2026, 5, 4, 13, tzinfo=UTC), datetime(2026, 5, 4, 14, tzinfo=UTC))
    >>> s.start_utc.isoformat(), s.end_utc.isoformat()
    ('2026-05-04T12:00:00+00:00', '2026-05-05T00:00:00+00:00')
    """
    start, end = _check_range(start, end)
    first = production_date(calendar, start) - _DAY
    last = production_date(calendar, end)
    found: list[ShiftInstance] = []
    day = first
    while day <= last:
        for shift in calendar.pattern.shifts:
            if calendar.runs_on(shift, day):
                instance = _instance(calendar, shift, day)
                if instance.start_utc < end and instance.end_utc > start:
                    found.append(instance)
        day += _DAY
    return sorted(found, key=lambda s: (s.start_utc, s.name))


def planned_operation_windows(
    calendar: SiteCalendar, start: datetime, end: datetime
) -> list[TimeWindow]:
    """Planned operation time (POT): the union of shifts, clipped to ``[start, end)``."""
    shifts = shifts_between(calendar, start, end)
    return clip_windows(((s.start_utc, s.end_utc) for s in shifts), start, end)


def planned_down_windows(
    calendar: SiteCalendar, start: datetime, end: datetime
) -> list[TimeWindow]:
    """Planned down time (PDOT): breaks and maintenance, only where they fall inside shifts.

    Maintenance outside every shift costs no planned time, so it is not planned down time.
    """
    shifts = shifts_between(calendar, start, end)
    operation = clip_windows(((s.start_utc, s.end_utc) for s in shifts), start, end)
    breaks = [b for s in shifts for b in s.breaks_utc]
    maintenance = [(m.start, m.end) for m in calendar.maintenance]
    return intersect_windows(operation, breaks + maintenance)


def planned_busy_windows(
    calendar: SiteCalendar, start: datetime, end: datetime
) -> list[TimeWindow]:
    """Planned busy time (PBT) as windows: operation time less planned down time."""
    return subtract_windows(
        planned_operation_windows(calendar, start, end), planned_down_windows(calendar, start, end)
    )


def planned_busy_seconds(calendar: SiteCalendar, start: datetime, end: datetime) -> float:
    """ISO 22400-2 planned busy time PBT = POT − PDOT over ``[start, end)``, in seconds.

    >>> cal = SiteCalendar.model_validate({"pattern": {"shifts": [
    ...     {"name": "day", "start": "08:00", "end": "20:00",
    ...      "breaks": [{"start": "12:00", "end": "13:00"}]}]}})
    >>> planned_busy_seconds(cal, datetime(2026, 5, 4, tzinfo=UTC), datetime(2026, 5, 5, tzinfo=UTC))
    39600.0
    """
    return total_seconds(planned_busy_windows(calendar, start, end))


# --- periods -----------------------------------------------------------------------------------


def _period_first_date(day: date, period: Period) -> tuple[date, date]:
    """First production date of the period containing ``day``, and of the next one."""
    if period == "day":
        return day, day + _DAY
    if period == "week":
        monday = day - timedelta(days=day.weekday())
        return monday, monday + timedelta(days=7)
    first = day.replace(day=1)
    days_in_month = _stdlib_calendar.monthrange(day.year, day.month)[1]
    return first, first + timedelta(days=days_in_month)


def period_bounds(calendar: SiteCalendar, period: Period, at: datetime) -> TimeWindow:
    """The production day, ISO week (Monday first) or month that contains ``at``, in UTC.

    Each begins at ``day_start`` local time on its first production date, so a DST day lasts 23
    or 25 hours and a night shift stays in the day on which it started.

    >>> cal = SiteCalendar.model_validate({"pattern": {"day_start": "08:00"}})
    >>> w = period_bounds(cal, "day", datetime(2026, 5, 1, 23, 0, tzinfo=UTC))
    >>> w.start.isoformat(), w.end.isoformat()
    ('2026-05-01T00:00:00+00:00', '2026-05-02T00:00:00+00:00')
    """
    if period not in ("day", "week", "month"):
        raise InvalidInput(f"unknown period {period!r}; use day, week or month")
    first, after = _period_first_date(production_date(calendar, at), period)
    return TimeWindow(day_begins(calendar, first), day_begins(calendar, after))


def periods_between(
    calendar: SiteCalendar, period: Period, start: datetime, end: datetime
) -> list[TimeWindow]:
    """Consecutive whole periods that overlap ``[start, end)``, in order (none when empty)."""
    start, end = _check_range(start, end)
    out: list[TimeWindow] = []
    cursor = start
    while cursor < end:
        out.append(period_bounds(calendar, period, cursor))
        cursor = out[-1].end
    return out
