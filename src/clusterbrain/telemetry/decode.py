"""Decoding and validating telemetry payloads: pure functions, no I/O.

Payload (DESIGN.md §4), JSON::

    {"ts": "2026-11-25T02:40:00.123456Z", "values": {"cycle_time": 21.3, "state": "running"}}

or a list of such objects. ``ts`` is ISO 8601 (naive means UTC) or epoch milliseconds; without
``ts`` the receive time is used. A source that knows the quality of its values (a gateway reading
OPC UA status codes, a failed Modbus read) adds ``"quality": {"<tag>": "uncertain" | "bad"}``;
a tag marked bad may carry ``null`` (no value could be read). A message-level fault (bad JSON, unknown device, ...) rejects the
whole message; a sample-level fault (unknown tag, wrong type, future timestamp) rejects only those
values, and the rest is stored. Every rejected value ends in a dead letter with its reason.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pyarrow as pa

from clusterbrain.devices.spec import DeviceSpec, TagKind, TagRule
from clusterbrain.telemetry.store import POINT_SCHEMA, Quality

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EARLIEST_US = (datetime(2000, 1, 1, tzinfo=UTC) - EPOCH) // timedelta(microseconds=1)
MAX_SAMPLES_PER_MESSAGE = 10_000
MAX_TEXT_LENGTH = 1_000
GOOD = int(Quality.GOOD)
UNCERTAIN = int(Quality.UNCERTAIN)


class Reason(enum.StrEnum):
    """Why input went to dead letters."""

    OVERSIZED = "oversized_payload"
    MALFORMED_JSON = "malformed_json"
    BAD_STRUCTURE = "bad_structure"
    UNKNOWN_DEVICE = "unknown_device"
    REVOKED_DEVICE = "revoked_device"
    NOT_BEHIND_GATEWAY = "not_behind_gateway"
    UNKNOWN_TAG = "unknown_tag"
    WRONG_TYPE = "wrong_type"
    BAD_TIMESTAMP = "bad_timestamp"
    FUTURE_TIMESTAMP = "future_timestamp"


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: Reason
    detail: str
    values: int = 0  # how many values it rejected (0 for a whole message of unknown size)


@dataclass(slots=True)
class PointColumns:
    """Column buffers for one Arrow batch; appending to lists beats building rows."""

    device_id: list[str] = field(default_factory=list)
    tag: list[str] = field(default_factory=list)
    ts: list[int] = field(default_factory=list)
    value: list[float | None] = field(default_factory=list)
    text: list[str | None] = field(default_factory=list)
    quality: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ts)

    def append(
        self, device_id: str, tag: str, ts_us: int, value: float | None, text: str | None, q: int
    ) -> None:
        self.device_id.append(device_id)
        self.tag.append(tag)
        self.ts.append(ts_us)
        self.value.append(value)
        self.text.append(text)
        self.quality.append(q)

    def extend(
        self,
        device_id: str,
        tag: str,
        ts_us: list[int],
        values: list[float] | None = None,
        texts: list[str] | None = None,
    ) -> None:
        """Many points of one series at once: numbers, or texts, quality good."""
        n = len(ts_us)
        self.device_id.extend([device_id] * n)
        self.tag.extend([tag] * n)
        self.ts.extend(ts_us)
        self.value.extend(values if values is not None else [None] * n)
        self.text.extend(texts if texts is not None else [None] * n)
        self.quality.extend([0] * n)

    def to_table(self) -> pa.Table:
        return pa.Table.from_arrays(
            [
                pa.array(self.device_id, pa.string()),
                pa.array(self.tag, pa.string()),
                pa.array(self.ts, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
                pa.array(self.value, pa.float64()),
                pa.array(self.text, pa.string()),
                pa.array(self.quality, pa.int16()),
            ],
            schema=POINT_SCHEMA,
        )


@dataclass(frozen=True, slots=True)
class Limits:
    max_payload_bytes: int = 256 * 1024
    max_future_us: int = 300_000_000


def decode_message(
    payload: bytes,
    spec: DeviceSpec | None,
    device_id: str,
    now_us: int,
    out: PointColumns,
    limits: Limits = Limits(),
    via: str = "",
) -> list[Rejection]:
    """Append the valid points of one message to ``out``; return what was rejected and why.

    ``via`` is the gateway whose topic the message came on: the device must be bound to it.
    """
    if len(payload) > limits.max_payload_bytes:
        return [Rejection(Reason.OVERSIZED, f"{len(payload)} bytes > {limits.max_payload_bytes}")]
    if spec is None:
        return [Rejection(Reason.UNKNOWN_DEVICE, f"no device {device_id!r} is registered")]
    if not spec.active:
        return [Rejection(Reason.REVOKED_DEVICE, f"device {device_id!r} is revoked")]
    if via and spec.gateway_id != via:
        detail = f"device {device_id!r} is not bound to gateway {via!r}"
        return [Rejection(Reason.NOT_BEHIND_GATEWAY, detail)]
    try:
        document = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        return [Rejection(Reason.MALFORMED_JSON, str(exc)[:300])]
    samples, problem = _samples_of(document)
    if problem:
        return [Rejection(Reason.BAD_STRUCTURE, problem)]
    rejections: list[Rejection] = []
    for index, sample in enumerate(samples):
        _decode_sample(sample, index, spec, now_us, limits, out, rejections)
    return rejections


def _samples_of(document: Any) -> tuple[list[Mapping[str, Any]], str]:
    if isinstance(document, dict):
        document = [document]
    if not isinstance(document, list) or not document:
        return [], "payload must be an object or a non-empty list of objects"
    if len(document) > MAX_SAMPLES_PER_MESSAGE:
        return [], f"more than {MAX_SAMPLES_PER_MESSAGE} samples in one message"
    for index, sample in enumerate(document):
        if not isinstance(sample, dict):
            return [], f"sample [{index}] is not an object"
        values = sample.get("values")
        if not isinstance(values, dict) or not values:
            return [], f"sample [{index}] has no 'values' object"
    return document, ""


def _decode_sample(
    sample: Mapping[str, Any],
    index: int,
    spec: DeviceSpec,
    now_us: int,
    limits: Limits,
    out: PointColumns,
    rejections: list[Rejection],
) -> None:
    values: Mapping[str, Any] = sample["values"]
    ts_us, ts_problem = parse_timestamp(sample.get("ts"), now_us)
    if ts_problem:
        rejections.append(Rejection(Reason.BAD_TIMESTAMP, f"[{index}] {ts_problem}", len(values)))
        return
    if ts_us > now_us + limits.max_future_us:
        ahead = (ts_us - now_us) / 1e6
        detail = f"[{index}] timestamp is {ahead:.0f} s in the future"
        rejections.append(Rejection(Reason.FUTURE_TIMESTAMP, detail, len(values)))
        return
    marks = sample.get("quality")
    if marks is not None:
        _decode_marked_sample(values, marks, index, ts_us, spec, out, rejections)
        return
    # The hot loop of ingest: numbers for numeric tags are checked inline (what convert_value
    # does, without its calls); the sample's device and timestamp are added once per sample.
    rules = spec.tags
    tags, numbers, texts, qualities = out.tag, out.value, out.text, out.quality
    stored = 0
    for tag, raw in values.items():
        rule = rules.get(tag)
        if rule is None:
            rejections.append(Rejection(Reason.UNKNOWN_TAG, f"[{index}] tag {tag!r}", 1))
            continue
        kind = rule.kind
        cls = raw.__class__
        if (cls is float or cls is int) and (kind is _FLOAT or kind is _INT):
            value = float(raw)
            if value - value == 0.0 and (kind is _FLOAT or value.is_integer()):  # finite
                low, high = rule.min_value, rule.max_value
                tags.append(tag)
                numbers.append(value)
                texts.append(None)
                qualities.append(
                    GOOD
                    if (low is None or value >= low) and (high is None or value <= high)
                    else UNCERTAIN
                )
                stored += 1
                continue
        converted = convert_value(raw, rule)
        if converted is None:
            detail = f"[{index}] tag {tag!r} expects {rule.kind.value}, got {_brief(raw)}"
            rejections.append(Rejection(Reason.WRONG_TYPE, detail, 1))
            continue
        value_or_none, text, quality = converted
        tags.append(tag)
        numbers.append(value_or_none)
        texts.append(text)
        qualities.append(quality)
        stored += 1
    if stored:
        out.device_id.extend([spec.device_id] * stored)
        out.ts.extend([ts_us] * stored)


_FLOAT = TagKind.FLOAT
_INT = TagKind.INT
QUALITY_NAMES = {"good": GOOD, "uncertain": UNCERTAIN, "bad": int(Quality.BAD)}


def _decode_marked_sample(
    values: Mapping[str, Any],
    marks: Any,
    index: int,
    ts_us: int,
    spec: DeviceSpec,
    out: PointColumns,
    rejections: list[Rejection],
) -> None:
    """A sample whose source reports qualities: the worse of the source's and the range check's."""
    if not isinstance(marks, dict) or any(
        not isinstance(q, str) or q not in QUALITY_NAMES for q in marks.values()
    ):
        detail = f"[{index}] 'quality' must map tags to one of {', '.join(QUALITY_NAMES)}"
        rejections.append(Rejection(Reason.BAD_STRUCTURE, detail, len(values)))
        return
    for tag, raw in values.items():
        rule = spec.tags.get(tag)
        if rule is None:
            rejections.append(Rejection(Reason.UNKNOWN_TAG, f"[{index}] tag {tag!r}", 1))
            continue
        marked = QUALITY_NAMES[marks.get(tag, "good")]
        if raw is None and marked == int(Quality.BAD):
            out.append(spec.device_id, tag, ts_us, None, None, marked)
            continue
        converted = convert_value(raw, rule)
        if converted is None:
            detail = f"[{index}] tag {tag!r} expects {rule.kind.value}, got {_brief(raw)}"
            rejections.append(Rejection(Reason.WRONG_TYPE, detail, 1))
            continue
        value, text, quality = converted
        out.append(spec.device_id, tag, ts_us, value, text, max(quality, marked))


def _brief(raw: Any) -> str:
    text = orjson.dumps(raw).decode() if not isinstance(raw, str) else repr(raw)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_timestamp(raw: Any, now_us: int) -> tuple[int, str]:
    """Microseconds since the epoch, or a problem.

    >>> parse_timestamp("2026-01-01T00:00:00.5Z", 0)
    (1767225600500000, '')
    >>> parse_timestamp(1767225600500, 0)
    (1767225600500000, '')
    >>> parse_timestamp(None, 42)
    (42, '')
    >>> parse_timestamp("yesterday", 0)[1]
    "timestamp 'yesterday' is not ISO 8601"
    """
    if raw is None:
        return now_us, ""
    cls = raw.__class__
    if cls is float or cls is int or (cls is not bool and isinstance(raw, int | float)):
        if not math.isfinite(raw):
            return 0, "timestamp is not finite"
        ts_us = round(raw * 1000)
    elif isinstance(raw, str):
        try:
            parsed = datetime.fromisoformat(raw)
        except ValueError:
            return 0, f"timestamp {_brief(raw)} is not ISO 8601"
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        ts_us = (parsed - EPOCH) // timedelta(microseconds=1)
    else:  # bool is an int, but not a timestamp
        return 0, "timestamp must be a string or epoch milliseconds"
    if ts_us < EARLIEST_US:
        return 0, "timestamp is before 2000 (device clock not set?)"
    return ts_us, ""


def convert_value(raw: Any, rule: TagRule) -> tuple[float | None, str | None, int] | None:
    """(value, text, quality) for a raw JSON value, or None when its type is wrong.

    Values outside the profile's expected range are kept with quality UNCERTAIN: a reading far
    off the range is exactly what an engineer needs to see.

    >>> convert_value(5, TagRule(TagKind.FLOAT, 0, 10))
    (5.0, None, 0)
    >>> convert_value(50, TagRule(TagKind.FLOAT, 0, 10))
    (50.0, None, 1)
    >>> convert_value(True, TagRule(TagKind.BOOL)), convert_value("on", TagRule(TagKind.BOOL))
    ((1.0, None, 0), None)
    >>> convert_value(2.5, TagRule(TagKind.INT)) is None
    True
    """
    kind = rule.kind
    if kind is TagKind.STRING:
        if isinstance(raw, str) and len(raw) <= MAX_TEXT_LENGTH:
            return None, raw, GOOD
        return None
    if kind is TagKind.BOOL:
        if isinstance(raw, bool):
            return float(raw), None, GOOD
        if isinstance(raw, int) and raw in (0, 1):
            return float(raw), None, GOOD
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return None
    value = float(raw)
    if not math.isfinite(value) or (kind is TagKind.INT and not value.is_integer()):
        return None
    return value, None, _range_quality(value, rule)


def _range_quality(value: float, rule: TagRule) -> int:
    if rule.min_value is not None and value < rule.min_value:
        return UNCERTAIN
    if rule.max_value is not None and value > rule.max_value:
        return UNCERTAIN
    return GOOD
