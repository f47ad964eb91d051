"""API schemas of telemetry reads and dead letters."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from clusterbrain.telemetry.store import Aggregate, RollupLevel


class LatestOut(BaseModel):
    tag: str
    ts: datetime
    value: float | None
    text: str | None
    quality: int


class SeriesOut(BaseModel):
    tag: str
    ts: list[datetime]
    values: list[float | None]


class RangeOut(BaseModel):
    device_id: str
    start: datetime
    end: datetime
    bucket_seconds: int | None
    aggregate: Aggregate
    source: RollupLevel
    truncated: bool
    series: list[SeriesOut]


class DeadLetterOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    received_at: datetime
    enterprise_id: int | None
    device_id: str
    source: str
    topic: str
    reason: str
    detail: str
    payload_size: int
    payload_text: str


class IngestResult(BaseModel):
    accepted_points: int
    rejected: list[dict[str, str]]
