"""Machine states derived from signals, by rules that the device profile declares.

Machines in a small factory report their state in different ways: a newer injection moulding
machine has a ``state`` tag, an old press has only a power meter on its feeder. The profile says
which, as a :class:`StateRules` document, and :func:`derive_intervals` turns a day of samples
into state intervals that KPIs can add up.

Conventions (see ``docs/production-states.md``):

- Intervals carry aware UTC ``datetime`` bounds, half-open ``[start, end)``, at the telemetry
  store's microsecond resolution; internally everything is int64 epoch microseconds in numpy,
  so a day of 1 s samples (86,400) takes milliseconds and durations add up exactly.
- A sample's state holds from its timestamp until the next sample (sample and hold), but for at
  most ``offline_after_s``; after that, and before the first sample, the machine is offline.
- A tag missing from a sample keeps its last value (report-by-exception devices send only
  changes); liveness comes from samples of any tag.
- States shorter than ``min_duration_s`` are absorbed into the state before them (debounce), so a
  power reading that flickers across a threshold does not cut the day into slivers.
- Planned stops come from the shift calendar, not from the machine: :func:`overlay_planned`.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Self

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from clusterbrain.platform.errors import InvalidInput
from clusterbrain.production.calendar import (
    Moment,
    Moments,
    epoch_us,
    epoch_us_array,
    from_epoch_us,
    merge_windows,
)

IntArray = npt.NDArray[np.int64]
CodeArray = npt.NDArray[np.int8]
Scalar = float | int | bool | str
Rows = Iterable[tuple[Moment, Mapping[str, Any]]]


class MachineState(enum.StrEnum):
    """The states of the ISO 22400-2 time model that a machine can be in."""

    RUNNING = "running"
    IDLE = "idle"
    UNPLANNED_DOWN = "unplanned_down"
    PLANNED_STOP = "planned_stop"
    SETUP = "setup"
    OFFLINE = "offline"


_STATES: tuple[MachineState, ...] = tuple(MachineState)
_CODE: dict[MachineState, int] = {state: code for code, state in enumerate(_STATES)}
STATE_ORDER = _STATES
"""Machine states in the order of their codes in :class:`StateRuns`."""
STATE_CODE: dict[str, int] = {state.value: code for state, code in _CODE.items()}
_RUNNING, _PLANNED, _OFFLINE = (
    _CODE[MachineState.RUNNING],
    _CODE[MachineState.PLANNED_STOP],
    _CODE[MachineState.OFFLINE],
)

DEFAULT_STATE_MAP: dict[str, MachineState] = {
    **{state.value: state for state in MachineState},
    "down": MachineState.UNPLANNED_DOWN,
}
"""State tag values understood without a ``map``: ours, plus the simulator's ``down``."""


# --- the rule document -------------------------------------------------------------------------


class Condition(BaseModel):
    """A test on one tag; every bound given must hold. A tag with no value yet fails the test."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tag: str
    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None
    eq: bool | float | str | None = None
    ne: bool | float | str | None = None

    @model_validator(mode="after")
    def _has_a_test(self) -> Self:
        if all(v is None for v in (self.gt, self.ge, self.lt, self.le, self.eq, self.ne)):
            raise ValueError(f"condition on {self.tag!r} has no test (gt, ge, lt, le, eq, ne)")
        return self


def _as_list(value: object) -> object:
    """``when`` may be one condition or a list of them (all must hold)."""
    return [value] if isinstance(value, Mapping | Condition) else value


class StateRule(BaseModel):
    """The machine is in ``state`` when every condition of ``when`` holds."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    state: MachineState
    when: Annotated[tuple[Condition, ...], BeforeValidator(_as_list), Field(min_length=1)]


class StateRules(BaseModel):
    """How a device profile's signals become machine states.

    Either ``state_tag`` (the machine reports its state; ``map`` translates its values, on top of
    :data:`DEFAULT_STATE_MAP`; numeric codes are matched as text, ``2.0`` as ``"2"``) or ``rules``
    (checked in order, the first that matches wins, else ``default``).

    >>> StateRules.from_dict({"rules": [{"state": "running", "when": {"tag": "power", "gt": 5}}],
    ...                       "min_duration_s": 30}).tags
    ('power',)
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    state_tag: str | None = None
    map: dict[str, MachineState] = Field(default_factory=dict)
    rules: tuple[StateRule, ...] = ()
    default: MachineState = MachineState.UNPLANNED_DOWN
    min_duration_s: float = Field(default=0.0, ge=0)
    offline_after_s: float | None = Field(default=300.0, gt=0)

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        if (self.state_tag is None) == (not self.rules):
            raise ValueError("give either state_tag (with an optional map) or rules, not both")
        return self

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StateRules:
        """Read the rule document of a device profile (JSON-compatible mapping)."""
        return cls.model_validate(data)

    def to_dict(self) -> dict[str, Any]:
        """The rule document as JSON-compatible data, without defaults."""
        return self.model_dump(mode="json", exclude_defaults=True)

    @property
    def tags(self) -> tuple[str, ...]:
        """The tags the rules read, in first-use order."""
        if self.state_tag is not None:
            return (self.state_tag,)
        return tuple(dict.fromkeys(c.tag for r in self.rules for c in r.when))

    @property
    def state_map(self) -> dict[str, MachineState]:
        return {**DEFAULT_STATE_MAP, **self.map}


# --- samples -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SignalFrame:
    """Samples in columns: ``ts_us`` epoch microseconds, one array per tag (NaN/None = absent).

    Numeric and boolean tags are float64 arrays; text tags are object arrays.
    """

    ts_us: IntArray
    columns: Mapping[str, npt.NDArray[Any]]

    @classmethod
    def from_arrays(cls, ts: Moments, columns: Mapping[str, Any]) -> SignalFrame:
        """Columns as they come from Arrow or numpy (``datetime64`` or epoch-second times)."""
        ts_us = epoch_us_array(ts)
        converted = {tag: _column(values) for tag, values in columns.items()}
        if any(c.shape != ts_us.shape for c in converted.values()):
            raise InvalidInput("every column needs one value per timestamp")
        return cls(ts_us, converted)

    @classmethod
    def from_rows(cls, rows: Rows, tags: Collection[str] | None = None) -> SignalFrame:
        """Rows of ``(ts, {tag: value})`` as the simulator and MQTT payloads have them."""
        times: list[Moment] = []
        values: dict[str, list[Any]] = {tag: [] for tag in tags or ()}
        for i, (ts, sample) in enumerate(rows):
            times.append(ts)
            if tags is None:
                for tag in sample.keys() - values.keys():
                    values[tag] = [None] * i
            for tag, column in values.items():
                column.append(sample.get(tag))
        return cls.from_arrays(times, values)

    @classmethod
    def from_long(cls, tags: Iterable[str], ts: Moments, values: Iterable[Any]) -> SignalFrame:
        """Long rows ``(tag, ts, value)`` as ``TelemetryStore.query_range`` returns them."""
        tag_array = np.asarray(list(tags), dtype=object)
        value_array = np.asarray(list(values), dtype=object)
        unique_ts, position = np.unique(epoch_us_array(ts), return_inverse=True)
        columns: dict[str, npt.NDArray[Any]] = {}
        for tag in dict.fromkeys(tag_array.tolist()):
            column = np.full(unique_ts.shape, None, dtype=object)
            mine = tag_array == tag
            column[position[mine]] = value_array[mine]
            columns[str(tag)] = _column(column)
        return cls(unique_ts.astype(np.int64), columns)

    def column(self, tag: str) -> npt.NDArray[Any]:
        """The tag's values, all absent when the frame has no such tag."""
        found = self.columns.get(tag)
        return found if found is not None else np.full(self.ts_us.shape, np.nan)

    def in_time_order(self) -> SignalFrame:
        """The frame sorted by time (stable: of equal timestamps the later row wins)."""
        if self.ts_us.size < 2 or bool(np.all(np.diff(self.ts_us) >= 0)):
            return self
        order = np.argsort(self.ts_us, kind="stable")
        return SignalFrame(self.ts_us[order], {t: c[order] for t, c in self.columns.items()})


def _column(values: Any) -> npt.NDArray[Any]:
    """float64 for numbers and booleans (absent → NaN), object for text (absent → None)."""
    array = np.asarray(values)
    if array.dtype.kind in "biuf":
        return array.astype(np.float64)
    array = np.asarray(values, dtype=object)
    present = array[~_missing(array)]
    if all(isinstance(v, int | float) for v in present.tolist()):
        return np.array([np.nan if _is_missing(v) else float(v) for v in array], dtype=np.float64)
    return array


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _missing(array: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    """``_is_missing`` of every element of an object array, in numpy's loops (NaN ≠ NaN).

    >>> _missing(np.array(["run", None, float("nan"), 2.0], dtype=object)).tolist()
    [False, True, True, False]
    """
    return np.asarray((array == None) | (array != array), dtype=bool)  # noqa: E711


def _forward_fill(column: npt.NDArray[Any]) -> tuple[npt.NDArray[Any], npt.NDArray[np.bool_]]:
    """Each absent value replaced by the last one before it; also where any value is known."""
    present = ~np.isnan(column) if column.dtype.kind == "f" else ~_missing(column)
    last = np.where(present, np.arange(column.size), -1)
    np.maximum.accumulate(last, out=last)
    known = last >= 0
    filled = column[np.maximum(last, 0)]
    return filled, known


# --- per-sample states -------------------------------------------------------------------------


def sample_states(frame: SignalFrame, rules: StateRules) -> list[MachineState]:
    """The state of each sample of a time-ordered frame, before holding and debouncing.

    >>> rules = StateRules.from_dict({"state_tag": "state", "map": {"3": "setup"}})
    >>> frame = SignalFrame.from_arrays([0, 1, 2], {"state": [3, None, 1]})
    >>> [s.value for s in sample_states(frame, StateRules.from_dict({"state_tag": "state"}))]
    ['unplanned_down', 'unplanned_down', 'unplanned_down']
    >>> [s.value for s in sample_states(frame, rules)]
    ['setup', 'setup', 'unplanned_down']
    """
    return [_STATES[code] for code in _sample_codes(frame, rules).tolist()]


def sample_codes(frame: SignalFrame, rules: StateRules) -> CodeArray:
    """``sample_states`` as codes, indices into ``STATE_ORDER``."""
    return _sample_codes(frame, rules)


def _sample_codes(frame: SignalFrame, rules: StateRules) -> CodeArray:
    if rules.state_tag is not None:
        return _mapped_codes(frame.column(rules.state_tag), rules)
    return _rule_codes(frame, rules)


def _mapped_codes(column: npt.NDArray[Any], rules: StateRules) -> CodeArray:
    """Translate state tag values; before the first value the state is unknown: offline."""
    filled, known = _forward_fill(column)
    codes = np.full(column.shape, _OFFLINE, dtype=np.int8)
    if not known.any():
        return codes
    uniques, inverse = _factorize(filled[known])
    mapping, default = rules.state_map, rules.default
    lookup = np.array([_CODE[mapping.get(_key(u), default)] for u in uniques], dtype=np.int8)
    codes[known] = lookup[inverse]
    return codes


def _factorize(values: npt.NDArray[Any]) -> tuple[list[Any], npt.NDArray[np.intp]]:
    """Distinct values and each value's index among them.

    Text goes through Arrow's hash-based dictionary encoding (np.unique sorts Python objects,
    about ten times slower on a day of one-second samples); numbers through np.unique; values
    of mixed types, which neither accepts, through a dict.

    >>> _factorize(np.array(["run", "idle", "run"], dtype=object))
    (['run', 'idle'], array([0, 1, 0]))
    >>> _factorize(np.array(["run", 2.0, "run"], dtype=object))
    (['run', 2.0], array([0, 1, 0]))
    """
    try:
        if values.dtype == object:
            encoded = pa.array(values).dictionary_encode()
            if encoded.null_count:
                raise TypeError("missing values have no code")
            indices = encoded.indices.to_numpy(zero_copy_only=False).astype(np.intp)
            return encoded.dictionary.to_pylist(), indices
        uniques, inverse = np.unique(values, return_inverse=True)
        return uniques.tolist(), inverse.ravel()
    except (TypeError, pa.ArrowException):  # mixed text and numbers
        index: dict[Any, int] = {}
        positions = [index.setdefault(v, len(index)) for v in values.tolist()]
        return list(index), np.asarray(positions, dtype=np.intp)


def _key(value: Any) -> str:
    """Text form of a state value for the map: ``2.0`` → ``"2"``, ``True`` → ``"true"``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _rule_codes(frame: SignalFrame, rules: StateRules) -> CodeArray:
    """First matching rule wins: apply them last to first so earlier ones overwrite."""
    filled = {tag: _forward_fill(frame.column(tag)) for tag in rules.tags}
    codes = np.full(frame.ts_us.shape, _CODE[rules.default], dtype=np.int8)
    for rule in reversed(rules.rules):
        match = np.ones(frame.ts_us.shape, dtype=bool)
        for condition in rule.when:
            match &= _holds(condition, *filled[condition.tag])
        codes[match] = _CODE[rule.state]
    return codes


def _holds(
    condition: Condition, column: npt.NDArray[Any], known: npt.NDArray[np.bool_]
) -> npt.NDArray[np.bool_]:
    match = known.copy()
    bounds = (
        (condition.gt, np.greater),
        (condition.ge, np.greater_equal),
        (condition.lt, np.less),
        (condition.le, np.less_equal),
    )
    if any(bound is not None for bound, _ in bounds):
        x = _numeric(column)
        with np.errstate(invalid="ignore"):
            for bound, test in bounds:
                if bound is not None:
                    match &= test(x, bound)
    if condition.eq is not None:
        match &= _equals(column, condition.eq)
    if condition.ne is not None:
        match &= ~_equals(column, condition.ne)
    return match


def _numeric(column: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    if column.dtype.kind == "f":
        return column
    return np.array([_to_float(v) for v in column.tolist()], dtype=np.float64)


def _to_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return np.nan


def _equals(column: npt.NDArray[Any], target: Scalar) -> npt.NDArray[np.bool_]:
    if column.dtype.kind == "f":
        number = _to_float(target)
        return column == number if number == number else np.zeros(column.shape, dtype=bool)
    key = _key(target)
    return np.fromiter((_key(v) == key for v in column.tolist()), bool, column.size)


# --- intervals ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StateInterval:
    """The machine was in ``state`` during ``[start, end)`` (aware UTC datetimes)."""

    state: MachineState
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True, slots=True)
class StateRuns:
    """Contiguous state runs in epoch microseconds: the array form of a list of intervals.

    ``codes`` index :data:`STATE_ORDER`.
    """

    starts: IntArray
    ends: IntArray
    codes: CodeArray

    @classmethod
    def of(cls, intervals: Iterable[StateInterval]) -> StateRuns:
        return _runs_of(intervals)

    def intervals(self) -> list[StateInterval]:
        return [
            StateInterval(_STATES[c], from_epoch_us(s), from_epoch_us(e))
            for s, e, c in zip(
                self.starts.tolist(), self.ends.tolist(), self.codes.tolist(), strict=True
            )
        ]


def derive_intervals(
    samples: SignalFrame | Rows, rules: StateRules, start: Moment, end: Moment
) -> list[StateInterval]:
    """State intervals that cover ``[start, end)`` exactly: contiguous, ordered, merged.

    Pass the last sample before ``start`` too (look back by ``offline_after_s``), or the window
    begins offline. Samples may come in any order; with ``min_duration_s = 0`` the intervals of
    two adjacent windows join into those of the whole.

    >>> rules = StateRules.from_dict({"state_tag": "state", "offline_after_s": 60})
    >>> rows = [(0.0, {"state": "running"}), (30.0, {"state": "down"}), (40.0, {"state": "running"})]
    >>> [(i.state.value, i.seconds) for i in derive_intervals(rows, rules, 0.0, 200.0)]
    [('running', 30.0), ('unplanned_down', 10.0), ('running', 60.0), ('offline', 100.0)]
    """
    return derive_runs(samples, rules, start, end).intervals()


def derive_runs(
    samples: SignalFrame | Rows, rules: StateRules, start: Moment, end: Moment
) -> StateRuns:
    """:func:`derive_intervals` in array form (for KPIs of long ranges)."""
    frame = (
        samples if isinstance(samples, SignalFrame) else SignalFrame.from_rows(samples, rules.tags)
    )
    frame = frame.in_time_order()
    start_us, end_us = epoch_us(start), epoch_us(end)
    if end_us < start_us:
        raise InvalidInput("the window must not end before it starts")
    if end_us == start_us:
        empty = np.zeros(0, dtype=np.int64)
        return StateRuns(empty, empty, np.zeros(0, dtype=np.int8))
    hold_us = None if rules.offline_after_s is None else round(rules.offline_after_s * 1e6)
    runs = _held_runs(frame.ts_us, _sample_codes(frame, rules), start_us, end_us, hold_us)
    return _debounce(runs, round(rules.min_duration_s * 1e6))


def runs_from_changes(ts_us: IntArray, codes: CodeArray, start_us: int, end_us: int) -> StateRuns:
    """Runs of ``[start_us, end_us)`` from state changes: each state holds until the next change;
    before the first change the machine is offline. Pass the last change before the window too.

    >>> runs = runs_from_changes(np.array([0, 10]), np.array([0, 2], np.int8), 5, 20)
    >>> runs.starts.tolist(), runs.ends.tolist(), [STATE_ORDER[c].value for c in runs.codes]
    ([5, 10], [10, 20], ['running', 'unplanned_down'])
    """
    if end_us <= start_us:
        empty = np.zeros(0, dtype=np.int64)
        return StateRuns(empty, empty, np.zeros(0, dtype=np.int8))
    return _held_runs(ts_us, codes, start_us, end_us, None)


def _held_runs(
    ts_us: IntArray, codes: CodeArray, start_us: int, end_us: int, hold_us: int | None
) -> StateRuns:
    """Sample-and-hold segments (each followed by an offline one after a long gap), clipped."""
    first = max(int(np.searchsorted(ts_us, start_us, side="right")) - 1, 0)
    stop = int(np.searchsorted(ts_us, end_us, side="left"))
    ts_us, codes = ts_us[first:stop], codes[first:stop]
    if ts_us.size == 0:
        return StateRuns(np.array([start_us]), np.array([end_us]), np.array([_OFFLINE], np.int8))
    following = np.append(ts_us[1:], max(end_us, int(ts_us[-1])))
    held = following if hold_us is None else np.minimum(following, ts_us + hold_us)
    starts = np.concatenate(([start_us], np.column_stack((ts_us, held)).ravel()))
    ends = np.concatenate(([ts_us[0]], np.column_stack((held, following)).ravel()))
    offline = np.full(ts_us.shape, _OFFLINE, dtype=np.int8)
    seg_codes = np.concatenate(([_OFFLINE], np.column_stack((codes, offline)).ravel()))
    starts, ends = np.clip(starts, start_us, end_us), np.clip(ends, start_us, end_us)
    keep = ends > starts
    return _merge_runs(starts[keep], ends[keep], seg_codes[keep].astype(np.int8))


def _merge_runs(starts: IntArray, ends: IntArray, codes: CodeArray) -> StateRuns:
    """Join neighbours that touch and share a state."""
    if starts.size == 0:
        return StateRuns(starts, ends, codes)
    new = np.ones(starts.shape, dtype=bool)
    new[1:] = (codes[1:] != codes[:-1]) | (starts[1:] != ends[:-1])
    firsts = np.flatnonzero(new)
    lasts = np.append(firsts[1:] - 1, starts.size - 1)
    return StateRuns(starts[firsts], ends[lasts], codes[firsts])


def _debounce(runs: StateRuns, min_us: int) -> StateRuns:
    """Absorb runs shorter than ``min_us`` into the run before them (retroactively, so the
    state change is dated when it began, not when it was confirmed)."""
    if min_us <= 0 or runs.starts.size < 2:
        return runs
    starts, ends, codes = runs.starts.tolist(), runs.ends.tolist(), runs.codes.tolist()
    out_s, out_e, out_c = [starts[0]], [ends[0]], [codes[0]]
    for s, e, c in zip(starts[1:], ends[1:], codes[1:], strict=True):
        if (e - s < min_us or c == out_c[-1]) and s == out_e[-1]:
            out_e[-1] = e
        else:
            out_s.append(s)
            out_e.append(e)
            out_c.append(c)
    return StateRuns(np.array(out_s), np.array(out_e), np.array(out_c, dtype=np.int8))


def _runs_of(intervals: Iterable[StateInterval]) -> StateRuns:
    ordered = sorted(intervals, key=lambda i: i.start)
    return StateRuns(
        np.array([epoch_us(i.start) for i in ordered], dtype=np.int64),
        np.array([epoch_us(i.end) for i in ordered], dtype=np.int64),
        np.array([_CODE[i.state] for i in ordered], dtype=np.int8),
    )


# --- planned stops and durations ---------------------------------------------------------------


def overlay_planned(
    intervals: Iterable[StateInterval], planned_windows: Iterable[tuple[datetime, datetime]]
) -> list[StateInterval]:
    """Non-running time inside planned windows (breaks, maintenance) becomes ``planned_stop``.

    Running inside a planned window stays running: the machine did produce, and that time is
    production beyond the plan (actual production time may then exceed planned busy time).

    >>> from datetime import UTC
    >>> t = lambda m: datetime(2026, 5, 4, 4, m, tzinfo=UTC)
    >>> day = [StateInterval(MachineState.RUNNING, t(0), t(10)),
    ...        StateInterval(MachineState.IDLE, t(10), t(40))]
    >>> [(i.state.value, i.start.minute, i.end.minute) for i in overlay_planned(day, [(t(5), t(30))])]
    [('running', 0, 10), ('planned_stop', 10, 30), ('idle', 30, 40)]
    """
    runs = _runs_of(intervals)
    windows = merge_windows(planned_windows)
    if runs.starts.size == 0:
        return []
    w_starts = np.array([epoch_us(w.start) for w in windows], dtype=np.int64)
    w_ends = np.array([epoch_us(w.end) for w in windows], dtype=np.int64)
    cuts = np.unique(np.concatenate((runs.starts, runs.ends, w_starts, w_ends)))
    lo, hi = cuts[:-1], cuts[1:]
    owner = np.searchsorted(runs.starts, lo, side="right") - 1
    covered = (owner >= 0) & (lo < runs.ends[np.maximum(owner, 0)])
    codes = runs.codes[np.maximum(owner, 0)]
    window = np.searchsorted(w_starts, lo, side="right") - 1
    planned = (window >= 0) & (lo < np.append(w_ends, 0)[np.maximum(window, 0)])
    codes = np.where(planned & (codes != _RUNNING), _PLANNED, codes).astype(np.int8)
    return _merge_runs(lo[covered], hi[covered], codes[covered]).intervals()


def durations_by_state(
    intervals: Iterable[StateInterval], start: Moment, end: Moment
) -> dict[MachineState, float]:
    """Seconds spent in each state within ``[start, end)``; every state has an entry.

    Durations of adjacent windows add up to those of their union (microsecond-exact sums).

    >>> from datetime import UTC
    >>> t = lambda h: datetime(2026, 5, 4, h, tzinfo=UTC)
    >>> day = [StateInterval(MachineState.RUNNING, t(0), t(6)),
    ...        StateInterval(MachineState.IDLE, t(6), t(8))]
    >>> durations_by_state(day, t(5), t(7))[MachineState.RUNNING]
    3600.0
    """
    start_us, end_us = epoch_us(start), epoch_us(end)
    micros = dict.fromkeys(MachineState, 0)
    for interval in intervals:
        lo = max(epoch_us(interval.start), start_us)
        hi = min(epoch_us(interval.end), end_us)
        if hi > lo:
            micros[interval.state] += hi - lo
    return {state: us / 1e6 for state, us in micros.items()}


def durations_in_windows(
    intervals: Iterable[StateInterval], windows: Iterable[tuple[datetime, datetime]]
) -> dict[MachineState, float]:
    """Seconds in each state within a set of windows (e.g. the planned busy windows of a shift);
    overlapping windows count once."""
    listed = list(intervals)
    totals = dict.fromkeys(MachineState, 0.0)
    for window in merge_windows(windows):
        for state, seconds in durations_by_state(listed, window.start, window.end).items():
            totals[state] += seconds
    return totals
