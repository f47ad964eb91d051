"""Routes of commands to devices: send a value to a writable tag, follow its acknowledgement."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query, Request

from clusterbrain.devices import command_service as commands
from clusterbrain.devices.command_service import CommandIn, CommandOut, CommandTransport
from clusterbrain.platform.web import PrincipalDep, SessionDep

router = APIRouter(prefix="/api/v1", tags=["commands"])


def _transport(request: Request) -> CommandTransport | None:
    runtime = request.app.state.runtime
    transport: CommandTransport | None = runtime.command_transport()
    return transport


@router.post("/devices/{device_id}/commands", response_model=CommandOut, status_code=202)
def send_command(
    device_id: str,
    body: CommandIn,
    request: Request,
    background: BackgroundTasks,
    session: SessionDep,
    principal: PrincipalDep,
) -> CommandOut:
    """Check the value against the profile (writable, type, range), record and send it.

    The answer comes at once with status ``sent``; the device's acknowledgement (or its absence
    within ``timeout_s``) settles it: poll ``GET /commands/{id}``.
    """
    command = commands.create_command(session, principal, device_id, body)
    # sent after the response, which is after the commit: the ack always finds its record
    background.add_task(commands.send, request.app.state.sessions, _transport(request), command.id)
    return commands.command_out(command)


@router.get("/devices/{device_id}/commands", response_model=list[CommandOut])
def list_commands(
    device_id: str,
    session: SessionDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[CommandOut]:
    return [
        commands.command_out(c)
        for c in commands.list_commands(session, principal, device_id, limit)
    ]


@router.get("/commands/{command_id}", response_model=CommandOut)
def get_command(command_id: str, session: SessionDep, principal: PrincipalDep) -> CommandOut:
    return commands.command_out(commands.get_command(session, principal, command_id))
