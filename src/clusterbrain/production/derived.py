"""Derived series that the production tracker keeps in the telemetry store, and reading them back.

For each tracked machine the tracker (``production.tracking``) writes, under the machine's device:

- ``$state``: one text point per state change, holding the state entered at that moment; when more
  than ``offline_after_s`` passes without data, an ``offline`` point at the last sample plus
  ``offline_after_s``. Consecutive points are the machine's state intervals.
- ``$good``, ``$scrap``, ``$energy``: what each counter sample adds (``counters.counted_steps``),
  only where it adds something. The store's rollups sum them per minute and hour, so the counts of
  any hour-aligned window come from the hourly rollup, however long the range.

``$`` never starts a device's tag name, so devices cannot write these series.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from clusterbrain.production.calendar import epoch_us, from_epoch_us
from clusterbrain.production.states import MachineState, StateInterval, StateRules
from clusterbrain.telemetry.store import ROLLUP_1H, Aggregate, TelemetryStore

DERIVED_STATE = "$state"
DERIVED_GOOD = "$good"
DERIVED_SCRAP = "$scrap"
DERIVED_ENERGY = "$energy"
DERIVED_PREFIX = "$"

_HOUR_US = ROLLUP_1H // timedelta(microseconds=1)
_ONE_US = timedelta(microseconds=1)


def is_derived(tag: str) -> bool:
    return tag.startswith(DERIVED_PREFIX)


def tracked_at(store: TelemetryStore, device_id: str | None, moment: datetime) -> bool:
    """True when the tracker had folded this device's states at ``moment`` (or before)."""
    if device_id is None:
        return False
    return store.last_before(device_id, [DERIVED_STATE], moment + _ONE_US) is not None


def stored_intervals(
    store: TelemetryStore,
    device_id: str,
    rules: StateRules,
    start: datetime,
    end: datetime,
) -> list[StateInterval]:
    """The stored state intervals cut to ``[start, end)``; time before the first is offline.

    The last interval, still open, lasts until ``offline_after_s`` past the device's last sample.
    """
    before = store.last_before(device_id, [DERIVED_STATE], start)
    table = store.query_text(device_id, [DERIVED_STATE], start, end)
    moments = [epoch_us(ts) for ts in table.column("ts").to_pylist()]
    states = table.column("text").to_pylist()
    if before is not None:
        moments.insert(0, epoch_us(before.ts))
        states.insert(0, before.text)
    last_sample = store.last_before(device_id, list(rules.tags), end)
    open_end = epoch_us(end)
    if last_sample is not None and rules.offline_after_s is not None:
        open_end = min(open_end, epoch_us(last_sample.ts) + round(rules.offline_after_s * 1e6))
    return _intervals(moments, states, epoch_us(start), epoch_us(end), open_end)


def _intervals(
    moments: list[int], states: list[str], start: int, end: int, open_end: int
) -> list[StateInterval]:
    out: list[tuple[MachineState, int, int]] = []
    cursor = start
    for i, (at, state) in enumerate(zip(moments, states, strict=True)):
        last = i + 1 == len(moments)
        hi = min(end, open_end if last else moments[i + 1])
        lo = max(at, start)
        if hi <= lo:
            continue
        if lo > cursor:
            out.append((MachineState.OFFLINE, cursor, lo))
        out.append((MachineState(state), lo, hi))
        cursor = hi
    if cursor < end:
        out.append((MachineState.OFFLINE, cursor, end))
    merged: list[tuple[MachineState, int, int]] = []
    for state, lo, hi in out:
        if merged and merged[-1][0] is state and merged[-1][2] == lo:
            merged[-1] = (state, merged[-1][1], hi)
        else:
            merged.append((state, lo, hi))
    return [StateInterval(s, from_epoch_us(lo), from_epoch_us(hi)) for s, lo, hi in merged]


def stored_counts(
    store: TelemetryStore,
    device_id: str,
    tag: str,
    windows: Sequence[tuple[datetime, datetime]],
) -> list[float]:
    """Sum of a derived count series in each window ``[start, end)``.

    Whole hours come from the hourly rollup; the parts of a window before its first and after its
    last full hour come from the points themselves.
    """
    if not windows:
        return []
    edges = np.asarray([(epoch_us(a), epoch_us(b)) for a, b in windows], dtype=np.int64)
    whole_lo, whole_hi = _ceil_hour(edges[:, 0]), _floor_hour(edges[:, 1])
    aligned = whole_lo < whole_hi
    totals = np.zeros(len(edges))
    if aligned.any():
        hourly = store.query_range(
            device_id,
            [tag],
            from_epoch_us(int(whole_lo[aligned].min())),
            from_epoch_us(int(whole_hi[aligned].max())),
            bucket=ROLLUP_1H,
            agg=Aggregate.SUM,
        )
        hours = _us(hourly)
        running = _running(hourly)
        by_hour = (
            running[np.searchsorted(hours, whole_hi)] - running[np.searchsorted(hours, whole_lo)]
        )
        totals += np.where(aligned, by_hour, 0.0)
    spans: list[tuple[int, int]] = []
    owners: list[int] = []
    for i, ((a, b), lo, hi, ok) in enumerate(
        zip(edges.tolist(), whole_lo.tolist(), whole_hi.tolist(), aligned.tolist(), strict=True)
    ):
        pieces = [(a, lo), (hi, b)] if ok else [(a, b)]
        for piece in pieces:
            if piece[1] > piece[0]:
                spans.append(piece)
                owners.append(i)
    if spans:
        np.add.at(totals, owners, _raw_sums(store, device_id, tag, spans))
    return [float(x) for x in totals]


def _raw_sums(
    store: TelemetryStore, device_id: str, tag: str, spans: Sequence[tuple[int, int]]
) -> npt.NDArray[np.float64]:
    """Sum of the points in each non-empty span (epoch µs), read in one query."""
    lo, hi = min(a for a, _ in spans), max(b for _, b in spans)
    table = store.query_range(device_id, [tag], from_epoch_us(lo), from_epoch_us(hi))
    ts, running = _us(table), _running(table)
    bounds = np.asarray(spans, dtype=np.int64)
    found: npt.NDArray[np.float64] = (
        running[np.searchsorted(ts, bounds[:, 1])] - running[np.searchsorted(ts, bounds[:, 0])]
    )
    return found


def _running(table: pa.Table) -> npt.NDArray[np.float64]:
    values = np.asarray(table.column("value").to_numpy(zero_copy_only=False), dtype=np.float64)
    return np.concatenate(([0.0], np.cumsum(np.nan_to_num(values))))


def _us(table: pa.Table) -> npt.NDArray[np.int64]:
    return np.asarray(table.column("ts").cast(pa.int64()).to_numpy(), dtype=np.int64)


def _floor_hour(us: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    return (us // _HOUR_US) * _HOUR_US


def _ceil_hour(us: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    return -((-us) // _HOUR_US) * _HOUR_US
