"""The ingest pipeline: bounded queue → batch decode and validate → store (or spool) → ack.

One path in for every source (MQTT, HTTP, gateways). Messages are acknowledged through their
``on_done`` callback only after their points are committed to the store or fsynced to the spool,
so a crash anywhere before that makes the broker redeliver, and idempotent writes make the
redelivery harmless: every point is stored exactly once.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

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


class DeviceDirectory(Protocol):
    def lookup(self, device_id: str) -> DeviceSpec | None: ...

    def touch(self, device_ids: Iterable[str], at: datetime) -> None: ...

    def flush_last_seen(self) -> int: ...


class DeadLetterSink(Protocol):
    def write(self, records: Sequence[DeadLetterRecord]) -> None: ...


@dataclass(frozen=True, slots=True)
class PipelineConfig:
    queue_size: int = 20_000
    batch_messages: int = 2_000
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
        self._queue: queue.Queue[RawMessage] = queue.Queue(maxsize=config.queue_size)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._retry_at = 0.0
        self._retry_delay = config.retry_min_s
        self._last_seen_flush = 0.0
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

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize()

    @property
    def spool(self) -> Spool:
        return self._spool

    # --- input -----------------------------------------------------------------------------------

    def submit(self, message: RawMessage, timeout: float | None = None) -> bool:
        """Queue a message; wait up to ``timeout`` for room (None: until room or stop).

        Returns False when the message was shed (counted); callers that can be redelivered
        (QoS 1) simply do not acknowledge it.
        """
        self.metrics.messages.labels(message.source).inc()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = 0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))
            try:
                self._queue.put(message, timeout=wait)
                return True
            except queue.Full:
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
        while not (self._stopping.is_set() and self._queue.empty()):
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
        try:
            first = self._queue.get(timeout=0.2)
        except queue.Empty:
            return []
        batch = [first]
        deadline = time.monotonic() + self._config.batch_wait_s
        while len(batch) < self._config.batch_messages:
            remaining = deadline - time.monotonic()
            try:
                batch.append(
                    self._queue.get(timeout=remaining)
                    if remaining > 0
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                break
        self.metrics.queue_depth.set(self._queue.qsize())
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
        for message in batch:
            spec = self._directory.lookup(message.device_id)
            before = len(columns)
            rejections = decode_message(
                message.payload, spec, message.device_id, now_us, columns, self._config.limits
            )
            outcome = MessageOutcome(len(columns) - before, rejections)
            outcomes.append(outcome)
            if outcome.points:
                seen.add(message.device_id)
            if rejections:
                records.extend(_dead_letters_of(message, spec, rejections, received_at))
        if len(columns):
            self._persist(columns.to_table())
        self._write_dead_letters(records)
        self._directory.touch(seen, received_at)
        for message, outcome in zip(batch, outcomes, strict=True):
            if message.on_done is not None:
                message.on_done(outcome)
        self.metrics.batch_seconds.set(time.perf_counter() - started)

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
