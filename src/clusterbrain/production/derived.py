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

from collections.abc import Mapping, Sequence
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
from clusterbrain.telemetry.store import ROLLUP_1H, Aggregate, LatestValue, TelemetryStore

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
    return stored_runs_many(store, {device_id: rules}, start, end)[device_id]


def stored_runs_many(
    store: TelemetryStore,
    rules: Mapping[str, StateRules],
    start: datetime,
    end: datetime,
) -> dict[str, StateRuns]:
    """:func:`stored_runs` of many devices (device → its state rules), in three reads in all."""
    devices = list(rules)
    before = store.last_before_many(devices, [DERIVED_STATE], start)
    table = store.query_text_many(devices, [DERIVED_STATE], start, end)
    names = pa.array([state.value for state in STATE_ORDER])
    all_codes = np.asarray(
        pc.index_in(table.column("text"), value_set=names).fill_null(_OFFLINE), dtype=np.int8
    )
    all_moments = _us(table)
    changes = {}
    for device, (lo, hi) in _row_ranges(table.column("device_id"), devices).items():
        moments, codes = all_moments[lo:hi], all_codes[lo:hi]
        previous = before.get(device)
        if previous is not None and previous.text in STATE_CODE:
            moments = np.concatenate(([epoch_us(previous.ts)], moments))
            codes = np.concatenate(([STATE_CODE[previous.text]], codes)).astype(np.int8)
        changes[device] = (moments, codes)
    last_samples = _last_samples_before(store, rules, changes, end)
    runs = {}
    for device, (moments, codes) in changes.items():
        last_sample = last_samples.get(device)
        offline_after_s = rules[device].offline_after_s
        if last_sample is not None and offline_after_s is not None and moments.size:
            open_end = epoch_us(last_sample.ts) + round(offline_after_s * 1e6)
            if moments[-1] < open_end < epoch_us(end):
                moments = np.append(moments, open_end)
                codes = np.append(codes, np.int8(_OFFLINE))
        runs[device] = runs_from_changes(moments, codes, epoch_us(start), epoch_us(end))
    return runs


def _last_samples_before(
    store: TelemetryStore,
    rules: Mapping[str, StateRules],
    changes: Mapping[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.int8]]],
    moment: datetime,
) -> dict[str, LatestValue]:
    """Each device's newest sample of its state tags before ``moment``, where it matters.

    It only matters when it is newer than the last state change less ``offline_after_s`` (the
    open interval after it ends as offline), so the raw points are read from there on only.
    """
    since: dict[tuple[str, ...], list[tuple[str, int]]] = {}
    for device, (moments, _) in changes.items():
        offline_after_s = rules[device].offline_after_s
        if offline_after_s is None or not moments.size:
            continue
        lower = int(moments[-1]) - round(offline_after_s * 1e6)
        since.setdefault(tuple(rules[device].tags), []).append((device, lower))
    found: dict[str, LatestValue] = {}
    for tags, bounds in since.items():
        lowest = from_epoch_us(min(lower for _, lower in bounds))
        devices = [device for device, _ in bounds]
        found.update(store.last_before_many(devices, list(tags), moment, since=lowest))
    return found


def _row_ranges(owners: pa.ChunkedArray, devices: Sequence[str]) -> dict[str, tuple[int, int]]:
    """Where each device's rows lie in a table grouped by device: device → (first, end).

    Only contiguity is assumed, not the database's collation order of the ids.
    """
    ranges = dict.fromkeys(devices, (0, 0))
    if len(owners) == 0:
        return ranges
    encoded = pc.dictionary_encode(owners.combine_chunks())
    codes = np.asarray(encoded.indices.to_numpy(zero_copy_only=False))
    names = encoded.dictionary.to_pylist()
    starts = np.concatenate(([0], np.flatnonzero(codes[1:] != codes[:-1]) + 1))
    ends = np.append(starts[1:], codes.size)
    for lo, hi in zip(starts.tolist(), ends.tolist(), strict=True):
        ranges[names[codes[lo]]] = (lo, hi)
    return ranges


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
    return stored_counts_many(store, tags, {device_id: windows})[device_id]


def stored_counts_many(
    store: TelemetryStore,
    tags: Sequence[str],
    windows: Mapping[str, Sequence[tuple[datetime, datetime]]],
) -> dict[str, dict[str, list[float]]]:
    """:func:`stored_counts` of many devices (device → its windows): two queries at most."""
    edges = {
        device: np.asarray([(epoch_us(a), epoch_us(b)) for a, b in w], dtype=np.int64).reshape(
            -1, 2
        )
        for device, w in windows.items()
    }
    totals = {device: {tag: np.zeros(len(e)) for tag in tags} for device, e in edges.items()}
    hours = {d: (_ceil_hour(e[:, 0]), _floor_hour(e[:, 1])) for d, e in edges.items()}
    aligned = {d: lo < hi for d, (lo, hi) in hours.items()}
    hourly_devices = [d for d in edges if aligned[d].any()]
    if tags and hourly_devices:
        lo = min(int(hours[d][0][aligned[d]].min()) for d in hourly_devices)
        hi = max(int(hours[d][1][aligned[d]].max()) for d in hourly_devices)
        hourly = store.query_range_many(
            hourly_devices,
            list(tags),
            from_epoch_us(lo),
            from_epoch_us(hi),
            bucket=ROLLUP_1H,
            agg=Aggregate.SUM,
        )
        for device, per_tag in _per_device_tag(hourly, hourly_devices, tags).items():
            whole_lo, whole_hi = hours[device]
            for tag, (moments, running) in per_tag.items():
                found = (
                    running[np.searchsorted(moments, whole_hi)]
                    - running[np.searchsorted(moments, whole_lo)]
                )
                totals[device][tag] += np.where(aligned[device], found, 0.0)
    pieces = {d: _partial_pieces(e, *hours[d], aligned[d]) for d, e in edges.items()}
    raw_devices = [d for d, (bounds, _) in pieces.items() if bounds.size]
    if tags and raw_devices:
        raw = store.query_range_many(
            raw_devices,
            list(tags),
            from_epoch_us(min(int(pieces[d][0][:, 0].min()) for d in raw_devices)),
            from_epoch_us(max(int(pieces[d][0][:, 1].max()) for d in raw_devices)),
        )
        for device, per_tag in _per_device_tag(raw, raw_devices, tags).items():
            bounds, owners = pieces[device]
            for tag, (moments, running) in per_tag.items():
                found = (
                    running[np.searchsorted(moments, bounds[:, 1])]
                    - running[np.searchsorted(moments, bounds[:, 0])]
                )
                np.add.at(totals[device][tag], owners, found)
    return {
        device: {tag: [float(x) for x in total] for tag, total in per_tag.items()}
        for device, per_tag in totals.items()
    }


def _partial_pieces(
    edges: npt.NDArray[np.int64],
    whole_lo: npt.NDArray[np.int64],
    whole_hi: npt.NDArray[np.int64],
    aligned: npt.NDArray[np.bool_],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.intp]]:
    """The parts of the windows outside their whole hours, with the window each belongs to."""
    spans: list[tuple[int, int]] = []
    owners: list[int] = []
    for i, ((a, b), lo, hi, ok) in enumerate(
        zip(edges.tolist(), whole_lo.tolist(), whole_hi.tolist(), aligned.tolist(), strict=True)
    ):
        for piece in [(a, lo), (hi, b)] if ok else [(a, b)]:
            if piece[1] > piece[0]:
                spans.append(piece)
                owners.append(i)
    return (
        np.asarray(spans, dtype=np.int64).reshape(-1, 2),
        np.asarray(owners, dtype=np.intp),
    )


def _per_device_tag(
    table: pa.Table, devices: Sequence[str], tags: Sequence[str]
) -> dict[str, dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]]]:
    """:func:`_per_tag` of each device of a many-device table."""
    return {
        device: _per_tag(table.slice(lo, hi - lo), tags)
        for device, (lo, hi) in _row_ranges(table.column("device_id"), devices).items()
    }


def _per_tag(
    table: pa.Table, tags: Sequence[str]
) -> dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]]:
    """Per tag: the points' epoch µs and the running sum of their values (0 before the first)."""
    ts, names = _us(table), table.column("tag")
    values = np.nan_to_num(
        np.asarray(table.column("value").to_numpy(zero_copy_only=False), dtype=np.float64)
    )
    out = {}
    for tag in tags:
        mine = np.asarray(pc.equal(names, tag).to_numpy(zero_copy_only=False), dtype=bool)
        out[tag] = (ts[mine], np.concatenate(([0.0], np.cumsum(values[mine]))))
    return out


def _us(table: pa.Table) -> npt.NDArray[np.int64]:
    return np.asarray(table.column("ts").cast(pa.int64()).to_numpy(), dtype=np.int64)


def _floor_hour(us: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    return (us // _HOUR_US) * _HOUR_US


def _ceil_hour(us: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    return -((-us) // _HOUR_US) * _HOUR_US
