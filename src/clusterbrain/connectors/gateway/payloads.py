"""Readings → telemetry payloads and commands ← JSON, as pure functions (no I/O)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from clusterbrain.connectors.source import Reading, Sample, Value
from clusterbrain.telemetry.quality import Quality

QUALITY_WORDS = {Quality.UNCERTAIN: "uncertain", Quality.BAD: "bad"}


def telemetry_topic(gateway_id: str, device_id: str) -> str:
    """Where a gateway publishes a field device's data (the device's own id when it is itself).

    >>> telemetry_topic("gw-1", "meter-7"), telemetry_topic("gw-1", "gw-1")
    ('cb/v1/gw-1/gateway/meter-7/telemetry', 'cb/v1/gw-1/telemetry')
    """
    if device_id == gateway_id:
        return f"cb/v1/{gateway_id}/telemetry"
    return f"cb/v1/{gateway_id}/gateway/{device_id}/telemetry"


def command_filter(gateway_id: str) -> str:
    return f"cb/v1/{gateway_id}/gateway/+/commands"


def ack_topic(command_topic: str) -> str:
    return f"{command_topic}/ack"


def device_of_command_topic(gateway_id: str, topic: str) -> str | None:
    """The field device a command on the gateway's command topic is for.

    >>> device_of_command_topic("gw-1", "cb/v1/gw-1/gateway/plc-2/commands")
    'plc-2'
    """
    parts = topic.split("/")
    ours = len(parts) == 6 and parts[:4] == ["cb", "v1", gateway_id, "gateway"]
    return parts[4] if ours and parts[5] == "commands" and parts[4] else None


def encode_readings(readings: Iterable[Reading | Sample], max_samples: int = 500) -> list[bytes]:
    """JSON telemetry payloads: one sample per timestamp, at most ``max_samples`` per payload.

    Timestamps are epoch milliseconds with a fraction, which keeps microseconds exactly; a
    quality other than good is stated per tag. A ``Sample`` becomes a payload sample as it is,
    without a step per value.

    >>> from clusterbrain.telemetry.quality import Quality
    >>> encode_readings([Reading("t", 1_000_001, 2.5), Reading("p", 1_000_001, None, Quality.BAD)])
    [b'[{"ts":1000.001,"values":{"t":2.5,"p":null},"quality":{"p":"bad"}}]']
    >>> encode_readings([Sample(2_000, {"a": 1, "b": 2}), Reading("c", 2_000, 3)])
    [b'[{"ts":2.0,"values":{"a":1,"b":2,"c":3}}]']
    """
    samples: dict[int, dict[str, Any]] = {}
    shared: set[int] = set()  # samples whose values are a Sample's own mapping, not yet copied
    for item in readings:
        if isinstance(item, Sample):
            sample = samples.get(item.ts_us)
            if sample is None:
                samples[item.ts_us] = {"ts": item.ts_us / 1000, "values": item.values}
                shared.add(item.ts_us)
                continue
            values = _own_values(sample, item.ts_us, shared)
            values.update(item.values)
            continue
        sample = samples.get(item.ts_us)
        if sample is None:
            sample = samples[item.ts_us] = {"ts": item.ts_us / 1000, "values": {}}
        values = _own_values(sample, item.ts_us, shared) if shared else sample["values"]
        values[item.tag] = item.value
        if item.quality != Quality.GOOD:
            sample.setdefault("quality", {})[item.tag] = QUALITY_WORDS[Quality(item.quality)]
    ordered = [samples[ts] for ts in sorted(samples)]
    return [
        orjson.dumps(ordered[start : start + max_samples])
        for start in range(0, len(ordered), max_samples)
    ]


def _own_values(sample: dict[str, Any], ts_us: int, shared: set[int]) -> dict[str, Any]:
    """The sample's values as a dict of its own (a Sample's mapping is never changed)."""
    if ts_us in shared:
        shared.discard(ts_us)
        sample["values"] = dict(sample["values"])
    values: dict[str, Any] = sample["values"]
    return values


@dataclass(frozen=True, slots=True)
class Command:
    id: str
    tag: str
    value: Value
    expires_ms: float | None = None
    """Epoch milliseconds after which the command must not be carried out (a setpoint sent
    an hour ago is not what the engineer wants when a gateway comes back online)."""


def parse_command(payload: bytes) -> Command | str:
    """A command, or why it is not one.

    >>> parse_command(b'{"id": "c1", "tag": "setpoint", "value": 7.5}')
    Command(id='c1', tag='setpoint', value=7.5, expires_ms=None)
    >>> parse_command(b'{"id": "c1", "tag": "setpoint"}')
    'a command needs id, tag and value'
    """
    try:
        document = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return "the command is not JSON"
    if not isinstance(document, dict) or not {"id", "tag", "value"} <= set(document):
        return "a command needs id, tag and value"
    value = document["value"]
    if not isinstance(value, bool | int | float | str):
        return "the value must be a number, a boolean or a text"
    expires = document.get("expires")
    if expires is not None and (isinstance(expires, bool) or not isinstance(expires, int | float)):
        return "expires must be epoch milliseconds"
    return Command(str(document["id"]), str(document["tag"]), value, expires)


def encode_ack(command_id: str, ok: bool, reason: str, at_us: int) -> bytes:
    """The acknowledgement the platform waits for.

    >>> encode_ack("c1", False, "out of range", 1_000_000)
    b'{"id":"c1","status":"failed","reason":"out of range","at":1000.0}'
    """
    status = "succeeded" if ok else "failed"
    return orjson.dumps({"id": command_id, "status": status, "reason": reason, "at": at_us / 1000})


def health_readings(values: Sequence[tuple[str, float]], ts_us: int) -> list[Reading]:
    return [Reading(tag, ts_us, value) for tag, value in values]
