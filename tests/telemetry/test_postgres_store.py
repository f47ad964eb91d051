"""PostgreSQL-specific behaviour: lazy connects, unreachable servers, several writer processes."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from clusterbrain.telemetry.postgres.store import PostgresStore
from clusterbrain.telemetry.store import POINT_SCHEMA, Aggregate, StoreUnavailable
from support.services import free_port

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def numeric_batch(device: str, offsets: list[int], value: float) -> pa.Table:
    n = len(offsets)
    return pa.table(
        {
            "device_id": [device] * n,
            "tag": [f"t{o % 3}" for o in offsets],
            "ts": [T0 + timedelta(milliseconds=o) for o in offsets],
            "value": [value + o for o in offsets],
            "text": pa.nulls(n, pa.string()),
            "quality": pa.array([0] * n, pa.int16()),
        },
        schema=POINT_SCHEMA,
    )


def test_unreachable_server_raises_store_unavailable_and_construction_does_not() -> None:
    store = PostgresStore(f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere")
    with pytest.raises(StoreUnavailable):
        store.ping()
    with pytest.raises(StoreUnavailable):
        store.write(numeric_batch("d1", [0], 1.0))
    with pytest.raises(StoreUnavailable):
        store.latest("d1")
    store.close()


@pytest.mark.postgres
def test_concurrent_writers_sharing_a_database_count_each_point_once(postgres_url: str) -> None:
    """Ingest workers on a shared subscription may both receive a redelivered message."""
    offsets = list(range(20_000))
    writers = [PostgresStore(postgres_url) for _ in range(2)]
    errors: list[BaseException] = []

    def run(store: PostgresStore, seed: int) -> None:
        mine = offsets[:]
        random.Random(seed).shuffle(mine)
        try:
            for i in range(0, len(mine), 2_000):
                chunk = numeric_batch("d1", mine[i : i + 2_000], 0.0)
                for _attempt in range(5):
                    try:
                        store.write(chunk)
                        break
                    except StoreUnavailable:  # e.g. a deadlock victim: the retry is idempotent
                        continue
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w, i)) for i, w in enumerate(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    reader = writers[0]
    end = T0 + timedelta(hours=1)
    counts = reader.query_range("d1", ["t0", "t1", "t2"], T0, end, timedelta(hours=1), "count")
    assert sum(counts.column("value").to_pylist()) == len(offsets)
    sums = reader.query_range("d1", ["t0"], T0, end, timedelta(minutes=1), Aggregate.MAX)
    assert max(sums.column("value").to_pylist()) == max(o for o in offsets if o % 3 == 0)
    for store in writers:
        store.close()
