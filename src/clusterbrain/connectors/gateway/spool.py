"""The gateway's store-and-forward spool: every uplink message is written here before it is sent.

Messages (topic and payload) are appended to segment files on disk and read back in order by the
uplink, which confirms them once the broker acknowledges (QoS 1). Confirmed messages are never
sent again; unconfirmed ones are sent again after a reconnect or a restart of the gateway, and the
platform's idempotent writes on (device, tag, ts) make that redelivery harmless. So nothing read
from the field is lost while the uplink is down, up to the size limit: when the spool would
exceed it, the oldest segment is deleted and its messages are counted as dropped.

Format: a segment ``<first seq>.seg`` holds records ``u32 length | u16 topic length | topic |
payload``. ``cursor`` holds the sequence number of the first message not yet confirmed. A torn
record at the end of the newest segment (a crash mid-write) is cut off when the spool opens.
"""

from __future__ import annotations

import os
import struct
import threading
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

_HEADER = struct.Struct("<IH")
SEGMENT_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Message:
    seq: int
    topic: str
    payload: bytes


@dataclass(slots=True)
class _Segment:
    first: int
    path: Path
    size: int = 0
    offsets: array[int] = field(default_factory=lambda: array("Q"))
    """Where each record starts, so a read seeks instead of scanning the file."""

    @property
    def count(self) -> int:
        return len(self.offsets)

    @property
    def end(self) -> int:
        return self.first + len(self.offsets)


class SpoolFull(Exception):
    """A single message larger than the whole spool."""


class GatewaySpool:
    """Bounded, ordered, crash-safe message log with a confirmation cursor. Thread-safe."""

    def __init__(
        self, folder: Path, max_bytes: int, segment_bytes: int = SEGMENT_BYTES, fsync: bool = False
    ) -> None:
        if max_bytes < 2 * 1024:
            raise ValueError("the spool needs at least 2 KiB")
        self._folder = folder
        self._max_bytes = max_bytes
        self._segment_bytes = max(1024, min(segment_bytes, max_bytes // 2))
        self._fsync = fsync
        self._lock = threading.Lock()
        self.dropped = 0
        """Messages deleted unsent because the spool was full (since this process started)."""
        folder.mkdir(parents=True, exist_ok=True)
        self._segments = [self._open_segment(p) for p in self._segment_files()]
        cursor = self._read_cursor()
        self._next = self._segments[-1].end if self._segments else cursor
        self._cursor = min(max(cursor, self.first_seq), self._next)
        self._handle = open(self._segments[-1].path, "ab") if self._segments else None  # noqa: SIM115

    # --- facts ----------------------------------------------------------------------------------

    @property
    def first_seq(self) -> int:
        """The oldest message kept (confirmed ones may still be kept until their segment ends)."""
        return self._segments[0].first if self._segments else self._next

    @property
    def size_bytes(self) -> int:
        return sum(s.size for s in self._segments)

    @property
    def pending(self) -> int:
        """Messages written but not yet confirmed."""
        with self._lock:
            return self._next - self._cursor

    @property
    def cursor(self) -> int:
        return self._cursor

    # --- writing --------------------------------------------------------------------------------

    def append(self, messages: Iterable[tuple[str, bytes]]) -> int:
        """Write messages at the end; returns the sequence number after the last one."""
        with self._lock:
            for topic, payload in messages:
                self._append_one(topic, payload)
            if self._handle is not None:
                self._handle.flush()
                if self._fsync:
                    os.fsync(self._handle.fileno())
            return self._next

    def _append_one(self, topic: str, payload: bytes) -> None:
        encoded = topic.encode()
        record = _HEADER.pack(len(encoded) + len(payload), len(encoded)) + encoded + payload
        if len(record) > self._max_bytes // 2:
            raise SpoolFull(f"a message of {len(record)} bytes does not fit a spool segment")
        if not self._segments or self._segments[-1].size + len(record) > self._segment_bytes:
            self._start_segment()
        while self.size_bytes + len(record) > self._max_bytes and len(self._segments) > 1:
            self._drop_oldest()
        assert self._handle is not None
        self._handle.write(record)
        segment = self._segments[-1]
        segment.offsets.append(segment.size)
        segment.size += len(record)
        self._next += 1

    def _start_segment(self) -> None:
        if self._handle is not None:
            self._handle.close()
        path = self._folder / f"{self._next:016d}.seg"
        self._segments.append(_Segment(self._next, path))
        self._handle = open(path, "ab")  # noqa: SIM115

    def _drop_oldest(self) -> None:
        oldest = self._segments.pop(0)
        self.dropped += max(0, oldest.end - max(self._cursor, oldest.first))
        self._cursor = max(self._cursor, oldest.end)
        oldest.path.unlink(missing_ok=True)
        self._write_cursor()

    # --- reading and confirming -----------------------------------------------------------------

    def read(self, start: int, limit: int) -> list[Message]:
        """Up to ``limit`` messages from sequence number ``start`` on (or the oldest kept)."""
        with self._lock:
            start = max(start, self.first_seq)
            if self._handle is not None:
                self._handle.flush()
            found: list[Message] = []
            for segment in self._segments:
                if segment.end <= start or len(found) >= limit:
                    continue
                first = start - segment.first if start > segment.first else 0
                last = min(segment.count, first + limit - len(found))
                found.extend(self._records(segment, first, last))
            return found

    def confirm(self, through: int) -> None:
        """Every message before ``through`` was acknowledged by the broker; delete spent segments."""
        with self._lock:
            if through <= self._cursor:
                return
            self._cursor = min(through, self._next)
            while len(self._segments) > 1 and self._segments[0].end <= self._cursor:
                self._segments.pop(0).path.unlink(missing_ok=True)
            self._write_cursor()

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None
            self._write_cursor()

    # --- files ----------------------------------------------------------------------------------

    def _segment_files(self) -> list[Path]:
        return sorted(self._folder.glob("*.seg"), key=lambda p: int(p.stem))

    def _open_segment(self, path: Path) -> _Segment:
        """Count the whole records of a segment; cut a torn one at its end."""
        data = path.read_bytes()
        segment = _Segment(int(path.stem), path)
        offset = 0
        while offset + _HEADER.size <= len(data):
            length, _ = _HEADER.unpack_from(data, offset)
            if offset + _HEADER.size + length > len(data):
                break
            segment.offsets.append(offset)
            offset += _HEADER.size + length
        if offset < len(data):
            with open(path, "r+b") as handle:
                handle.truncate(offset)
        segment.size = offset
        return segment

    def _records(self, segment: _Segment, first: int, last: int) -> list[Message]:
        """Records ``first`` (inclusive) to ``last`` (exclusive) of a segment."""
        if first >= last:
            return []
        start = segment.offsets[first]
        stop = segment.offsets[last] if last < segment.count else segment.size
        with open(segment.path, "rb") as handle:
            handle.seek(start)
            data = handle.read(stop - start)
        out, offset = [], 0
        for seq in range(segment.first + first, segment.first + last):
            length, topic_length = _HEADER.unpack_from(data, offset)
            body = offset + _HEADER.size
            topic = data[body : body + topic_length].decode()
            out.append(Message(seq, topic, data[body + topic_length : body + length]))
            offset = body + length
        return out

    def _read_cursor(self) -> int:
        try:
            return int((self._folder / "cursor").read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def _write_cursor(self) -> None:
        temporary = self._folder / "cursor.tmp"
        temporary.write_text(str(self._cursor))
        temporary.replace(self._folder / "cursor")
