"""Routes of telemetry reads (latest, range) and dead letters."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from clusterbrain.devices.service import get_device
from clusterbrain.platform.errors import InvalidInput
from clusterbrain.platform.export import streamed_export
from clusterbrain.platform.web import PrincipalDep, SessionDep, checked_range
from clusterbrain.telemetry import dead_letters, schemas
from clusterbrain.telemetry.export import POINT_EXPORT_COLUMNS, point_rows
from clusterbrain.telemetry.models import DeadLetter
from clusterbrain.telemetry.store import DERIVED_PREFIX, Aggregate, TelemetryStore, rollup_level_for

router = APIRouter(prefix="/api/v1")
MAX_RAW_POINTS = 100_000
BUCKET_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def get_store(request: Request) -> TelemetryStore:
    store: TelemetryStore = request.app.state.store
    return store


StoreDep = Annotated[TelemetryStore, Depends(get_store)]


def parse_bucket(text: str | None) -> timedelta | None:
    """``"5m"`` → 5 minutes; None or empty → no bucketing.

    >>> parse_bucket("5m"), parse_bucket("1d"), parse_bucket(None)
    (datetime.timedelta(seconds=300), datetime.timedelta(days=1), None)
    """
    if not text:
        return None
    match = re.fullmatch(r"(\d{1,6})([smhd])", text)
    if match is None or int(match.group(1)) == 0:
        raise InvalidInput("bucket must look like 10s, 5m, 1h or 1d", field="bucket")
    return timedelta(seconds=int(match.group(1)) * BUCKET_UNITS[match.group(2)])


@router.get(
    "/devices/{device_id}/telemetry/latest",
    tags=["telemetry"],
    response_model=list[schemas.LatestOut],
)
def latest(
    device_id: str,
    session: SessionDep,
    principal: PrincipalDep,
    store: StoreDep,
    tag: Annotated[list[str] | None, Query()] = None,
) -> list[schemas.LatestOut]:
    """The newest value of each of the device's tags (or of the tags asked for). Series the
    platform derives (``$state``, ``$good``, …) are listed only when asked for by name."""
    device = get_device(session, principal, device_id)
    return [
        schemas.LatestOut(tag=v.tag, ts=v.ts, value=v.value, text=v.text, quality=v.quality)
        for v in store.latest(device.id, tag or None)
        if tag or not v.tag.startswith(DERIVED_PREFIX)
    ]


@router.get(
    "/devices/{device_id}/telemetry/range", tags=["telemetry"], response_model=schemas.RangeOut
)
def range_query(
    device_id: str,
    session: SessionDep,
    principal: PrincipalDep,
    store: StoreDep,
    tag: Annotated[list[str], Query(min_length=1)],
    start: Annotated[datetime, Query(alias="from")],
    end: Annotated[datetime, Query(alias="to")],
    bucket: Annotated[str | None, Query(description="10s, 5m, 1h, 1d; omit for raw")] = None,
    agg: Aggregate = Aggregate.AVG,
) -> schemas.RangeOut:
    device = get_device(session, principal, device_id)
    start, end = checked_range(start, end)
    step = parse_bucket(bucket)
    table = store.query_range(device.id, tag, start, end, step, agg)
    truncated = step is None and table.num_rows > MAX_RAW_POINTS
    if truncated:
        table = table.slice(0, MAX_RAW_POINTS)
    return schemas.RangeOut(
        device_id=device.id,
        start=start,
        end=end,
        bucket_seconds=int(step.total_seconds()) if step else None,
        aggregate=agg,
        source=rollup_level_for(step),
        truncated=truncated,
        series=_series_of(table.to_pydict(), tag),
    )


def _series_of(columns: dict[str, list[object]], tags: list[str]) -> list[schemas.SeriesOut]:
    by_tag: dict[str, schemas.SeriesOut] = {
        t: schemas.SeriesOut(tag=t, ts=[], values=[]) for t in tags
    }
    for tag, ts, value in zip(columns["tag"], columns["ts"], columns["value"], strict=True):
        series = by_tag.get(str(tag))
        if series is not None:
            series.ts.append(ts)  # type: ignore[arg-type]
            series.values.append(value)  # type: ignore[arg-type]
    return list(by_tag.values())


@router.get("/devices/{device_id}/telemetry/export", tags=["telemetry"])
def export_telemetry(
    device_id: str,
    request: Request,
    session: SessionDep,
    principal: PrincipalDep,
    store: StoreDep,
    tag: Annotated[list[str], Query(min_length=1)],
    start: Annotated[datetime, Query(alias="from")],
    end: Annotated[datetime, Query(alias="to")],
    format: Annotated[str, Query(pattern="^(csv|xlsx)$")] = "csv",
) -> StreamingResponse:
    """Raw points of any range as CSV or Excel, streamed (never loaded whole)."""
    device = get_device(session, principal, device_id)
    start, end = checked_range(start, end)
    rows = point_rows(store, device.id, tag, start, end)
    tmp = request.app.state.settings.var_dir / "exports"
    body, media, headers = streamed_export(
        format, f"{device.id}-telemetry", POINT_EXPORT_COLUMNS, rows, tmp
    )
    return StreamingResponse(body, media_type=media, headers=headers)


def _dead_letter_out(row: DeadLetter) -> schemas.DeadLetterOut:
    return schemas.DeadLetterOut(
        id=row.id,
        received_at=row.received_at,
        enterprise_id=row.enterprise_id,
        device_id=row.device_id,
        source=row.source,
        topic=row.topic,
        reason=row.reason,
        detail=row.detail,
        payload_size=row.payload_size,
        payload_text=row.payload[:4096].decode("utf-8", errors="replace"),
    )


@router.get("/dead-letters", tags=["telemetry"], response_model=list[schemas.DeadLetterOut])
def list_dead_letters(
    session: SessionDep,
    principal: PrincipalDep,
    device_id: str | None = None,
    reason: str | None = None,
    before_id: int | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[schemas.DeadLetterOut]:
    rows = dead_letters.list_dead_letters(
        session, principal, device_id=device_id, reason=reason, limit=limit, before_id=before_id
    )
    return [_dead_letter_out(r) for r in rows]


@router.get(
    "/dead-letters/{dead_letter_id}", tags=["telemetry"], response_model=schemas.DeadLetterOut
)
def get_dead_letter(
    dead_letter_id: int, session: SessionDep, principal: PrincipalDep
) -> schemas.DeadLetterOut:
    return _dead_letter_out(dead_letters.get_dead_letter(session, principal, dead_letter_id))
