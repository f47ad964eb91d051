"""Production counts from the good/scrap counters that machines report.

A PLC counter is a running total that the operator zeroes at a shift change, that wraps at
2^16 on older controllers, and that an unreliable link occasionally reads as garbage. The
quantity a KPI needs is the number of parts made in a period, so every step between two
consecutive samples is classified once, with local rules only (the step's two values and its
length), which is what makes the total additive: splitting a series anywhere, with the boundary
sample in both parts, gives the same total.

A step from ``previous`` to ``value`` over ``dt`` seconds, with ``limit = max_step + max_rate·dt``
(only when either is given):

====================  ===========================================  =====================
case                  test                                         counted
====================  ===========================================  =====================
increase              value ≥ previous, increase ≤ limit           value − previous
jump                  value ≥ previous, increase > limit           0 (flagged)
rollover              value < previous, (value − previous) mod m   (value − previous) mod m
                      ≤ limit (≤ m/8 without a limit)
reset                 any other drop, value ≤ limit                value (parts since the reset)
glitch                any other drop, value > limit                0 (flagged)
====================  ===========================================  =====================

After a flagged step counting resumes from the new value, so one bad reading shifts the total by
less than one ``limit`` (a reading that lands low can pass as a reset), never by thousands of
phantom parts. Without ``max_step``/``max_rate`` every drop is a reset or a wrap and no rise is
refused. Negative and missing (NaN)
readings are dropped before the steps are formed; a negative one is reported as a glitch.

Gaps (missing data) do not change the total: the increase over a gap is the step's increase.
Where it belongs in time matters only per window; see :func:`increments_per_window`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from clusterbrain.platform.errors import InvalidInput
from clusterbrain.production.calendar import Moments, epoch_us, epoch_us_array, from_epoch_us

GapPolicy = Literal["spread", "next"]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class CounterEvent(enum.StrEnum):
    """What happened at a step that is not a plain increase."""

    RESET = "reset"
    ROLLOVER = "rollover"
    GLITCH = "glitch"
    JUMP = "jump"


_KINDS: tuple[CounterEvent | None, ...] = (None, *CounterEvent)
_PLAIN, _RESET, _ROLLOVER, _GLITCH, _JUMP = range(5)


@dataclass(frozen=True, slots=True)
class CounterAnomaly:
    """One non-plain step: ``index`` is the sample's position in the input, ``counted`` what it
    added to the total (0 for glitches and jumps). A dropped negative reading has no step and
    a NaN ``previous``."""

    kind: CounterEvent
    index: int
    ts: datetime
    previous: float
    value: float
    counted: float


class CounterTotal(NamedTuple):
    total: float
    anomalies: list[CounterAnomaly]


@dataclass(frozen=True, slots=True)
class _Steps:
    """Valid samples in time order and the classification of the step ending at each."""

    ts_us: IntArray
    values: FloatArray
    source_index: IntArray
    counted: FloatArray  # one per step: len(values) - 1
    kinds: npt.NDArray[np.int8]
    dropped: list[CounterAnomaly]


def counter_increments(
    ts: Moments,
    values: Sequence[float | None] | npt.NDArray[Any],
    *,
    rollover: float | None = None,
    max_step: float | None = None,
    max_rate: float | None = None,
) -> CounterTotal:
    """Total increase of a counter and every step that was not a plain increase.

    ``rollover`` is the modulus at which the counter wraps (65536 for a 16-bit register);
    ``max_step`` (counts per step) and ``max_rate`` (counts per second, for gaps) bound a
    plausible step and turn on glitch and jump protection. See the module notes for the rules.

    >>> total, events = counter_increments([0, 1, 2, 3, 4], [10, 12, 3, 5, 9000], max_step=50)
    >>> total, [(e.kind.value, e.counted) for e in events]
    (7.0, [('reset', 3.0), ('jump', 0.0)])
    >>> counter_increments([0, 1, 2], [65530, 65535, 4], rollover=65536).total
    10.0
    """
    steps = _classify(ts, values, rollover, max_step, max_rate)
    anomalies = steps.dropped + _step_anomalies(steps)
    anomalies.sort(key=lambda a: (a.ts, a.index))
    return CounterTotal(float(steps.counted.sum()), anomalies)


def increments_per_window(
    ts: Moments,
    values: Sequence[float | None] | npt.NDArray[Any],
    windows: Iterable[tuple[datetime, datetime]],
    *,
    rollover: float | None = None,
    max_step: float | None = None,
    max_rate: float | None = None,
    gaps: GapPolicy = "spread",
) -> list[float]:
    """Counter increase inside each window ``[start, end)`` (shifts, days), in window order.

    ``gaps="spread"`` spreads each step's increase evenly over the time between its two samples
    (linear interpolation of the running total), so parts made across a data gap that spans a
    shift change are shared by time; counts may then be fractional. ``gaps="next"`` books the
    whole increase at the later sample, as the machine reported it (whole numbers). With 1 s
    data the two differ by at most one step at each window edge. Windows that tile a period add
    up to the total of the steps inside it.

    >>> from datetime import UTC
    >>> t0 = datetime(2026, 5, 4, tzinfo=UTC).timestamp()
    >>> shifts = [(datetime(2026, 5, 4, 0, tzinfo=UTC), datetime(2026, 5, 4, 12, tzinfo=UTC)),
    ...           (datetime(2026, 5, 4, 12, tzinfo=UTC), datetime(2026, 5, 5, 0, tzinfo=UTC))]
    >>> ts = [t0, t0 + 10 * 3600, t0 + 14 * 3600]  # no data from 10:00 to 14:00
    >>> increments_per_window(ts, [0, 100, 140], shifts)
    [120.0, 20.0]
    >>> increments_per_window(ts, [0, 100, 140], shifts, gaps="next")
    [100.0, 40.0]
    """
    if gaps not in ("spread", "next"):
        raise InvalidInput(f"unknown gap policy {gaps!r}; use spread or next")
    steps = _classify(ts, values, rollover, max_step, max_rate)
    running = np.concatenate(([0.0], np.cumsum(steps.counted)))
    bounds = [(epoch_us(a), epoch_us(b)) for a, b in windows]
    if not bounds or steps.ts_us.size < 2:
        return [0.0] * len(bounds)
    edges = np.asarray(bounds, dtype=np.int64)
    if gaps == "next":
        return _booked_at_sample(steps.ts_us, running, edges)
    return _spread_over_time(steps.ts_us, running, edges)


def _booked_at_sample(ts_us: IntArray, running: FloatArray, edges: IntArray) -> list[float]:
    """Sum of the steps whose later sample lies in each window."""
    padded = np.concatenate(([0.0], running))
    lo = np.searchsorted(ts_us, edges[:, 0], side="left")
    hi = np.searchsorted(ts_us, edges[:, 1], side="left")
    return [float(x) for x in padded[hi] - padded[lo]]


def _spread_over_time(ts_us: IntArray, running: FloatArray, edges: IntArray) -> list[float]:
    """Difference of the linearly interpolated running total at each window's edges."""
    last_of_instant = np.append(ts_us[1:] != ts_us[:-1], True)
    xs, ys = ts_us[last_of_instant].astype(np.float64), running[last_of_instant]
    at_start = np.interp(edges[:, 0].astype(np.float64), xs, ys)
    at_end = np.interp(edges[:, 1].astype(np.float64), xs, ys)
    return [float(x) for x in at_end - at_start]


class CountedSteps(NamedTuple):
    ts_us: IntArray
    counted: FloatArray
    last: tuple[int, float] | None
    """The newest valid sample (epoch µs, value): the ``previous`` of the next call."""


def counted_steps(
    ts: Moments,
    values: Sequence[float | None] | npt.NDArray[Any],
    previous: tuple[int, float] | None = None,
) -> CountedSteps:
    """What each sample adds to the count, for counting as samples arrive.

    ``previous`` is the last sample counted before (epoch µs, value); samples not after it are
    skipped. Returns the epoch µs of the remaining valid samples, the count each step ending
    there adds (the first sample adds nothing without a ``previous``) and the newest sample.
    Summing the counts in a window gives what :func:`increments_per_window` gives with
    ``gaps="next"`` when the sample before the window is included.

    >>> steps = counted_steps([10, 20, 30], [5, 7, 2], previous=(0, 4))  # ts in epoch seconds
    >>> steps.counted.tolist(), steps.last
    ([1.0, 2.0, 2.0], (30000000, 2.0))
    """
    ts_us, v, _, _ = _valid_samples(ts, values)
    if previous is not None:
        keep = ts_us > previous[0]
        ts_us = np.concatenate(([previous[0]], ts_us[keep]))
        v = np.concatenate(([previous[1]], v[keep]))
    counted = np.zeros(ts_us.size)
    if ts_us.size >= 2:
        counted[1:] = _step_kinds(v[:-1], v[1:], None, None)[0]
    last = (int(ts_us[-1]), float(v[-1])) if ts_us.size else None
    if previous is not None:
        return CountedSteps(ts_us[1:], counted[1:], last)
    return CountedSteps(ts_us, counted, last)


# --- classification ----------------------------------------------------------------------------


def _classify(
    ts: Moments,
    values: Sequence[float | None] | npt.NDArray[Any],
    rollover: float | None,
    max_step: float | None,
    max_rate: float | None,
) -> _Steps:
    ts_us, v, index, dropped = _valid_samples(ts, values)
    previous, value = v[:-1], v[1:]
    limit = _limits(np.diff(ts_us) / 1e6, max_step, max_rate)
    counted, kinds = _step_kinds(previous, value, limit, rollover)
    return _Steps(ts_us, v, index, counted, kinds, dropped)


def _valid_samples(
    ts: Moments, values: Sequence[float | None] | npt.NDArray[Any]
) -> tuple[IntArray, FloatArray, IntArray, list[CounterAnomaly]]:
    """Samples in time order without missing or negative readings (those are reported)."""
    ts_us = epoch_us_array(ts)
    v = np.asarray(values, dtype=np.float64)
    if ts_us.shape != v.shape or v.ndim != 1:
        raise InvalidInput("timestamps and counter values must be 1-D and of equal length")
    order = np.argsort(ts_us, kind="stable")
    ts_us, v = ts_us[order], v[order]
    negative = v < 0
    dropped = [
        CounterAnomaly(
            CounterEvent.GLITCH,
            int(order[i]),
            from_epoch_us(int(ts_us[i])),
            np.nan,
            float(v[i]),
            0.0,
        )
        for i in np.flatnonzero(negative)
    ]
    keep = ~negative & ~np.isnan(v)
    return ts_us[keep], v[keep], order[keep].astype(np.int64), dropped


def _limits(dt_s: FloatArray, max_step: float | None, max_rate: float | None) -> FloatArray | None:
    """The largest plausible increase of each step, or None when no bound was given."""
    if max_step is None and max_rate is None:
        return None
    if (max_step is not None and max_step < 0) or (max_rate is not None and max_rate < 0):
        raise InvalidInput("max_step and max_rate must not be negative")
    limit = np.full(dt_s.shape, float(max_step or 0.0))
    if max_rate is not None:
        limit += max_rate * dt_s
    return limit


def _step_kinds(
    previous: FloatArray, value: FloatArray, limit: FloatArray | None, rollover: float | None
) -> tuple[FloatArray, npt.NDArray[np.int8]]:
    """Counted increase and kind code of each step (vectorised form of the module's table)."""
    rise = value - previous
    drop = rise < 0
    counted = np.where(drop, value, rise)
    kinds = np.where(drop, _RESET, _PLAIN).astype(np.int8)
    if rollover is not None:
        if rollover <= 0:
            raise InvalidInput("a rollover modulus must be positive")
        wrapped = np.mod(rise, rollover)
        bound = limit if limit is not None else rollover / 8
        wraps = drop & (wrapped <= bound)
        counted = np.where(wraps, wrapped, counted)
        kinds[wraps] = _ROLLOVER
    if limit is not None:
        implausible = counted > limit
        kinds[implausible] = np.where(drop[implausible], _GLITCH, _JUMP)
        counted = np.where(implausible, 0.0, counted)
    return counted, kinds


def _step_anomalies(steps: _Steps) -> list[CounterAnomaly]:
    out = []
    for i in np.flatnonzero(steps.kinds != _PLAIN):
        kind = _KINDS[int(steps.kinds[i])]
        assert kind is not None
        end = i + 1
        out.append(
            CounterAnomaly(
                kind,
                int(steps.source_index[end]),
                from_epoch_us(int(steps.ts_us[end])),
                float(steps.values[i]),
                float(steps.values[end]),
                float(steps.counted[i]),
            )
        )
    return out
