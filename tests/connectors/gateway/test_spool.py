"""The gateway spool keeps messages in order across restarts, confirms them, and drops the oldest
(counted) when full."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clusterbrain.connectors.gateway.spool import GatewaySpool, SpoolFull


def _messages(n: int, start: int = 0, size: int = 20) -> list[tuple[str, bytes]]:
    return [
        (f"cb/v1/gw/gateway/d{i % 3}/telemetry", b"x" * size + str(i).encode())
        for i in range(start, start + n)
    ]


def test_messages_come_back_in_order_and_confirmed_ones_are_not_read_again(tmp_path: Path) -> None:
    spool = GatewaySpool(tmp_path, max_bytes=1 << 20, segment_bytes=2048)
    assert spool.append(_messages(100)) == 100
    read = spool.read(0, 1000)
    assert [m.seq for m in read] == list(range(100))
    assert [(m.topic, m.payload) for m in read] == _messages(100)
    spool.confirm(60)
    assert spool.pending == 40
    assert [m.seq for m in spool.read(spool.cursor, 15)] == list(range(60, 75))
    assert len(list(tmp_path.glob("*.seg"))) < 5  # spent segments are deleted


def test_after_a_restart_unconfirmed_messages_are_read_again(tmp_path: Path) -> None:
    spool = GatewaySpool(tmp_path, max_bytes=1 << 20, segment_bytes=4096)
    spool.append(_messages(50))
    spool.confirm(20)
    spool.close()
    again = GatewaySpool(tmp_path, max_bytes=1 << 20, segment_bytes=4096)
    assert again.cursor == 20 and again.pending == 30
    assert [m.seq for m in again.read(again.cursor, 100)] == list(range(20, 50))
    assert again.append(_messages(5, 50)) == 55
    assert again.read(50, 10)[0].payload == _messages(1, 50)[0][1]


def test_a_record_torn_by_a_crash_is_cut_off(tmp_path: Path) -> None:
    spool = GatewaySpool(tmp_path, max_bytes=1 << 20)
    spool.append(_messages(10))
    spool.close()
    segment = next(tmp_path.glob("*.seg"))
    data = segment.read_bytes()
    segment.write_bytes(data[:-7])  # the last record half-written
    again = GatewaySpool(tmp_path, max_bytes=1 << 20)
    assert again.pending == 9
    assert [m.payload for m in again.read(0, 20)] == [p for _, p in _messages(9)]
    again.append(_messages(1, 9))
    assert [m.seq for m in again.read(0, 20)] == list(range(10))


def test_a_full_spool_drops_the_oldest_messages_and_counts_them(tmp_path: Path) -> None:
    spool = GatewaySpool(tmp_path, max_bytes=8192, segment_bytes=2048)
    spool.append(_messages(2000))
    assert spool.size_bytes <= 8192
    assert spool.dropped > 0
    kept = spool.read(spool.cursor, 10_000)
    assert kept[-1].seq == 1999
    assert [m.seq for m in kept] == list(range(kept[0].seq, 2000))  # newest kept, in order
    assert spool.dropped + len(kept) == 2000  # every message is either kept or counted


def test_a_message_larger_than_the_spool_is_refused(tmp_path: Path) -> None:
    spool = GatewaySpool(tmp_path, max_bytes=4096)
    with pytest.raises(SpoolFull):
        spool.append([("t", b"x" * 5000)])


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 40), st.integers(0, 40), st.booleans()), min_size=1, max_size=15
    )
)
def test_any_interleaving_of_writes_confirms_and_restarts_keeps_every_unconfirmed_message(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[int, int, bool]]
) -> None:
    folder = tmp_path_factory.mktemp("spool")
    spool = GatewaySpool(folder, max_bytes=1 << 20, segment_bytes=1024)
    written = 0
    for count, confirm, restart in steps:
        spool.append(_messages(count, written))
        written += count
        spool.confirm(min(written, spool.cursor + confirm))
        if restart:
            spool.close()
            spool = GatewaySpool(folder, max_bytes=1 << 20, segment_bytes=1024)
    expected = [p for _, p in _messages(written)][spool.cursor :]
    assert [m.payload for m in spool.read(spool.cursor, 10_000)] == expected
