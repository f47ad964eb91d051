"""Ingest counters, exported at /metrics; one registry per application, never a global one."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.messages = Counter("cb_ingest_messages", "Messages received", ["source"], registry=r)
        self.points_stored = Counter("cb_ingest_points_stored", "New points stored", registry=r)
        self.points_duplicate = Counter(
            "cb_ingest_points_duplicate", "Points already stored (redelivery)", registry=r
        )
        self.dead_letters = Counter(
            "cb_ingest_dead_letters", "Rejected inputs by reason", ["reason"], registry=r
        )
        self.dropped = Counter(
            "cb_ingest_dropped",
            "Messages shed because the queue stayed full",
            ["source"],
            registry=r,
        )
        self.store_errors = Counter("cb_ingest_store_errors", "Failed store writes", registry=r)
        self.spooled_points = Counter(
            "cb_ingest_spooled_points", "Points written to the on-disk spool", registry=r
        )
        self.queue_depth = Gauge("cb_ingest_queue_depth", "Messages waiting", registry=r)
        self.spool_bytes = Gauge("cb_ingest_spool_bytes", "Bytes in the on-disk spool", registry=r)
        self.batch_seconds = Gauge(
            "cb_ingest_last_batch_seconds", "Duration of the last batch", registry=r
        )
