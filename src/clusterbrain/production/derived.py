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
import pyarrow.compute as pc

from clusterbrain.production.calendar import epoch_us, from_epoch_us
from clusterbrain.production.states import (
    STATE_CODE,
    STATE_ORDER,
    MachineState,
    StateInterval,
    StateRules,
    StateRuns,
    runs_from_changes,
)
from clusterbrain.telemetry.store import ROLLUP_1H, Aggregate, TelemetryStore

DERIVED_STATE = "$state"
DERIVED_GOOD = "$good"
DERIVED_SCRAP = "$scrap"
DERIVED_ENERGY = "$energy"

_HOUR_US = ROLLUP_1H // timedelta(microseconds=1)
_ONE_US = timedelta(microseconds=1)
_OFFLINE = STATE_CODE[MachineState.OFFLINE.value]


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
    return stored_runs(store, device_id, rules, start, end).intervals()


def stored_runs(
    store: TelemetryStore,
    device_id: str,
    rules: StateRules,
    start: datetime,
    end: datetime,
) -> StateRuns:
    """:func:`stored_intervals` in array form."""
    before = store.last_before(device_id, [DERIVED_STATE], start)
    table = store.query_text(device_id, [DERIVED_STATE], start, end)
    moments = _us(table)
    names = pa.array([state.value for state in STATE_ORDER])
    codes = np.asarray(
        pc.index_in(table.column("text"), value_set=names).fill_null(_OFFLINE), dtype=np.int8
    )
    if before is not None and before.text in STATE_CODE:
        moments = np.concatenate(([epoch_us(before.ts)], moments))
        codes = np.concatenate(([STATE_CODE[before.text]], codes)).astype(np.int8)
    last_sample = store.last_before(device_id, list(rules.tags), end)
    if last_sample is not None and rules.offline_after_s is not None and moments.size:
        open_end = epoch_us(last_sample.ts) + round(rules.offline_after_s * 1e6)
        if moments[-1] < open_end < epoch_us(end):
            moments = np.append(moments, open_end)
            codes = np.append(codes, np.int8(_OFFLINE))
    return runs_from_changes(moments, codes, epoch_us(start), epoch_us(end))


def stored_counts(
    store: TelemetryStore,
    device_id: str,
    tags: Sequence[str],
    windows: Sequence[tuple[datetime, datetime]],
) -> dict[str, list[float]]:
    """Sum of each derived count series in each window ``[start, end)``.

    Whole hours come from the hourly rollup; the parts of a window before its first and after its
    last full hour come from the points themselves. Two queries at most, whatever the windows.
    """
    if not windows or not tags:
        return {tag: [0.0] * len(windows) for tag in tags}
    edges = np.asarray([(epoch_us(a), epoch_us(b)) for a, b in windows], dtype=np.int64)
    whole_lo, whole_hi = _ceil_hour(edges[:, 0]), _floor_hour(edges[:, 1])
    aligned = whole_lo < whole_hi
    totals = {tag: np.zeros(len(edges)) for tag in tags}
    if aligned.any():
        hourly = store.query_range(
            device_id,
            list(tags),
            from_epoch_us(int(whole_lo[aligned].min())),
            from_epoch_us(int(whole_hi[aligned].max())),
            bucket=ROLLUP_1H,
            agg=Aggregate.SUM,
        )
        for tag, (hours, running) in _per_tag(hourly, tags).items():
            found = (
                running[np.searchsorted(hours, whole_hi)]
                - running[np.searchsorted(hours, whole_lo)]
            )
            totals[tag] += np.where(aligned, found, 0.0)
    spans: list[tuple[int, int]] = []
    owners: list[int] = []
    for i, ((a, b), lo, hi, ok) in enumerate(
        zip(edges.tolist(), whole_lo.tolist(), whole_hi.tolist(), aligned.tolist(), strict=True)
    ):
        for piece in [(a, lo), (hi, b)] if ok else [(a, b)]:
            if piece[1] > piece[0]:
                spans.append(piece)
                owners.append(i)
    if spans:
        bounds = np.asarray(spans, dtype=np.int64)
        raw = store.query_range(
            device_id,
            list(tags),
            from_epoch_us(int(bounds[:, 0].min())),
            from_epoch_us(int(bounds[:, 1].max())),
        )
        for tag, (ts, running) in _per_tag(raw, tags).items():
            found = (
                running[np.searchsorted(ts, bounds[:, 1])]
                - running[np.searchsorted(ts, bounds[:, 0])]
            )
            np.add.at(totals[tag], owners, found)
    return {tag: [float(x) for x in total] for tag, total in totals.items()}


def _per_tag(
    table: pa.Table, tags: Sequence[str]
) -> dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]]:
    """Per tag: the points' epoch µs and the running sum of their values (0 before the first)."""
    ts, names = _us(table), np.asarray(table.column("tag").to_pylist(), dtype=object)
    values = np.nan_to_num(
        np.asarray(table.column("value").to_numpy(zero_copy_only=False), dtype=np.float64)
    )
    out = {}
    for tag in tags:
        mine = names == tag
        out[tag] = (ts[mine], np.concatenate(([0.0], np.cumsum(values[mine]))))
    return out


def _us(table: pa.Table) -> npt.NDArray[np.int64]:
    return np.asarray(table.column("ts").cast(pa.int64()).to_numpy(), dtype=np.int64)


def _floor_hour(us: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    return (us // _HOUR_US) * _HOUR_US


def _ceil_hour(us: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    return -((-us) // _HOUR_US) * _HOUR_US
