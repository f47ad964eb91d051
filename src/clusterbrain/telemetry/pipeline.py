"""The ingest pipeline: bounded queue → batch decode and validate → store (or spool) → ack.

One path in for every source (MQTT, HTTP, gateways). Messages are acknowledged through their
``on_done`` callback only after their points are committed to the store or fsynced to the spool,
so a crash anywhere before that makes the broker redeliver, and idempotent writes make the
redelivery harmless: every point is stored exactly once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import pyarrow as pa

from clusterbrain.devices.spec import DeviceSpec
from clusterbrain.telemetry.dead_letters import DeadLetterRecord
from clusterbrain.telemetry.decode import Limits, PointColumns, Rejection, decode_message
from clusterbrain.telemetry.metrics import IngestMetrics
from clusterbrain.telemetry.spool import Spool
from clusterbrain.telemetry.store import StoreUnavailable, TelemetryStore

log = logging.getLogger(__name__)


@dataclass(slots=True)
class MessageOutcome:
    points: int = 0
    rejections: list[Rejection] = field(default_factory=list)


@dataclass(slots=True)
class RawMessage:
    device_id: str
    payload: bytes
    source: str
    topic: str = ""
    on_done: Callable[[MessageOutcome], None] | None = None
    via: str = ""
    """The gateway whose topic carried the message, if any."""


class DeviceDirectory(Protocol):
    def lookup(self, device_id: str) -> DeviceSpec | None: ...

    def touch(self, device_ids: Iterable[str], at: datetime) -> None: ...

    def flush_last_seen(self) -> int: ...


class DeadLetterSink(Protocol):
    def write(self, records: Sequence[DeadLetterRecord]) -> None: ...


class BatchObserver(Protocol):
    """Sees every persisted batch (e.g. the alarm engine); must return quickly and not raise."""

    def observe(self, table: pa.Table) -> None: ...


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    queue_size: int = 20_000
    queue_bytes: int = 32 * 1024 * 1024  # payload bytes waiting, at most (one message always fits)
    batch_messages: int = 2_000
    batch_bytes: int = 1024 * 1024  # payload bytes per batch: bounds the points decoded at once
    batch_wait_s: float = 0.05
    limits: Limits = field(default_factory=Limits)
    last_seen_flush_s: float = 2.0
    retry_min_s: float = 0.2
    retry_max_s: float = 5.0


class IngestPipeline:
    def __init__(
        self,
        store: TelemetryStore,
        directory: DeviceDirectory,
        dead_letters: DeadLetterSink,
        spool: Spool,
        metrics: IngestMetrics,
        config: PipelineConfig = PipelineConfig(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.metrics = metrics
        self._directory = directory
        self._dead_letters = dead_letters
        self._spool = spool
        self._config = config
        self._clock = clock
        self._queue = _MessageBuffer(config.queue_size, config.queue_bytes)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._retry_at = 0.0
        self._retry_delay = config.retry_min_s
        self._last_seen_flush = 0.0
        self._received: dict[str, Any] = {}  # the messages counter's child per source
        self._observers: list[BatchObserver] = []
        self.metrics.spool_bytes.set(spool.size_bytes)

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="ingest-pipeline", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Finish what is queued (if the store allows), then stop."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def add_observer(self, observer: BatchObserver) -> None:
        """Hand every batch, once committed or spooled, to ``observer.observe``."""
        self._observers.append(observer)

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def spool(self) -> Spool:
        return self._spool

    # --- input -----------------------------------------------------------------------------------

    def submit(self, message: RawMessage, timeout: float | None = None) -> bool:
        """Queue a message; wait up to ``timeout`` for room (None: until room or stop).

        Returns False when the message was shed (counted); callers that can be redelivered
        (QoS 1) simply do not acknowledge it.
        """
        received = self._received.get(message.source)
        if received is None:  # labels() costs more than the rest of submit together
            received = self._received[message.source] = self.metrics.messages.labels(message.source)
        received.inc()
        if self._queue.put(message, 0.0):
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = 0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))
            if self._queue.put(message, wait):
                return True
            expired = deadline is not None and time.monotonic() >= deadline
            if expired or self._stopping.is_set():
                self.metrics.dropped.labels(message.source).inc()
                return False

    def submit_and_wait(self, message: RawMessage, timeout: float = 10.0) -> MessageOutcome | None:
        """Queue a message and wait for its outcome (HTTP ingest); None if shed or timed out."""
        done = threading.Event()
        result: list[MessageOutcome] = []

        def finish(outcome: MessageOutcome) -> None:
            result.append(outcome)
            done.set()

        message.on_done = finish
        if not self.submit(message, timeout=min(timeout, 2.0)):
            return None
        done.wait(timeout)
        return result[0] if result else None

    # --- the worker ------------------------------------------------------------------------------

    def _run(self) -> None:
        while not (self._stopping.is_set() and not self._queue):
            batch = self._collect()
            if batch:
                try:
                    self._handle(batch)
                except _Stopped:
                    return
            self._replay_spool()
            self._flush_last_seen()
        self._flush_last_seen(force=True)

    def _collect(self) -> list[RawMessage]:
        config = self._config
        batch = self._queue.take(
            config.batch_messages, config.batch_bytes, first_wait=0.2, linger=config.batch_wait_s
        )
        self.metrics.queue_depth.set(len(self._queue))
        return batch

    def _handle(self, batch: list[RawMessage]) -> None:
        started = time.perf_counter()
        now = self._clock()
        now_us = int(now * 1_000_000)
        received_at = datetime.fromtimestamp(now, UTC)
        columns = PointColumns()
        outcomes: list[MessageOutcome] = []
        records: list[DeadLetterRecord] = []
        seen: set[str] = set()
        specs: dict[str, DeviceSpec | None] = {}
        for message in batch:
            device_id = message.device_id
            if device_id in specs:
                spec = specs[device_id]
            else:
                spec = specs[device_id] = self._directory.lookup(device_id)
            before = len(columns)
            rejections = decode_message(
                message.payload,
                spec,
                message.device_id,
                now_us,
                columns,
                self._config.limits,
                message.via,
            )
            outcome = MessageOutcome(len(columns) - before, rejections)
            outcomes.append(outcome)
            if outcome.points:
                seen.add(message.device_id)
            if rejections:
                records.extend(_dead_letters_of(message, spec, rejections, received_at))
        if len(columns):
            table = columns.to_table()
            self._persist(table)
            self._notify_observers(table)
        self._write_dead_letters(records)
        self._directory.touch(seen, received_at)
        for message, outcome in zip(batch, outcomes, strict=True):
            if message.on_done is not None:
                message.on_done(outcome)
        self.metrics.batch_seconds.set(time.perf_counter() - started)

    def _notify_observers(self, table: pa.Table) -> None:
        for observer in self._observers:
            try:
                observer.observe(table)
            except Exception:  # an observer must never stop ingest
                log.exception("batch observer %r failed", observer)

    def _write_dead_letters(self, records: list[DeadLetterRecord]) -> None:
        for record in records:
            self.metrics.dead_letters.labels(record.reason).inc()
        try:
            self._dead_letters.write(records)
        except Exception:  # the metadata DB being down must not stop telemetry
            log.exception("could not write %d dead letters", len(records))

    # --- store, spool, replay --------------------------------------------------------------------

    def _persist(self, table: pa.Table) -> None:
        """Commit to the store, or fsync to the spool; block (not acking) while neither works."""
        while True:
            if len(self._spool) == 0 and self._try_store(table):
                return
            if self._spool.append(table):
                self.metrics.spooled_points.inc(table.num_rows)
                self.metrics.spool_bytes.set(self._spool.size_bytes)
                return
            # Spool full and store down: hold the batch unacknowledged; the broker keeps the rest.
            self._replay_spool(force=True)
            if self._stopping.is_set():
                raise _Stopped
            time.sleep(self._retry_delay)

    def _try_store(self, table: pa.Table) -> bool:
        if time.monotonic() < self._retry_at:
            return False
        try:
            new = self.store.write(table)
        except StoreUnavailable as exc:
            self._store_failed(exc)
            return False
        self._store_ok()
        self.metrics.points_stored.inc(new)
        self.metrics.points_duplicate.inc(table.num_rows - new)
        return True

    def _store_failed(self, exc: Exception) -> None:
        self.metrics.store_errors.inc()
        log.warning("telemetry store unavailable, retrying in %.1f s: %s", self._retry_delay, exc)
        self._retry_at = time.monotonic() + self._retry_delay
        self._retry_delay = min(self._retry_delay * 2, self._config.retry_max_s)

    def _store_ok(self) -> None:
        self._retry_delay = self._config.retry_min_s
        self._retry_at = 0.0

    def _replay_spool(self, force: bool = False) -> None:
        """Move spooled batches to the store, oldest first, while the store takes them."""
        deadline = time.monotonic() + 1.0
        while len(self._spool) and (force or time.monotonic() < deadline):
            oldest = self._spool.oldest()
            if oldest is None or not self._try_store(oldest[1]):
                return
            self._spool.remove(oldest[0])
            self.metrics.spool_bytes.set(self._spool.size_bytes)
            force = False

    def _flush_last_seen(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_seen_flush < self._config.last_seen_flush_s:
            return
        self._last_seen_flush = now
        try:
            self._directory.flush_last_seen()
        except Exception:
            log.exception("could not record last-seen times")


class _MessageBuffer:
    """A FIFO of messages bounded in count and in payload bytes.

    Like ``queue.Queue``, but the consumer takes a whole batch under one lock, and a batch is
    bounded in bytes too: a count alone lets a queue of large (many-sample) messages, or a batch
    of them, grow to gigabytes. A message larger than the byte bound is let in when the buffer is
    empty, so that it cannot wait forever. A bound of 0 or less means none (as in ``queue.Queue``).
    """

    def __init__(self, max_messages: int, max_bytes: int) -> None:
        self._items: deque[RawMessage] = deque()
        self._bytes = 0
        self._max_messages = max_messages if max_messages > 0 else 1 << 62
        self._max_bytes = max_bytes if max_bytes > 0 else 1 << 62
        lock = threading.Lock()
        self._not_empty = threading.Condition(lock)
        self._not_full = threading.Condition(lock)

    def __len__(self) -> int:
        return len(self._items)

    def _has_room(self, size: int) -> bool:
        if not self._items:
            return True
        return len(self._items) < self._max_messages and self._bytes + size <= self._max_bytes

    def put(self, message: RawMessage, timeout: float) -> bool:
        """Append ``message`` if there is room within ``timeout`` seconds (0: no waiting)."""
        size = len(message.payload)
        with self._not_full:
            if not self._has_room(size):
                if timeout <= 0:
                    return False
                deadline = time.monotonic() + timeout
                while not self._has_room(size):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._not_full.wait(remaining)
            self._items.append(message)
            self._bytes += size
            self._not_empty.notify()
        return True

    def take(
        self, max_messages: int, max_bytes: int, first_wait: float, linger: float
    ) -> list[RawMessage]:
        """Wait up to ``first_wait`` for a message, then up to ``linger`` more to fill a batch."""
        max_messages = max(1, max_messages)
        max_bytes = max_bytes if max_bytes > 0 else 1 << 62
        batch: list[RawMessage] = []
        size = 0
        items = self._items
        with self._not_empty:
            if not items and not self._not_empty.wait(first_wait):
                return batch
            deadline = time.monotonic() + linger
            while True:
                taken = 0
                while items and len(batch) < max_messages and (not batch or size < max_bytes):
                    message = items.popleft()
                    batch.append(message)
                    length = len(message.payload)
                    size += length
                    taken += length
                if batch:
                    self._bytes -= taken
                    self._not_full.notify_all()
                if len(batch) >= max_messages or size >= max_bytes:
                    return batch
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return batch
                self._not_empty.wait(remaining)


class _Stopped(Exception):
    """Raised inside the worker to abandon an unpersisted batch at shutdown (it stays unacked)."""


def _dead_letters_of(
    message: RawMessage,
    spec: DeviceSpec | None,
    rejections: list[Rejection],
    received_at: datetime,
) -> list[DeadLetterRecord]:
    """One dead letter per reason per message, carrying the raw payload and every detail."""
    by_reason: dict[str, list[str]] = {}
    for rejection in rejections:
        by_reason.setdefault(rejection.reason.value, []).append(rejection.detail)
    return [
        DeadLetterRecord(
            received_at=received_at,
            enterprise_id=spec.enterprise_id if spec else None,
            device_id=message.device_id,
            source=message.source,
            topic=message.topic,
            reason=reason,
            detail="; ".join(details)[:4000],
            payload=message.payload,
        )
        for reason, details in by_reason.items()
    ]
