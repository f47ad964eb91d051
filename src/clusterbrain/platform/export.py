"""CSV and Excel export of tables of any length, streamed in chunks (pure writers, no I/O).

Rows come from a generator, so a year of raw telemetry never sits in memory: CSV is yielded
chunk by chunk; Excel (xlsxwriter's constant-memory mode) writes row by row to a temporary file
that the caller streams. One sheet holds at most 1,048,576 rows; longer exports continue on
further sheets.
"""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import xlsxwriter

XLSX_MAX_ROWS = 1_048_576
CSV_CHUNK_ROWS = 5_000
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _cell(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    return "" if value is None else value


def csv_chunks(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[bytes]:
    """UTF-8 CSV with a BOM (so that Excel shows Chinese text right), in chunks.

    >>> b"".join(csv_chunks(["tag", "value"], [("温度", 1.5)])).decode("utf-8-sig").splitlines()
    ['tag,value', '温度,1.5']
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    yield "\ufeff".encode() + buffer.getvalue().encode()
    buffer.seek(0)
    buffer.truncate()
    for count, row in enumerate(rows, start=1):
        writer.writerow([_cell(v) for v in row])
        if count % CSV_CHUNK_ROWS == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode()


def write_xlsx(path: Path, sheet: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Write rows to an .xlsx file in constant memory; returns the number of data rows."""
    book = xlsxwriter.Workbook(str(path), {"constant_memory": True, "remove_timezone": True})
    bold = book.add_format({"bold": True})
    stamp = book.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
    written = 0
    worksheet, line = None, XLSX_MAX_ROWS
    for row in rows:
        if line >= XLSX_MAX_ROWS:
            worksheet = book.add_worksheet(f"{sheet[:25]}{'' if written == 0 else written}")
            worksheet.write_row(0, 0, list(header), bold)
            line = 1
        assert worksheet is not None
        for column, value in enumerate(row):
            if isinstance(value, datetime):
                worksheet.write_datetime(line, column, value, stamp)
            else:
                worksheet.write(line, column, _cell(value))
        line += 1
        written += 1
    if worksheet is None:
        book.add_worksheet(sheet[:31]).write_row(0, 0, list(header), bold)
    book.close()
    return written


def streamed_export(
    fmt: str, filename: str, header: Sequence[str], rows: Iterable[Sequence[Any]], tmp_dir: Path
) -> tuple[Iterator[bytes], str, dict[str, str]]:
    """(body chunks, media type, headers) of a CSV or Excel download."""
    if fmt == "csv":
        disposition = {"Content-Disposition": f'attachment; filename="{filename}.csv"'}
        return csv_chunks(header, rows), "text/csv; charset=utf-8", disposition
    tmp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=tmp_dir, suffix=".xlsx", delete=False) as handle:
        path = Path(handle.name)
    write_xlsx(path, filename[:31], header, rows)
    disposition = {"Content-Disposition": f'attachment; filename="{filename}.xlsx"'}
    return _file_chunks(path), XLSX_MEDIA_TYPE, disposition


def _file_chunks(path: Path, size: int = 1 << 20) -> Iterator[bytes]:
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(size):
                yield chunk
    finally:
        path.unlink(missing_ok=True)
