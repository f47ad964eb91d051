"""Commands to devices in the console: send a value to a writable tag of a device and follow
the command until the device's answer settles it, with the device's recent commands (who asked
for which value, when, and what came back).

The command goes through the same service as ``POST /api/v1/devices/{id}/commands``: checked
against the profile (writable, type, range) and recorded in a session, then published once that
record is committed. Refusals are shown in the viewer's language, naming the field.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

import orjson
from nicegui import run, ui
from pydantic import ValidationError
from sqlalchemy import select

from clusterbrain.api.runtime import Runtime
from clusterbrain.devices.command_service import (
    COMMAND_ROLES,
    CommandIn,
    create_command,
    get_command,
    list_commands,
    send,
)
from clusterbrain.devices.commands import FINAL, CommandStatus, CommandValue
from clusterbrain.devices.spec import TagKind
from clusterbrain.platform.db import session_scope
from clusterbrain.platform.errors import ClusterBrainError, Forbidden, InvalidInput, NotFound
from clusterbrain.platform.models import User
from clusterbrain.platform.tenancy import Principal
from clusterbrain.ui.context import Console, Viewer
from clusterbrain.ui.layout import empty_state

TEXT = {
    "Commands to devices": "设备指令",
    "Send a value to a writable tag; the device's answer settles the command.": (
        "向可写数据点下发设定值；以设备的应答确认指令结果。"
    ),
    "No device has writable tags": "没有带可写数据点的设备",
    "Mark tags of a device profile writable, with their range, to send values to them.": (
        "在设备模板中将数据点设为可写并设置范围后，即可向其下发设定值。"
    ),
    "Device": "采集设备",
    "Tag": "数据点",
    "Value": "数值",
    "Send": "下发",
    "on / off": "开 / 关",
    "On (true)": "开（true）",
    "Off (false)": "关（false）",
    "float": "浮点数",
    "int": "整数",
    "bool": "布尔",
    "string": "文本",
    "Only engineers and administrators may send commands.": "只有工程师和管理员可以下发指令。",
    "Your role may not send commands: only engineers and administrators may.": (
        "您的角色无权下发指令：只有工程师和管理员可以。"
    ),
    "Sent": "已下发",
    "Sent, waiting for the device…": "已下发，等待设备应答…",
    "Succeeded": "成功",
    "Failed": "失败",
    "Timed out": "超时",
    "No answer before the command expired": "指令过期前设备未应答",
    "Recent commands": "最近的指令",
    "No commands sent to this device yet": "还没有向该设备下发过指令",
    "Time": "时间",
    "User": "用户",
    "Status": "状态",
    "Reason": "原因",
    "Rows per page": "每页行数",
    "{field}: {problem}": "{field}：{problem}",
    "must be between {low} and {high}": "必须在 {low} 到 {high} 之间",
    "must be at least {low}": "不能小于 {low}",
    "must be at most {high}": "不能大于 {high}",
    "must be a number": "必须是数字",
    "must be a whole number": "必须是整数",
    "must be true or false": "必须是开或关",
    "must be a text": "必须是文本",
    "is not writable": "不可写",
    "is not in the device's profile": "不在设备模板中",
    "The device is revoked": "该设备已停用",
    "The device was not found": "找不到该设备",
    "Refused": "操作被拒绝",
}

COMMAND_STATUS = {
    CommandStatus.SENT: ("Sent", "blue-7"),
    CommandStatus.SUCCEEDED: ("Succeeded", "positive"),
    CommandStatus.FAILED: ("Failed", "negative"),
    CommandStatus.TIMED_OUT: ("Timed out", "warning"),
}
COMMAND_POLL_S = 1.0
RECENT_COMMANDS = 20
T = TypeVar("T")


# --- pure helpers -------------------------------------------------------------------------------


def range_text(low: float | None, high: float | None, unit: str = "") -> str:
    """A tag's range with its unit.

    >>> range_text(5, 10, "bar"), range_text(0, None), range_text(None, None)
    ('5 … 10 bar', '≥ 0', '')
    """
    if low is None and high is None:
        return ""
    if high is None:
        text = f"≥ {low:g}"
    elif low is None:
        text = f"≤ {high:g}"
    else:
        text = f"{low:g} … {high:g}"
    return f"{text} {unit}".strip()


def parse_value(text: str, kind: TagKind) -> CommandValue | None:
    """The value typed for a tag of ``kind``; None when it is not a number for a number tag.

    >>> parse_value("8,5", TagKind.FLOAT), parse_value("7", TagKind.INT)
    (8.5, 7)
    >>> parse_value("7.5", TagKind.INT), parse_value("hot", TagKind.FLOAT), parse_value("", TagKind.INT)
    (7.5, None, None)
    """
    text = text.strip()
    if kind is TagKind.STRING:
        return text
    if kind is TagKind.BOOL:
        return text.lower() in ("true", "1", "on")
    try:
        number = float(text.replace(",", "."))
    except ValueError:
        return None
    if not math.isfinite(number):
        return None
    return int(number) if kind is TagKind.INT and number.is_integer() else number


def value_text(value: object) -> str:
    """A command's value in the audit table.

    >>> value_text(True), value_text(8.25), value_text(10.0), value_text("auto")
    ('true', '8.25', '10', 'auto')
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# --- reads and changes --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WritableTag:
    name: str
    kind: TagKind
    min_value: float | None
    max_value: float | None
    unit: str


@dataclass(frozen=True, slots=True)
class CommandRow:
    id: str
    tag: str
    value: object
    status: CommandStatus
    reason: str
    user: str
    created_at: datetime


def read_commands(runtime: Runtime, principal: Principal, device_id: str) -> list[CommandRow]:
    """The device's recent commands, newest first, with who asked (the audit trail)."""
    with session_scope(runtime.sessions) as session:
        commands = list_commands(session, principal, device_id, RECENT_COMMANDS)
        asked = {c.requested_by for c in commands if c.requested_by is not None}
        users = {
            user.id: user.display_name or user.username
            for user in session.scalars(select(User).where(User.id.in_(asked)))
        }
        return [
            CommandRow(
                c.id,
                c.tag,
                orjson.loads(c.value),
                CommandStatus(c.status),
                c.reason,
                users.get(c.requested_by or 0, "—"),
                c.created_at,
            )
            for c in commands
        ]


def read_command(runtime: Runtime, principal: Principal, command_id: str) -> tuple[str, str]:
    with session_scope(runtime.sessions) as session:
        command = get_command(session, principal, command_id)
        return command.status, command.reason


def send_command(
    runtime: Runtime, principal: Principal, device_id: str, tag: str, value: CommandValue
) -> str:
    """Check and record the command, then publish it once the record is committed."""
    body = CommandIn(tag=tag, value=value)
    with session_scope(runtime.sessions) as session:
        command_id = create_command(session, principal, device_id, body).id
    send(runtime.sessions, runtime.command_transport(), command_id)
    return command_id


async def refusable(call: Callable[[], T]) -> T | ClusterBrainError | ValidationError | None:
    """Blocking work off the event loop; a refusal is returned, not raised."""
    try:
        return await run.io_bound(call)
    except (ClusterBrainError, ValidationError) as exc:
        return exc


def command_problem(
    viewer: Viewer, error: ClusterBrainError | ValidationError, tag: WritableTag | None
) -> str:
    """Why the services refused a command, in the viewer's words, naming the field.

    The refusal's ``field`` says where (value or tag); its English detail
    (``devices.commands.refusal``) says which rule, and the tag's own range gives the numbers.
    """
    t = viewer.t

    def on(field_label: str, problem: str) -> str:
        return t("{field}: {problem}").format(field=t(field_label), problem=problem)

    if isinstance(error, Forbidden):
        return t("Your role may not send commands: only engineers and administrators may.")
    if isinstance(error, NotFound):
        return t("The device was not found")
    if isinstance(error, ValidationError):
        return on("Value", t("must be a number"))
    detail = error.detail
    if "must be between" in detail and tag is not None:
        low, high = tag.min_value, tag.max_value
        if low is not None and high is not None:
            return on(
                "Value",
                t("must be between {low} and {high}").format(low=f"{low:g}", high=f"{high:g}"),
            )
        if low is not None:
            return on("Value", t("must be at least {low}").format(low=f"{low:g}"))
        if high is not None:
            return on("Value", t("must be at most {high}").format(high=f"{high:g}"))
    for phrase, problem in (
        ("takes a whole number", "must be a whole number"),
        ("takes a number", "must be a number"),
        ("takes true or false", "must be true or false"),
        ("takes a text", "must be a text"),
    ):
        if phrase in detail:
            return on("Value", t(problem))
    if "not writable" in detail:
        return on("Tag", t("is not writable"))
    if "has no tag" in detail:
        return on("Tag", t("is not in the device's profile"))
    if isinstance(error, InvalidInput) and error.field == "device_id":
        return t("The device is revoked")
    return f"{t('Refused')}: {detail}"


# --- the panel ----------------------------------------------------------------------------------


class CommandPanel:
    """Send a value to a writable tag and follow it until the device's answer settles it."""

    def __init__(self, console: Console, viewer: Viewer) -> None:
        self.console, self.viewer = console, viewer
        self.t = viewer.t
        self.writable: dict[str, list[WritableTag]] = {}
        self.labels: dict[str, str] = {}
        self.pending: str | None = None
        self.built = False

    async def build(
        self, writable: Mapping[str, list[WritableTag]], labels: Mapping[str, str], wanted: str
    ) -> None:
        """The form, below what is already on the page; ``wanted`` is the device chosen first."""
        t = self.t
        self.writable, self.labels = dict(writable), dict(labels)
        self.card = ui.card().classes("w-full gap-3").props('data-testid="commands"')
        with self.card:
            ui.label(t("Commands to devices")).classes("text-xl")
            ui.label(
                t("Send a value to a writable tag; the device's answer settles the command.")
            ).classes("text-grey-7")
            self.empty = ui.column().classes("w-full")
            self.form = ui.column().classes("w-full gap-3")
        with self.form:
            with ui.row().classes("w-full items-end gap-3"):
                first = wanted if wanted in self.writable else next(iter(self.writable), None)
                self.device = (
                    ui.select(self._device_options(), value=first, label=t("Device"))
                    .props('outlined dense data-testid="command-device"')
                    .classes("w-80")
                    .on_value_change(self._device_changed)
                )
                self.tag = (
                    ui.select({}, label=t("Tag"))
                    .props('outlined dense data-testid="command-tag"')
                    .classes("w-80")
                    .on_value_change(self._tag_changed)
                )
                self.value = (
                    ui.input(t("Value")).props('outlined dense data-testid="command-value"')
                ).classes("w-40")
                self.switch = (
                    ui.select(
                        {"true": t("On (true)"), "false": t("Off (false)")},
                        value="true",
                        label=t("Value"),
                    )
                    .props('outlined dense data-testid="command-bool"')
                    .classes("w-40")
                )
                self.send_button = ui.button(t("Send"), icon="send", on_click=self._send).props(
                    'data-testid="command-send"'
                )
            if self.viewer.principal.role not in COMMAND_ROLES:
                ui.label(t("Only engineers and administrators may send commands.")).classes(
                    "text-grey-7"
                ).props('data-testid="command-role-hint"')
            with (
                ui.row()
                .classes("w-full items-center gap-2")
                .props('data-testid="command-status"') as self.status_row
            ):
                pass
            ui.label(t("Recent commands")).classes("font-semibold")
            self.table = (
                ui.table(
                    columns=[
                        {"name": "time", "label": t("Time"), "field": "time", "align": "left"},
                        {"name": "user", "label": t("User"), "field": "user", "align": "left"},
                        {"name": "tag", "label": t("Tag"), "field": "tag", "align": "left"},
                        {"name": "value", "label": t("Value"), "field": "value", "align": "left"},
                        {
                            "name": "status",
                            "label": t("Status"),
                            "field": "status",
                            "align": "left",
                        },
                        {
                            "name": "reason",
                            "label": t("Reason"),
                            "field": "reason",
                            "align": "left",
                        },
                    ],
                    rows=[],
                    row_key="id",
                    pagination=10,
                )
                .props(
                    f'flat bordered dense no-data-label="{t("No commands sent to this device yet")}" '
                    f'rows-per-page-label="{t("Rows per page")}" data-testid="command-history"'
                )
                .classes("w-full")
            )
        self.built = True
        self._show_form()
        await self._device_changed()
        ui.timer(COMMAND_POLL_S, self._poll)

    def _device_options(self) -> dict[str, str]:
        return {device: self.labels.get(device, device) for device in sorted(self.writable)}

    def update_devices(
        self, writable: Mapping[str, list[WritableTag]], labels: Mapping[str, str]
    ) -> None:
        """New devices or tags (a profile edited meanwhile): the form offers them."""
        if not self.built or writable == self.writable:
            return
        self.writable, self.labels = dict(writable), dict(labels)
        value = self.device.value if self.device.value in self.writable else None
        self.device.set_options(
            self._device_options(), value=value or next(iter(self.writable), None)
        )
        self._show_form()

    def _show_form(self) -> None:
        has_devices = bool(self.writable)
        self.form.set_visibility(has_devices)
        self.empty.clear()
        if not has_devices:
            with self.empty:
                empty_state(
                    self.viewer,
                    "No device has writable tags",
                    "Mark tags of a device profile writable, with their range, to send values "
                    "to them.",
                )

    def choose(self, device_id: str) -> None:
        """Select ``device_id`` in the form (from a field device's row) and show the form."""
        if device_id in self.writable:
            self.device.set_value(device_id)
        ui.run_javascript(f"getHtmlElement({self.card.id}).scrollIntoView({{behavior: 'smooth'}})")

    def _tags(self) -> list[WritableTag]:
        return self.writable.get(str(self.device.value or ""), [])

    def _chosen_tag(self) -> WritableTag | None:
        return next((tag for tag in self._tags() if tag.name == self.tag.value), None)

    def _tag_label(self, tag: WritableTag) -> str:
        if tag.kind is TagKind.BOOL:
            return f"{tag.name} · {self.t('on / off')}"
        shown = range_text(tag.min_value, tag.max_value, tag.unit)
        return f"{tag.name} · {shown}" if shown else f"{tag.name} · {self.t(tag.kind.value)}"

    async def _device_changed(self) -> None:
        tags = self._tags()
        options = {tag.name: self._tag_label(tag) for tag in tags}
        value = self.tag.value if self.tag.value in options else next(iter(options), None)
        self.tag.set_options(options, value=value)
        self._tag_changed()
        self._clear_status()
        await self.refresh_history()

    def _tag_changed(self) -> None:
        tag = self._chosen_tag()
        is_bool = tag is not None and tag.kind is TagKind.BOOL
        self.switch.set_visibility(is_bool)
        self.value.set_visibility(not is_bool)

    async def _send(self) -> None:
        t = self.t
        device, tag = str(self.device.value or ""), self._chosen_tag()
        if not device or tag is None:
            return
        if tag.kind is TagKind.BOOL:
            value: CommandValue | None = self.switch.value == "true"
        else:
            value = parse_value(str(self.value.value or ""), tag.kind)
        if value is None:
            problem = t("{field}: {problem}").format(
                field=t("Value"), problem=t("must be a number")
            )
            ui.notify(problem, type="negative")
            return
        runtime, principal = self.console.runtime, self.viewer.principal
        result = await refusable(lambda: send_command(runtime, principal, device, tag.name, value))
        if isinstance(result, ClusterBrainError | ValidationError):
            ui.notify(command_problem(self.viewer, result, tag), type="negative", multi_line=True)
            return
        if result is None:
            return
        self.pending = result
        self._show_status(CommandStatus.SENT, "")
        await self.refresh_history()

    def _clear_status(self) -> None:
        self.pending = None
        self.status_row.clear()

    def _show_status(self, status: CommandStatus, reason: str) -> None:
        t = self.t
        self.status_row.clear()
        with self.status_row:
            label, colour = COMMAND_STATUS[status]
            ui.badge(t(label), color=colour).props(f'data-testid="command-state-{status.value}"')
            if status is CommandStatus.SENT:
                ui.spinner(size="sm")
                ui.label(t("Sent, waiting for the device…")).classes("text-grey-7")
            elif status is CommandStatus.TIMED_OUT:
                ui.label(t("No answer before the command expired")).classes("text-grey-8")
            elif reason:
                ui.label(reason).classes("text-grey-8").props('data-testid="command-reason"')

    async def _poll(self) -> None:
        command_id = self.pending
        if command_id is None:
            return
        runtime, principal = self.console.runtime, self.viewer.principal
        found = await refusable(lambda: read_command(runtime, principal, command_id))
        if not isinstance(found, tuple) or command_id != self.pending:
            return
        status = CommandStatus(found[0])
        if status in FINAL:
            self.pending = None
            self._show_status(status, found[1])
            await self.refresh_history()

    async def refresh_history(self) -> None:
        device = str(self.device.value or "")
        if not device:
            self.table.rows = []
            return
        runtime, principal = self.console.runtime, self.viewer.principal
        found = await refusable(lambda: read_commands(runtime, principal, device))
        if not isinstance(found, list):
            return
        t = self.t
        rows = [
            {
                "id": row.id,
                "time": self.viewer.local(row.created_at),
                "user": row.user,
                "tag": row.tag,
                "value": value_text(row.value),
                "status": t(COMMAND_STATUS[row.status][0]),
                "reason": (
                    t("No answer before the command expired")
                    if row.status is CommandStatus.TIMED_OUT
                    else row.reason or "—"
                ),
            }
            for row in found
        ]
        if rows != self.table.rows:
            self.table.rows = rows
