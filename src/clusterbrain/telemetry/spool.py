"""Bounded on-disk spool of point batches for when the store is unreachable.

Each batch is one Arrow IPC file, fsynced before the messages it holds are acknowledged, so that a
crash loses nothing. Files replay oldest first. When the spool is full, :meth:`Spool.append`
refuses and the caller stops acknowledging, which pushes back on the broker instead of losing data.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc


class Spool:
    def __init__(self, folder: Path, max_bytes: int) -> None:
        self._folder = folder
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        folder.mkdir(parents=True, exist_ok=True)
        for leftover in folder.glob("*.tmp"):
            leftover.unlink()
        self._next = max((int(p.stem) for p in self._files()), default=0) + 1

    def _files(self) -> list[Path]:
        return sorted(self._folder.glob("*.arrow"), key=lambda p: int(p.stem))

    @property
    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self._files())

    def __len__(self) -> int:
        return len(self._files())

    def append(self, batch: pa.Table) -> bool:
        """Persist a batch; False when the spool is full."""
        with self._lock:
            if self.size_bytes + batch.nbytes > self._max_bytes:
                return False
            seq, self._next = self._next, self._next + 1
        final = self._folder / f"{seq:012d}.arrow"
        temporary = final.with_suffix(".tmp")
        with pa.OSFile(str(temporary), "wb") as sink, ipc.new_file(sink, batch.schema) as writer:
            writer.write_table(batch)
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        temporary.rename(final)
        return True

    def oldest(self) -> tuple[Path, pa.Table] | None:
        files = self._files()
        if not files:
            return None
        with pa.memory_map(str(files[0]), "r") as source:
            return files[0], ipc.open_file(source).read_all()

    def remove(self, path: Path) -> None:
        path.unlink(missing_ok=True)
