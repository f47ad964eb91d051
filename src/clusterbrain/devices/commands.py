"""Commands to devices, the pure part: may this value be sent to this tag, and the messages.

A command sets one tag of a device (a setpoint) to a value. The profile decides: the tag must be
marked writable, the value must have the tag's type and lie in its range. Anything else is refused
before a message leaves the platform.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import orjson

from clusterbrain.devices.spec import TagKind

CommandValue = float | int | bool | str


class CommandStatus(enum.StrEnum):
    SENT = "sent"
    """Handed to the broker; waiting for the device's acknowledgement."""
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    """The device (or its gateway) answered that it could not carry it out, with the reason."""
    TIMED_OUT = "timed_out"
    """No answer before the command expired."""


FINAL = frozenset({CommandStatus.SUCCEEDED, CommandStatus.FAILED, CommandStatus.TIMED_OUT})


@dataclass(frozen=True, slots=True)
class WritableTag:
    name: str
    kind: TagKind
    writable: bool
    min_value: float | None = None
    max_value: float | None = None


def refusal(tag: WritableTag | None, name: str, value: CommandValue) -> str:
    """Why ``value`` may not be sent to the tag, or "" when it may.

    >>> setpoint = WritableTag("zone1_setpoint", TagKind.FLOAT, True, 150, 260)
    >>> refusal(setpoint, "zone1_setpoint", 230.0)
    ''
    >>> refusal(setpoint, "zone1_setpoint", 300)
    'zone1_setpoint must be between 150 and 260, not 300'
    >>> refusal(None, "speed", 1)
    "the device's profile has no tag 'speed'"
    """
    if tag is None:
        return f"the device's profile has no tag {name!r}"
    if not tag.writable:
        return f"{name} is not writable (the profile does not allow commands to it)"
    if tag.kind is TagKind.STRING:
        return "" if isinstance(value, str) else f"{name} takes a text"
    if tag.kind is TagKind.BOOL:
        return "" if isinstance(value, bool) else f"{name} takes true or false"
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return f"{name} takes a number"
    if tag.kind is TagKind.INT and not float(value).is_integer():
        return f"{name} takes a whole number"
    low, high = tag.min_value, tag.max_value
    if (low is not None and value < low) or (high is not None and value > high):
        return f"{name} must be between {_num(low)} and {_num(high)}, not {_num(value)}"
    return ""


def _num(value: float | None) -> str:
    if value is None:
        return "…"
    return f"{value:g}"


def command_topic(device_id: str, gateway_id: str | None) -> str:
    """Where a device (or the gateway reading it) listens for commands.

    >>> command_topic("plc-1", None), command_topic("plc-1", "gw-1")
    ('cb/v1/plc-1/commands', 'cb/v1/gw-1/gateway/plc-1/commands')
    """
    if gateway_id:
        return f"cb/v1/{gateway_id}/gateway/{device_id}/commands"
    return f"cb/v1/{device_id}/commands"


def command_payload(command_id: str, tag: str, value: CommandValue, expires_ms: float) -> bytes:
    """The message a device (or its gateway) receives.

    >>> command_payload("c1", "setpoint", 7.5, 1000.0)
    b'{"id":"c1","tag":"setpoint","value":7.5,"expires":1000.0}'
    """
    return orjson.dumps({"id": command_id, "tag": tag, "value": value, "expires": expires_ms})


@dataclass(frozen=True, slots=True)
class Ack:
    command_id: str
    ok: bool
    reason: str


def parse_ack(payload: bytes) -> Ack | None:
    """An acknowledgement ``{"id", "status": "succeeded"|"failed", "reason"}``, or None.

    >>> parse_ack(b'{"id": "c1", "status": "failed", "reason": "out of range"}')
    Ack(command_id='c1', ok=False, reason='out of range')
    >>> parse_ack(b'nonsense') is None
    True
    """
    try:
        document = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(document, dict) or document.get("status") not in ("succeeded", "failed"):
        return None
    if not isinstance(document.get("id"), str):
        return None
    reason = document.get("reason")
    return Ack(document["id"], document["status"] == "succeeded", str(reason or "")[:1000])
