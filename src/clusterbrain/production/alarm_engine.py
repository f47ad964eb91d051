"""Alarms on the live stream: rules evaluated on every stored batch, lifecycles kept in the DB.

The pipeline hands each persisted batch to :meth:`AlarmEngine.observe`, which only queues it
(bounded; a full queue drops the batch and counts it), so alarms never slow ingest down. The
engine's own thread evaluates the rules of the devices in the batch, applies the transitions to
the ISA-18.2 lifecycles, ticks for no-data rules and escalation, and hands notifications to the
notifier thread. A rule that cannot be evaluated is disabled with its reason, never the engine.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from clusterbrain.platform.db import session_scope, utcnow
from clusterbrain.platform.errors import NotFound
from clusterbrain.platform.notify import (
    DeliveryFailed,
    Email,
    SmtpSettings,
    post_webhook,
    send_email,
)
from clusterbrain.production.alarms import Alarm, Notify, Priority, condition_event
from clusterbrain.production.models import AlarmEvent, AlarmRecord, AlarmRule
from clusterbrain.production.rules import (
    RuleSet,
    RuleSetResult,
    Sample,
    Transition,
    parse_rule,
)
from clusterbrain.telemetry.store import rows_by_device

log = logging.getLogger(__name__)
DOCUMENT_HISTORY = 50  # history lines kept in an alarm's document; all of them in alarm_events


@dataclass(frozen=True, slots=True)
class Delivery:
    notify: Notify
    rule_name: str
    webhook_url: str
    emails: tuple[str, ...]


class AlarmEngine:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        smtp: Callable[[], SmtpSettings],
        registry: CollectorRegistry | None = None,
        *,
        queue_size: int = 256,
        tick_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._sessions = sessions
        self._smtp = smtp
        self._clock = clock
        self._tick_s = tick_s
        self._batches: queue.Queue[pa.Table] = queue.Queue(maxsize=queue_size)
        self._deliveries: queue.Queue[Delivery] = queue.Queue(maxsize=10_000)
        self._lock = threading.RLock()
        self._rulesets: dict[str, RuleSet] = {}
        self._rule_device: dict[str, str] = {}
        self._dirty = True
        self._mark: RulesMark | None = None
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        registry = registry or CollectorRegistry()
        self.dropped = Counter(
            "cb_alarm_batches_dropped", "Batches not evaluated", registry=registry
        )
        self.delivery_failures = Counter(
            "cb_alarm_delivery_failures", "Notifications not delivered", registry=registry
        )
        self.rules_disabled = Counter(
            "cb_alarm_rules_disabled", "Rules disabled by evaluation errors", registry=registry
        )

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        for target, name in ((self._evaluate_loop, "alarms"), (self._deliver_loop, "notify")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(5)
        self._threads.clear()

    def reload(self) -> None:
        """Rules changed: rebuild the rule sets before the next batch."""
        self._dirty = True

    def _notice_changes(self) -> None:
        """Rules edited by another process (the shell, another API worker) count as a reload."""
        with session_scope(self._sessions) as session:
            if _rules_mark(session) != self._mark:
                self._dirty = True

    def observe(self, table: pa.Table) -> None:
        try:
            self._batches.put_nowait(table)
        except queue.Full:
            self.dropped.inc()

    # --- evaluation ------------------------------------------------------------------------------

    def _evaluate_loop(self) -> None:
        next_tick = time.monotonic()
        while not self._stopping.is_set():
            try:
                table = self._batches.get(timeout=max(0.0, next_tick - time.monotonic()))
            except queue.Empty:
                table = None
            try:
                if table is not None:
                    self.process(table)
                if time.monotonic() >= next_tick:
                    self.tick(int(self._clock() * 1_000_000))
                    next_tick = time.monotonic() + self._tick_s
            except Exception:
                log.exception("alarm evaluation failed; continuing")

    def _ensure_rules(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        with session_scope(self._sessions) as session:
            self._mark = _rules_mark(session)
            rows = session.scalars(select(AlarmRule).where(AlarmRule.enabled.is_(True))).all()
            by_device: dict[str, list[object]] = {}
            self._rule_device = {}
            for row in rows:
                document = {**row.definition, "id": str(row.id)}
                by_device.setdefault(row.device_id, []).append(parse_rule(document))
                self._rule_device[str(row.id)] = row.device_id
            active = {
                str(rule_id)
                for rule_id, document in session.execute(
                    select(AlarmRecord.rule_id, AlarmRecord.document).where(
                        AlarmRecord.state != "normal"
                    )
                )
                if document.get("active")
            }
        rulesets = {d: RuleSet(rules) for d, rules in by_device.items()}  # type: ignore[arg-type]
        for device_id, ruleset in rulesets.items():
            # Unchanged rules go on where they were; changed ones resume their alarm's condition.
            ruleset.carry_over(self._rulesets.get(device_id), active)
        self._rulesets = rulesets

    def process(self, table: pa.Table) -> None:
        """Evaluate the rules of every device in a batch of POINT_SCHEMA rows."""
        with self._lock:
            self._ensure_rules()
            if not self._rulesets:
                return
            mine = table.filter(pc.is_in(table["device_id"], pa.array(list(self._rulesets))))
            for device_id, rows in rows_by_device(mine).items():
                result = self._rulesets[device_id].evaluate(_samples(rows))
                self._handle(result)

    def tick(self, now_us: int) -> None:
        """No-data rules, shelf expiry and escalation move on with time alone; rules changed
        elsewhere are picked up here."""
        with self._lock:
            self._notice_changes()
            self._ensure_rules()
            for ruleset in self._rulesets.values():
                self._handle(ruleset.tick(now_us))
            self._tick_alarms(now_us)

    def _handle(self, result: RuleSetResult) -> None:
        transitions = list(result.transitions)
        for error in result.errors.values():
            transitions.extend(error.transitions)
        if transitions:
            self._apply(transitions)
        for rule_id, error in result.errors.items():
            self._disable(int(rule_id), error.reason)

    def _disable(self, rule_id: int, reason: str) -> None:
        self.rules_disabled.inc()
        log.warning("alarm rule %s disabled: %s", rule_id, reason)
        with session_scope(self._sessions) as session:
            rule = session.get(AlarmRule, rule_id)
            if rule is not None:
                rule.enabled = False
                rule.disabled_reason = reason[:500]
        self._dirty = True

    def _apply(self, transitions: list[Transition]) -> None:
        with session_scope(self._sessions) as session:
            for transition in sorted(transitions, key=lambda t: t.ts_us):
                rule = session.get(AlarmRule, int(transition.rule_id))
                if rule is None:
                    continue
                record, alarm = self._alarm_of(session, rule)
                known = len(alarm.audit)
                notes = alarm.apply(condition_event(transition))
                _save(session, record, rule, alarm, known)
                self._queue(rule, notes)

    def _tick_alarms(self, now_us: int) -> None:
        with session_scope(self._sessions) as session:
            records = session.scalars(
                select(AlarmRecord).where(AlarmRecord.state != "normal")
            ).all()
            for record in records:
                rule = session.get(AlarmRule, record.rule_id)
                if rule is None:
                    continue
                alarm = Alarm.from_dict(record.document)
                known = len(alarm.audit)
                notes = alarm.tick(now_us)
                if notes or alarm.state.value != record.state or len(alarm.audit) > known:
                    _save(session, record, rule, alarm, known)
                self._queue(rule, notes)

    def _alarm_of(self, session: Session, rule: AlarmRule) -> tuple[AlarmRecord, Alarm]:
        record = session.scalar(select(AlarmRecord).where(AlarmRecord.rule_id == rule.id))
        if record is None:
            alarm = Alarm(str(rule.id), Priority(rule.priority), message=rule.message or rule.name)
            record = AlarmRecord(
                enterprise_id=rule.enterprise_id,
                rule_id=rule.id,
                state=alarm.state.value,
                priority=rule.priority,
                document=alarm.to_dict(),
            )
            session.add(record)
            session.flush()
            return record, alarm
        return record, Alarm.from_dict(record.document)

    # --- operator actions (API) -------------------------------------------------------------------

    def act(
        self, session: Session, record: AlarmRecord, action: Callable[[Alarm], list[Notify]]
    ) -> Alarm:
        """Apply an operator's action to a stored alarm, under the engine's lock."""
        with self._lock:
            session.refresh(record)
            rule = session.get(AlarmRule, record.rule_id)
            if rule is None:
                raise NotFound(f"alarm {record.id} not found")
            alarm = Alarm.from_dict(record.document)
            known = len(alarm.audit)
            notes = action(alarm)
            _save(session, record, rule, alarm, known)
            self._queue(rule, notes)
            return alarm

    # --- notifications --------------------------------------------------------------------------

    def _queue(self, rule: AlarmRule, notes: list[Notify]) -> None:
        for note in notes:
            if not rule.webhook_url and not rule.emails:
                continue
            delivery = Delivery(note, rule.name, rule.webhook_url, tuple(rule.emails or ()))
            try:
                self._deliveries.put_nowait(delivery)
            except queue.Full:
                self.delivery_failures.inc()

    def _deliver_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                delivery = self._deliveries.get(timeout=0.5)
            except queue.Empty:
                continue
            self.deliver(delivery)

    def deliver(self, delivery: Delivery) -> None:
        payload = {**delivery.notify.to_payload(), "rule": delivery.rule_name}
        try:
            if delivery.webhook_url:
                post_webhook(delivery.webhook_url, payload)
            if delivery.emails:
                subject = (
                    f"[{delivery.notify.priority}] {delivery.notify.kind}: {delivery.rule_name}"
                )
                send_email(self._smtp(), Email(list(delivery.emails), subject, _text(payload)))
        except DeliveryFailed as exc:
            self.delivery_failures.inc()
            log.warning("alarm notification not delivered: %s", exc.detail)


def _save(session: Session, record: AlarmRecord, rule: AlarmRule, alarm: Alarm, known: int) -> None:
    """Store the alarm: its new history lines go to the journal, the document keeps the latest.

    ``known`` is how many history lines the alarm had when it was loaded; the ones after it are
    new. Trimming keeps the document (rewritten on every change) small however long the alarm
    lives; the whole history stays in ``alarm_events``.
    """
    session.add_all(
        AlarmEvent(
            enterprise_id=record.enterprise_id,
            alarm_id=record.id,
            rule_id=rule.id,
            rule_name=rule.name,
            device_id=rule.device_id,
            priority=alarm.priority.value,
            ts_us=entry.ts_us,
            event=entry.event,
            user=(entry.user or "")[:200],
            from_state=entry.from_state.value,
            to_state=entry.to_state.value,
            detail=entry.detail[:1000],
        )
        for entry in alarm.audit[known:]
    )
    del alarm.audit[:-DOCUMENT_HISTORY]
    record.document = alarm.to_dict()
    record.state = alarm.state.value
    record.priority = alarm.priority.value
    record.updated_at = utcnow()


RulesMark = tuple[int, int | None, datetime | None]
"""How many rules, the newest id and the latest change: any edit, addition or deletion moves it."""


def _rules_mark(session: Session) -> RulesMark:
    count, newest, changed = session.execute(
        select(func.count(AlarmRule.id), func.max(AlarmRule.id), func.max(AlarmRule.updated_at))
    ).one()
    return int(count), newest, changed


def _text(payload: dict[str, object]) -> str:
    return "\n".join(f"{key}: {value}" for key, value in payload.items())


def _samples(rows: pa.Table) -> list[Sample]:
    """(ts_us, tag, value) in time order; text tags carry their text."""
    ts = rows.column("ts").cast(pa.int64()).to_pylist()
    tags = rows.column("tag").to_pylist()
    values = rows.column("value").to_pylist()
    texts = rows.column("text").to_pylist()
    samples = [
        Sample(t, tag, text if value is None and text is not None else value)
        for t, tag, value, text in zip(ts, tags, values, texts, strict=True)
    ]
    samples.sort(key=lambda s: s.ts_us)
    return samples
