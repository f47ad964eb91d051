"""Machine states kept as intervals while data arrives (a pipeline observer).

Each stored batch is queued (bounded; a full queue drops the batch and counts it) and folded into
every configured machine's intervals: a state holds from its first sample until the state
changes, or until ``offline_after_s`` passes without data, which closes it and opens an offline
interval. Samples older than the last one folded in (late data, redeliveries) do not rewrite
history; the intervals derived on request from raw points (``oee_service.state_intervals``) stay
the reference for such cases. Debouncing (``min_duration_s``) applies only there.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import or_, select
from sqlalchemy.orm import Session, sessionmaker

from clusterbrain.devices.models import Device
from clusterbrain.platform.db import session_scope
from clusterbrain.platform.models import Machine
from clusterbrain.production.calendar import epoch_us, from_epoch_us
from clusterbrain.production.models import MachineSettings, StateIntervalRow
from clusterbrain.production.oee_service import DEFAULT_RULES
from clusterbrain.production.states import (
    MachineState,
    SignalFrame,
    StateInterval,
    StateRules,
    sample_states,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Tracked:
    machine_id: int
    enterprise_id: int
    rules: StateRules


class StateTracker:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        registry: CollectorRegistry | None = None,
        *,
        queue_size: int = 256,
    ) -> None:
        self._sessions = sessions
        self._batches: queue.Queue[pa.Table] = queue.Queue(maxsize=queue_size)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._tracked: dict[str, Tracked] | None = None
        self.dropped = Counter(
            "cb_state_batches_dropped", "Batches not folded into states", registry=registry
        )

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="states", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def reload(self) -> None:
        self._tracked = None

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
                self.process(table)
            except Exception:
                log.exception("state tracking failed for a batch; continuing")

    # --- folding samples into intervals ----------------------------------------------------------

    def _devices(self, session: Session) -> dict[str, Tracked]:
        """Machines with a device: their own rules, else the state tag of DESIGN's profiles."""
        if self._tracked is None:
            settings = {s.machine_id: s for s in session.scalars(select(MachineSettings))}
            tracked: dict[str, Tracked] = {}
            rows = session.execute(
                select(Device.id, Machine.id, Machine.enterprise_id).join(
                    Machine, Machine.id == Device.machine_id
                )
            ).all()
            for device_id, machine_id, enterprise_id in rows:
                setting = settings.get(machine_id)
                if setting is not None and setting.device_id not in (None, device_id):
                    continue
                rules = (
                    StateRules.from_dict(setting.state_rules)
                    if setting is not None and setting.state_rules
                    else DEFAULT_RULES
                )
                tracked.setdefault(device_id, Tracked(machine_id, enterprise_id, rules))
            self._tracked = tracked
        return self._tracked

    def process(self, table: pa.Table) -> None:
        with self._lock, session_scope(self._sessions) as session:
            tracked = self._devices(session)
            for device_id in set(table.column("device_id").to_pylist()) & tracked.keys():
                target = tracked[device_id]
                frame = _frame(table, device_id, target.rules)
                if frame.ts_us.size:
                    states = sample_states(frame, target.rules)
                    _fold(session, target, frame.ts_us.tolist(), states)


def _frame(table: pa.Table, device_id: str, rules: StateRules) -> SignalFrame:
    mask = pc.and_(
        pc.equal(table["device_id"], device_id), pc.is_in(table["tag"], pa.array(list(rules.tags)))
    )
    rows = table.filter(mask)
    values = [
        text if value is None else value
        for value, text in zip(
            rows.column("value").to_pylist(), rows.column("text").to_pylist(), strict=True
        )
    ]
    ts = rows.column("ts").cast(pa.int64()).to_numpy().astype("datetime64[us]")
    return SignalFrame.from_long(rows.column("tag").to_pylist(), ts, values).in_time_order()


def _fold(session: Session, target: Tracked, ts_us: list[int], states: list[MachineState]) -> None:
    hold = target.rules.offline_after_s
    hold_us = None if hold is None else round(hold * 1e6)
    current = session.scalar(
        select(StateIntervalRow).where(
            StateIntervalRow.machine_id == target.machine_id, StateIntervalRow.end.is_(None)
        )
    )
    for ts, state in zip(ts_us, states, strict=True):
        if current is None:
            current = _open(session, target, state.value, ts)
            continue
        last = epoch_us(current.last_sample)
        if ts <= last:
            continue
        if hold_us is not None and ts - last > hold_us:
            current.end = from_epoch_us(last + hold_us)
            gap = _open(session, target, MachineState.OFFLINE.value, last + hold_us)
            gap.end = from_epoch_us(ts)
            current = _open(session, target, state.value, ts)
        elif state.value != current.state:
            current.end = from_epoch_us(ts)
            current = _open(session, target, state.value, ts)
        else:
            current.last_sample = from_epoch_us(ts)
    session.flush()


def _open(session: Session, target: Tracked, state: str, ts_us: int) -> StateIntervalRow:
    row = StateIntervalRow(
        enterprise_id=target.enterprise_id,
        machine_id=target.machine_id,
        state=state,
        start=from_epoch_us(ts_us),
        end=None,
        last_sample=from_epoch_us(ts_us),
    )
    session.add(row)
    session.flush()
    return row


def stored_intervals(
    session: Session,
    machine_id: int,
    start: datetime,
    end: datetime,
    offline_after_s: float | None = 300.0,
) -> list[StateInterval]:
    """Stored intervals cut to ``[start, end)``; time without any interval is offline."""
    rows = session.scalars(
        select(StateIntervalRow)
        .where(
            StateIntervalRow.machine_id == machine_id,
            StateIntervalRow.start < end,
            or_(StateIntervalRow.end.is_(None), StateIntervalRow.end > start),
        )
        .order_by(StateIntervalRow.start)
    ).all()
    out: list[StateInterval] = []
    cursor = start
    for row in rows:
        row_end = row.end or _open_end(row, offline_after_s)
        lo, hi = max(row.start, start), min(row_end, end)
        if hi <= lo:
            continue
        if lo > cursor:
            out.append(StateInterval(MachineState.OFFLINE, cursor, lo))
        out.append(StateInterval(MachineState(row.state), lo, hi))
        cursor = hi
    if cursor < end:
        out.append(StateInterval(MachineState.OFFLINE, cursor, end))
    return _merged(out)


def _open_end(row: StateIntervalRow, offline_after_s: float | None) -> datetime:
    """The open interval holds until ``offline_after_s`` past its last sample."""
    if offline_after_s is None:
        return datetime.max.replace(tzinfo=UTC)
    return row.last_sample + timedelta(seconds=offline_after_s)


def _merged(intervals: list[StateInterval]) -> list[StateInterval]:
    merged: list[StateInterval] = []
    for interval in intervals:
        if merged and merged[-1].state is interval.state and merged[-1].end == interval.start:
            merged[-1] = StateInterval(interval.state, merged[-1].start, interval.end)
        else:
            merged.append(interval)
    return merged
