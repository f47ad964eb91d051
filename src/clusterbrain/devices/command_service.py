"""Commands to devices: check, record, send, and settle them by acknowledgement or timeout.

The record of a command is its audit trail: who asked for which value, when it was sent, and
what the device answered. Sending goes through a ``CommandTransport`` (the platform's MQTT
client), after the record is committed, so that an acknowledgement always finds its command.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

import orjson
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from clusterbrain.devices.commands import (
    CommandStatus,
    CommandValue,
    WritableTag,
    command_payload,
    command_topic,
    parse_ack,
    refusal,
)
from clusterbrain.devices.models import Command, Device, ProfileTag
from clusterbrain.devices.service import get_device
from clusterbrain.devices.spec import TagKind
from clusterbrain.platform.db import session_scope, utcnow
from clusterbrain.platform.errors import InvalidInput
from clusterbrain.platform.models import Role
from clusterbrain.platform.service import get_visible
from clusterbrain.platform.tenancy import Principal

log = logging.getLogger(__name__)
COMMAND_ROLES = frozenset({Role.PLATFORM_ADMIN, Role.ENTERPRISE_ADMIN, Role.ENGINEER})
"""Who may change a machine's settings from afar; operators and viewers may not."""


class CommandTransport(Protocol):
    def publish(self, topic: str, payload: bytes) -> bool: ...


class CommandIn(BaseModel):
    tag: str = Field(min_length=1, max_length=100)
    value: bool | int | float | str = Field(description="A number, true/false or a text.")
    timeout_s: float = Field(default=10.0, ge=1, le=300, description="Wait this long for the ack.")


class CommandOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    device_id: str
    tag: str
    value: bool | int | float | str
    status: CommandStatus
    reason: str
    requested_by: int | None
    created_at: datetime
    expires_at: datetime
    finished_at: datetime | None


def command_out(command: Command) -> CommandOut:
    return CommandOut(
        id=command.id,
        device_id=command.device_id,
        tag=command.tag,
        value=orjson.loads(command.value),
        status=CommandStatus(command.status),
        reason=command.reason,
        requested_by=command.requested_by,
        created_at=command.created_at,
        expires_at=command.expires_at,
        finished_at=command.finished_at,
    )


def _writable_tag(session: Session, device: Device, name: str) -> WritableTag | None:
    query = select(ProfileTag).where(
        ProfileTag.profile_id == device.profile_id, ProfileTag.name == name
    )
    tag = session.scalars(query).first()
    if tag is None:
        return None
    kind = TagKind(tag.data_type)
    return WritableTag(tag.name, kind, tag.writable, tag.min_value, tag.max_value)


def create_command(
    session: Session, principal: Principal, device_id: str, body: CommandIn
) -> Command:
    """Check and record a command (status sent); the caller sends it once this is committed."""
    device = get_device(session, principal, device_id)
    principal.require(COMMAND_ROLES, "send commands to devices")
    if device.revoked_at is not None:
        raise InvalidInput(f"device {device_id!r} is revoked", field="device_id")
    problem = refusal(_writable_tag(session, device, body.tag), body.tag, body.value)
    if problem:
        raise InvalidInput(problem, field="value" if "between" in problem else "tag")
    now = utcnow()
    command = Command(
        id=secrets.token_hex(8),
        enterprise_id=device.enterprise_id,
        device_id=device.id,
        tag=body.tag,
        value=orjson.dumps(body.value).decode(),
        status=CommandStatus.SENT,
        reason="",
        requested_by=principal.user_id,
        topic=command_topic(device.id, device.gateway_id),
        created_at=now,
        expires_at=now + timedelta(seconds=body.timeout_s),
    )
    session.add(command)
    session.flush()
    return command


def send(
    sessions: sessionmaker[Session], transport: CommandTransport | None, command_id: str
) -> None:
    """Publish a committed command; without a broker connection it fails at once, with why."""
    with session_scope(sessions) as session:
        command = session.get(Command, command_id)
        if command is None:
            return
        value: CommandValue = orjson.loads(command.value)
        expires_ms = command.expires_at.timestamp() * 1000
        payload = command_payload(command.id, command.tag, value, expires_ms)
        sent = transport is not None and transport.publish(command.topic, payload)
        if not sent:
            command.status = CommandStatus.FAILED
            command.reason = "the platform is not connected to the MQTT broker"
            command.finished_at = utcnow()


def settle_ack(sessions: sessionmaker[Session], topic: str, payload: bytes) -> bool:
    """Record a device's acknowledgement; only the topic the command went to may answer it."""
    ack = parse_ack(payload)
    if ack is None:
        log.warning("unreadable command acknowledgement on %s", topic)
        return False
    with session_scope(sessions) as session:
        command = session.get(Command, ack.command_id)
        if command is None or f"{command.topic}/ack" != topic:
            log.warning("acknowledgement on %s for an unknown command %s", topic, ack.command_id)
            return False
        if command.status not in (CommandStatus.SENT, CommandStatus.TIMED_OUT):
            return False  # already settled (a redelivered ack)
        late = command.status == CommandStatus.TIMED_OUT
        command.status = CommandStatus.SUCCEEDED if ack.ok else CommandStatus.FAILED
        command.reason = _late(ack.reason) if late else ack.reason
        command.finished_at = utcnow()
    return True


def _late(reason: str) -> str:
    """A late answer still tells the engineer what the machine did.

    >>> _late(""), _late("out of range")
    ('answered after the timeout', 'answered after the timeout: out of range')
    """
    return "answered after the timeout" + (f": {reason}" if reason else "")


def expire(session: Session, now: datetime | None = None) -> int:
    """Commands still waiting past their expiry become timed out."""
    moment = now or utcnow()
    result = session.execute(
        update(Command)
        .where(Command.status == CommandStatus.SENT, Command.expires_at < moment)
        .values(
            status=CommandStatus.TIMED_OUT,
            reason="no acknowledgement before the command expired",
            finished_at=moment,
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


def list_commands(
    session: Session, principal: Principal, device_id: str, limit: int = 50
) -> Sequence[Command]:
    device = get_device(session, principal, device_id)
    expire(session)
    query = (
        select(Command)
        .where(Command.device_id == device.id)
        .order_by(Command.created_at.desc())
        .limit(limit)
    )
    return session.scalars(query).all()


def get_command(session: Session, principal: Principal, command_id: str) -> Command:
    expire(session)
    return get_visible(session, Command, command_id, principal, "command")
