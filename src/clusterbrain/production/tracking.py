"""Machine states and production counts kept while data arrives (a pipeline observer).

Each stored batch is queued (bounded; a full queue drops the batch and counts it) and folded, for
every machine with a device, into the derived series of ``production.derived``: a ``$state``
point at each state change (and an ``offline`` one when more than ``offline_after_s`` passes
without data), and ``$good``/``$scrap``/``$energy`` points with what each counter sample adds.
Those are written back to the telemetry store, so that KPIs of long ranges read state changes and
hourly rollups instead of every raw point.

What has been folded (last state, last sample, last counter readings) is kept per device and,
after a restart, recovered from the store. Samples not newer than the last one folded (late data,
redeliveries) do not rewrite history; the KPIs derived from raw points stay the reference for
such cases. Debouncing (``min_duration_s``) applies only there. When the store cannot take the
derived points they wait in a bounded buffer and go with the next batch.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from clusterbrain.devices.models import Device
from clusterbrain.platform.db import session_scope
from clusterbrain.platform.models import Machine
from clusterbrain.production.calendar import epoch_us
from clusterbrain.production.counters import counted_steps
from clusterbrain.production.derived import (
    DERIVED_ENERGY,
    DERIVED_GOOD,
    DERIVED_SCRAP,
    DERIVED_STATE,
)
from clusterbrain.production.models import MachineSettings
from clusterbrain.production.oee_service import DEFAULT_RULES
from clusterbrain.production.states import (
    STATE_CODE,
    STATE_ORDER,
    MachineState,
    SignalFrame,
    StateRules,
    sample_codes,
)
from clusterbrain.telemetry.decode import PointColumns
from clusterbrain.telemetry.store import DERIVED_PREFIX, TelemetryStore, rows_by_device

_STATE_NAMES = np.array([state.value for state in STATE_ORDER], dtype=object)
_OFFLINE_CODE = STATE_CODE[MachineState.OFFLINE.value]
log = logging.getLogger(__name__)

REFRESH_S = 5.0
"""A batch from a device not tracked yet re-reads the machines, at most this often."""
COALESCE_ROWS = 200_000
"""A tracker behind ingest folds queued batches together, up to about this many points."""
PENDING_LIMIT = 200_000
"""Derived points kept while the store is down; beyond this the oldest are dropped (counted)."""


@dataclass(frozen=True, slots=True)
class Tracked:
    machine_id: int
    rules: StateRules
    counters: dict[str, str]
    """Derived tag → the device's counter tag."""


@dataclass(slots=True)
class Folded:
    """How far a device's data has been folded."""

    state: str | None = None
    last_us: int | None = None
    counters: dict[str, tuple[int, float] | None] = field(default_factory=dict)


class ProductionTracker:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        store: TelemetryStore,
        registry: CollectorRegistry | None = None,
        *,
        queue_size: int = 256,
    ) -> None:
        self._sessions = sessions
        self._store = store
        self._batches: queue.Queue[pa.Table] = queue.Queue(maxsize=queue_size)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._tracked: dict[str, Tracked] | None = None
        self._read_at = 0.0
        self._folded: dict[str, Folded] = {}
        self._pending: deque[pa.Table] = deque()
        self._pending_rows = 0
        self.dropped = Counter(
            "cb_tracker_batches_dropped",
            "Batches not folded into states and counts",
            registry=registry,
        )
        self.dropped_points = Counter(
            "cb_tracker_points_dropped",
            "Derived points dropped because the store was down too long",
            registry=registry,
        )

    def start(self) -> None:
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="tracker", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def reload(self) -> None:
        """Read the machines' settings again (after they changed)."""
        with self._lock:
            self._tracked = None
            self._folded.clear()

    def observe(self, table: pa.Table) -> None:
        try:
            self._batches.put_nowait(table)
        except queue.Full:
            self.dropped.inc()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                table = self._batches.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                self.process(self._with_waiting(table))
            except Exception:
                log.exception("tracking failed for a batch; continuing")

    def _with_waiting(self, table: pa.Table) -> pa.Table:
        """The batch and those queued behind it, as one: folding and writing back cost about the
        same for one batch as for many, so a tracker that fell behind catches up instead of
        paying that cost per ingest batch."""
        tables, rows = [table], table.num_rows
        while rows < COALESCE_ROWS:
            try:
                more = self._batches.get_nowait()
            except queue.Empty:
                break
            tables.append(more)
            rows += more.num_rows
        return tables[0] if len(tables) == 1 else pa.concat_tables(tables)

    # --- folding ---------------------------------------------------------------------------------

    def process(self, table: pa.Table) -> int:
        """Fold one batch of stored points; returns how many derived points were produced."""
        with self._lock:
            out = PointColumns()
            by_device = rows_by_device(table)
            tracked = self._devices(set(by_device))
            for device_id, rows in by_device.items():
                if device_id in tracked:
                    self._fold_device(device_id, tracked[device_id], rows, out)
            produced = len(out)
            if produced:
                self._pending.append(out.to_table())
                self._pending_rows += produced
            self._flush()
            return produced

    def _flush(self) -> None:
        while self._pending:
            try:
                self._store.write(self._pending[0])
            except Exception:
                log.warning("store unavailable for derived points; %d waiting", self._pending_rows)
                break
            self._pending_rows -= self._pending.popleft().num_rows
        while self._pending_rows > PENDING_LIMIT and self._pending:
            dropped = self._pending.popleft().num_rows
            self._pending_rows -= dropped
            self.dropped_points.inc(dropped)

    def _devices(self, present: set[str]) -> dict[str, Tracked]:
        """Machines with a device, re-read when a device appears that was not known yet."""
        stale = self._tracked is None or (
            not present <= self._tracked.keys() and time.monotonic() - self._read_at > REFRESH_S
        )
        if stale or self._tracked is None:
            with session_scope(self._sessions) as session:
                self._tracked = _tracked_devices(session)
            self._read_at = time.monotonic()
        return self._tracked

    def _fold_device(
        self, device_id: str, target: Tracked, rows: pa.Table, out: PointColumns
    ) -> None:
        rows = rows.filter(pc.invert(pc.starts_with(rows["tag"], DERIVED_PREFIX)))
        if rows.num_rows == 0:
            return
        first = pc.min(rows["ts"]).as_py()
        folded = self._folded.get(device_id)
        if folded is None:
            folded = self._folded[device_id] = self._recover(device_id, target, first)
        frame = _frame(rows, target.rules)
        if frame.ts_us.size:
            codes = sample_codes(frame, target.rules)
            _fold_states(out, device_id, folded, target.rules, frame.ts_us, codes)
        for derived, source in target.counters.items():
            _fold_counter(out, device_id, folded, rows, source, derived)

    def _recover(self, device_id: str, target: Tracked, first: datetime) -> Folded:
        """What was folded before this process started, read back from the store."""
        store = self._store
        folded = Folded()
        state = store.last_before(device_id, [DERIVED_STATE], first)
        sample = store.last_before(device_id, list(target.rules.tags), first)
        if state is not None and sample is not None:
            folded.state, folded.last_us = state.text, epoch_us(sample.ts)
        for source in target.counters.values():
            last = store.last_before(device_id, [source], first)
            if last is not None and last.value is not None:
                folded.counters[source] = (epoch_us(last.ts), last.value)
        return folded


def _tracked_devices(session: Session) -> dict[str, Tracked]:
    settings = {s.machine_id: s for s in session.scalars(select(MachineSettings))}
    tracked: dict[str, Tracked] = {}
    rows = session.execute(
        select(Device.id, Machine.id)
        .join(Machine, Machine.id == Device.machine_id)
        .order_by(Device.id)
    ).all()
    for device_id, machine_id in rows:
        setting = settings.get(machine_id)
        if setting is None:
            tracked.setdefault(
                device_id,
                Tracked(
                    machine_id,
                    DEFAULT_RULES,
                    {DERIVED_GOOD: "good_count", DERIVED_SCRAP: "scrap_count"},
                ),
            )
            continue
        if setting.device_id not in (None, device_id):
            continue
        rules = StateRules.from_dict(setting.state_rules) if setting.state_rules else DEFAULT_RULES
        counters = {
            derived: source
            for derived, source in (
                (DERIVED_GOOD, setting.good_count_tag),
                (DERIVED_SCRAP, setting.scrap_count_tag),
                (DERIVED_ENERGY, setting.energy_tag),
            )
            if source
        }
        tracked.setdefault(device_id, Tracked(machine_id, rules, counters))
    return tracked


def _frame(rows: pa.Table, rules: StateRules) -> SignalFrame:
    rows = rows.filter(pc.is_in(rows["tag"], pa.array(list(rules.tags))))
    values = [
        text if value is None else value
        for value, text in zip(
            rows.column("value").to_pylist(), rows.column("text").to_pylist(), strict=True
        )
    ]
    ts = rows.column("ts").cast(pa.int64()).to_numpy().astype("datetime64[us]")
    return SignalFrame.from_long(rows.column("tag").to_pylist(), ts, values).in_time_order()


def _fold_states(
    out: PointColumns,
    device_id: str,
    folded: Folded,
    rules: StateRules,
    ts_us: npt.NDArray[np.int64],
    codes: npt.NDArray[np.int8],
) -> None:
    """Append a state change where the state differs from the one before, and an offline
    change where samples stop for longer than ``offline_after_s``; samples not newer than the
    last one folded are skipped. In time order; ``ts_us`` is sorted.

    The same, sample by sample: skip ``ts <= last``; the first state ever is a change; after a
    gap longer than the hold, offline at ``last + hold`` and then the sample's state; otherwise
    a change when the state differs. Then ``last, state = ts, the sample's state``.
    """
    last, before = folded.last_us, folded.state
    ts = np.asarray(ts_us, dtype=np.int64)
    keep = np.ones(ts.size, dtype=bool)
    keep[1:] = ts[1:] != ts[:-1]  # equal times: the first one counts
    if last is not None:
        keep &= ts > last
    ts, codes = ts[keep], np.asarray(codes)[keep]
    if ts.size == 0:
        return
    unknown = before is None or last is None
    previous_ts = np.empty_like(ts)
    previous_ts[0] = last if last is not None else ts[0]
    previous_ts[1:] = ts[:-1]
    previous = np.empty_like(codes)
    previous[0] = STATE_CODE[before] if before is not None else codes[0]
    previous[1:] = codes[:-1]
    hold = rules.offline_after_s
    hold_us = 0 if hold is None else round(hold * 1e6)
    gap = np.zeros(ts.size, dtype=bool) if hold is None else ts - previous_ts > hold_us
    gap[0] &= not unknown
    change = (codes != previous) | gap
    change[0] |= unknown
    offline_at = previous_ts[gap] + hold_us
    at = np.concatenate((offline_at, ts[change]))
    names = np.concatenate(
        (np.full(offline_at.size, _OFFLINE_CODE, dtype=codes.dtype), codes[change])
    )
    order = np.argsort(at, kind="stable")
    out.extend(
        device_id, DERIVED_STATE, at[order].tolist(), texts=_STATE_NAMES[names[order]].tolist()
    )
    folded.state, folded.last_us = STATE_ORDER[int(codes[-1])].value, int(ts[-1])


def _fold_counter(
    out: PointColumns, device_id: str, folded: Folded, rows: pa.Table, source: str, derived: str
) -> None:
    samples = rows.filter(pc.and_(pc.equal(rows["tag"], source), pc.is_valid(rows["value"])))
    if samples.num_rows == 0:
        return
    ts = samples.column("ts").cast(pa.int64()).to_numpy().astype("datetime64[us]")
    steps = counted_steps(ts, samples.column("value").to_numpy(), folded.counters.get(source))
    made = steps.counted != 0
    out.extend(device_id, derived, steps.ts_us[made].tolist(), steps.counted[made].tolist())
    folded.counters[source] = steps.last
