"""Devices (设备接入): the enterprise's devices live, registration with one-time credentials,
rotate and revoke, device profiles with their tags, and rejected payloads (dead letters)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from nicegui import run, ui
from pydantic import ValidationError

from clusterbrain.devices import schemas
from clusterbrain.devices import service as devices
from clusterbrain.devices.api import credentials_of
from clusterbrain.devices.models import DeviceProfile, ProfileTag
from clusterbrain.platform.db import session_scope, utcnow
from clusterbrain.platform.errors import ClusterBrainError, Conflict, Forbidden, NotFound
from clusterbrain.platform.models import Line, Machine
from clusterbrain.platform.service import list_scoped
from clusterbrain.telemetry import dead_letters
from clusterbrain.telemetry.decode import Reason
from clusterbrain.ui.context import Console, Viewer
from clusterbrain.ui.layout import empty_state, frame, page

TEXT = {
    "Devices": "设备接入",
    "Register device": "注册设备",
    "Registered devices": "已注册设备",
    "Device ID": "设备编号",
    "Name": "名称",
    "Profile": "设备模板",
    "Machine": "机台",
    "Status": "状态",
    "Last seen": "最后上报",
    "Actions": "操作",
    "Online": "在线",
    "Offline": "离线",
    "Revoked": "已停用",
    "Rotate secret": "更换密钥",
    "Revoke": "停用",
    "Cancel": "取消",
    "Close": "关闭",
    "Register": "注册",
    "No machine": "不绑定机台",
    "Leave empty to generate one": "留空则自动生成",
    "No devices yet": "还没有设备",
    "Register a device to connect a machine; its credentials are shown once.": (
        "注册设备以接入机台；接入凭据只显示一次。"
    ),
    "Device registered": "设备已注册",
    "New secret issued": "已签发新密钥",
    "Copy the secret now: it is shown only this once. Only a hash is kept; if the secret is lost, "
    "rotate it to issue a new one.": (
        "请立即复制密钥：它只显示这一次。平台只保存其散列值；如果丢失，请更换密钥重新签发。"
    ),
    "Secret": "密钥",
    "Connection settings": "连接参数",
    "Sample payload": "示例数据",
    "Copy settings": "复制连接参数",
    "Copied": "已复制",
    "I have saved the secret": "我已保存密钥",
    "Issue a new secret for {device}? The old secret stops working at once.": (
        "为 {device} 签发新密钥？旧密钥会立即失效。"
    ),
    "Revoke {device}? It can no longer send data until a new secret is issued.": (
        "停用 {device}？在签发新密钥之前它无法再上报数据。"
    ),
    "{device} is revoked": "{device} 已停用",
    "Device ID {device} is already taken": "设备编号 {device} 已被占用",
    "Device ID: 3 to 64 letters, digits, '-' or '_', starting with a letter or digit": (
        "设备编号：3 到 64 个字母、数字、“-”或“_”，以字母或数字开头"
    ),
    "Name: at most 200 characters": "名称：最多 200 个字符",
    "Choose a device profile": "请选择设备模板",
    "The profile was not found": "找不到该设备模板",
    "The machine was not found": "找不到该机台",
    "The device was not found": "找不到该设备",
    "Your role may not change devices": "您的角色无权修改设备",
    "Refused": "操作被拒绝",
    "Device profiles": "设备模板",
    "No device profiles yet": "还没有设备模板",
    "A profile lists the tags a kind of device sends; create one through the API.": (
        "设备模板列出一类设备上报的数据点；请通过 API 创建。"
    ),
    "Tag name": "数据点",
    "Unit": "单位",
    "Type": "类型",
    "Range": "范围",
    "Description": "说明",
    "tags": "个数据点",
    "float": "浮点数",
    "int": "整数",
    "bool": "布尔",
    "string": "文本",
    "Dead letters": "被拒数据",
    "Payloads the platform refused, newest first.": "平台拒收的数据，最新的在前。",
    "All devices": "全部设备",
    "Reason": "原因",
    "Details": "详情",
    "Received": "接收时间",
    "Source": "来源",
    "No dead letters": "没有被拒数据",
    "Rejected payloads appear here with the reason, so that a device can be fixed.": (
        "被拒收的数据会连同原因显示在这里，便于修正设备配置。"
    ),
    "No data": "无数据",
    "Rows per page": "每页行数",
    "Payload too large": "数据包过大",
    "Malformed JSON": "JSON 格式错误",
    "Wrong structure": "数据结构错误",
    "Unknown device": "未知设备",
    "Revoked device": "设备已停用",
    "Unknown tag": "未知数据点",
    "Wrong type": "类型错误",
    "Bad timestamp": "时间戳无效",
    "Timestamp in the future": "时间戳超前",
}

REASONS = {
    Reason.OVERSIZED: "Payload too large",
    Reason.MALFORMED_JSON: "Malformed JSON",
    Reason.BAD_STRUCTURE: "Wrong structure",
    Reason.UNKNOWN_DEVICE: "Unknown device",
    Reason.REVOKED_DEVICE: "Revoked device",
    Reason.UNKNOWN_TAG: "Unknown tag",
    Reason.WRONG_TYPE: "Wrong type",
    Reason.BAD_TIMESTAMP: "Bad timestamp",
    Reason.FUTURE_TIMESTAMP: "Timestamp in the future",
}
TAG_TYPES = ("float", "int", "bool", "string")
DEAD_LETTER_LIMIT = 100
Done = TypeVar("Done")
MIN_REFRESH_S = 5.0


def register(console: Console) -> None:
    @page("/devices")
    async def devices_page() -> None:
        viewer = console.viewer()
        if viewer is None:
            ui.navigate.to("/login")
            return
        with frame(viewer, viewer.t("Devices")):
            page = DevicesPage(console, viewer)
            await page.build()


def table_labels(viewer: Viewer) -> str:
    """Props that replace Quasar's built-in table texts with the viewer's language."""
    return (
        f'no-data-label="{viewer.t("No data")}" '
        f'rows-per-page-label="{viewer.t("Rows per page")}" '
        ":pagination-label=\"(first, last, total) => first + '–' + last + ' / ' + total\""
    )


def problem_text(
    viewer: Viewer, error: ClusterBrainError | ValidationError, device_id: str = ""
) -> str:
    """What the viewer is told when a change is refused (translated; data stays as it is)."""
    t = viewer.t
    if isinstance(error, ValidationError):
        fields = {str(e["loc"][0]) for e in error.errors() if e["loc"]}
        if "device_id" in fields:
            return t(
                "Device ID: 3 to 64 letters, digits, '-' or '_', starting with a letter or digit"
            )
        if "name" in fields:
            return t("Name: at most 200 characters")
        return f"{t('Refused')}: {error.errors()[0]['msg']}"
    if isinstance(error, Conflict) and error.field == "device_id":
        return t("Device ID {device} is already taken").format(device=device_id)
    if isinstance(error, NotFound):
        missing = {
            "profile_id": "The profile was not found",
            "machine_id": "The machine was not found",
        }
        return t(missing.get(error.field or "", "The device was not found"))
    if isinstance(error, Forbidden):
        return t("Your role may not change devices")
    return f"{t('Refused')}: {error.detail}"


@dataclass
class _Row:
    status: ui.badge
    last_seen: ui.label
    status_key: str


@dataclass(frozen=True)
class _DeviceView:
    id: str
    name: str
    profile: str
    machine: str
    revoked: bool
    online: bool
    last_seen_at: datetime | None

    @property
    def status(self) -> str:
        return "Revoked" if self.revoked else "Online" if self.online else "Offline"


@dataclass(frozen=True)
class _Directory:
    """What the page lists and offers: devices, profiles, machines (all of the viewer's scope)."""

    devices: list[_DeviceView]
    profiles: list[DeviceProfile]
    machines: dict[int, str]


GRID = "grid gap-x-3 items-center"
GRID_COLUMNS = "grid-template-columns: 1.3fr 1.3fr 1.3fr 1.5fr 0.8fr 1.2fr 1fr"
STATUS_COLOURS = {"Online": "positive", "Offline": "grey-6", "Revoked": "negative"}


class DevicesPage:
    def __init__(self, console: Console, viewer: Viewer) -> None:
        self.console, self.viewer = console, viewer
        self.t = viewer.t
        self.rows: dict[str, _Row] = {}
        self.shape: tuple[tuple[object, ...], ...] = ()
        self.device_filter = ""
        self.directory = _Directory([], [], {})

    # --- reading ---------------------------------------------------------------------------------

    def _read(self) -> _Directory:
        runtime = self.console.runtime
        principal = self.viewer.principal
        with session_scope(runtime.sessions) as session:
            profiles = list(devices.list_profiles(session, principal))
            for profile in profiles:
                session.expunge(profile)
            lines = {line.id: line.name for line in list_scoped(session, Line, principal)}
            machines = {
                m.id: f"{lines.get(m.line_id, '')} / {m.name}".strip(" /")
                for m in list_scoped(session, Machine, principal)
            }
            now = utcnow()
            names = {p.id: p.name for p in profiles}
            found = [
                _DeviceView(
                    d.id,
                    d.name,
                    names.get(d.profile_id, str(d.profile_id)),
                    machines.get(d.machine_id, "—") if d.machine_id is not None else "—",
                    d.revoked_at is not None,
                    d.revoked_at is None and devices.is_online(d.last_seen_at, now),
                    d.last_seen_at,
                )
                for d in devices.list_devices(session, principal)
            ]
        return _Directory(found, profiles, dict(sorted(machines.items(), key=lambda i: i[1])))

    def _read_dead_letters(self) -> list[dict[str, object]]:
        runtime = self.console.runtime
        with session_scope(runtime.sessions) as session:
            rows = dead_letters.list_dead_letters(
                session,
                self.viewer.principal,
                device_id=self.device_filter or None,
                limit=DEAD_LETTER_LIMIT,
            )
            return [
                {
                    "id": r.id,
                    "received": self.viewer.local(r.received_at),
                    "device": r.device_id,
                    "reason": self._reason(r.reason),
                    "detail": r.detail[:300],
                    "source": r.source,
                }
                for r in rows
            ]

    def _reason(self, code: str) -> str:
        try:
            return self.t(REASONS[Reason(code)])
        except ValueError:
            return code

    # --- building --------------------------------------------------------------------------------

    async def build(self) -> None:
        t = self.t
        # Dialogs live here, outside the lists that refresh, so that a refresh never closes one.
        self.dialogs = ui.element("div")
        with ui.row().classes("w-full items-center"):
            ui.label(t("Registered devices")).classes("text-xl")
            ui.space()
            self.register_button = ui.button(
                t("Register device"), icon="add", on_click=self._open_register
            ).props('data-testid="register-device"')
        self.device_area = ui.column().classes("w-full gap-0")
        with self.device_area:
            ui.spinner(size="lg")
        ui.label(t("Device profiles")).classes("text-xl mt-4")
        self.profile_area = ui.column().classes("w-full gap-2")
        ui.label(t("Dead letters")).classes("text-xl mt-4")
        ui.label(t("Payloads the platform refused, newest first.")).classes("text-grey-7")
        self.filter_select = (
            ui.select({"": t("All devices")}, value="", label=t("Device ID"))
            .props('dense outlined data-testid="dead-letter-device"')
            .classes("w-64")
            .on_value_change(self._filter_dead_letters)
        )
        self.dead_letter_table = (
            ui.table(
                columns=[
                    {
                        "name": "received",
                        "label": t("Received"),
                        "field": "received",
                        "align": "left",
                    },
                    {"name": "device", "label": t("Device ID"), "field": "device", "align": "left"},
                    {"name": "reason", "label": t("Reason"), "field": "reason", "align": "left"},
                    {"name": "detail", "label": t("Details"), "field": "detail", "align": "left"},
                    {"name": "source", "label": t("Source"), "field": "source", "align": "left"},
                ],
                rows=[],
                row_key="id",
                pagination=10,
            )
            .props(f'flat bordered dense {table_labels(self.viewer)} data-testid="dead-letters"')
            .classes("w-full")
        )
        self.dead_letter_empty = ui.column().classes("w-full")
        await self.refresh()
        self._show_profiles()
        refresh_s = max(self.console.runtime.settings.console_refresh_s, MIN_REFRESH_S)
        ui.timer(refresh_s, self.refresh)

    async def refresh(self) -> None:
        directory = await run.io_bound(self._read)
        letters = await run.io_bound(self._read_dead_letters)
        if directory is None or letters is None:
            return
        self.directory = directory
        self._show_devices(directory.devices)
        self._show_dead_letters(letters)

    def _show_devices(self, found: Sequence[_DeviceView]) -> None:
        shape = tuple((d.id, d.name, d.profile, d.machine, d.revoked) for d in found)
        if shape != self.shape or not self.rows:
            self.shape = shape
            self._build_devices(found)
        for device in found:
            row = self.rows.get(device.id)
            if row is None:
                continue
            if device.status != row.status_key:
                row.status.text = self.t(device.status)
                row.status.props(f"color={STATUS_COLOURS[device.status]}")
                row.status_key = device.status
            row.last_seen.text = self.viewer.local(device.last_seen_at)
        options = {"": self.t("All devices")} | {d.id: d.id for d in found}
        if options != self.filter_select.options:
            self.filter_select.set_options(options, value=self.filter_select.value)

    def _build_devices(self, found: Sequence[_DeviceView]) -> None:
        t = self.t
        self.rows.clear()
        self.device_area.clear()
        with self.device_area:
            if not found:
                empty_state(
                    self.viewer,
                    "No devices yet",
                    "Register a device to connect a machine; its credentials are shown once.",
                )
                return
            with (
                ui.element("div")
                .classes(f"w-full {GRID} px-2 py-1 text-grey-7 text-sm")
                .style(GRID_COLUMNS)
            ):
                for heading in (
                    "Device ID",
                    "Name",
                    "Profile",
                    "Machine",
                    "Status",
                    "Last seen",
                    "Actions",
                ):
                    ui.label(t(heading))
            for device in found:
                with (
                    ui.element("div")
                    .classes(f"w-full {GRID} px-2 py-1 border-t")
                    .style(GRID_COLUMNS)
                    .props(f'data-testid="device-{device.id}"')
                ):
                    ui.label(device.id).classes("font-mono text-sm")
                    ui.label(device.name or "—")
                    ui.label(device.profile)
                    ui.label(device.machine)
                    with ui.element("div"):
                        status = ui.badge(
                            t(device.status), color=STATUS_COLOURS[device.status]
                        ).props(f'data-testid="status-{device.id}"')
                    last_seen = ui.label(self.viewer.local(device.last_seen_at)).classes("text-sm")
                    with ui.row().classes("gap-1"):
                        ui.button(
                            icon="autorenew",
                            on_click=lambda _e, d=device.id: self._confirm_rotate(d),
                        ).props(f'flat dense round data-testid="rotate-{device.id}"').tooltip(
                            t("Rotate secret")
                        )
                        revoke = ui.button(
                            icon="block",
                            on_click=lambda _e, d=device.id: self._confirm_revoke(d),
                        ).props(f'flat dense round color=negative data-testid="revoke-{device.id}"')
                        revoke.tooltip(t("Revoke"))
                        if device.revoked:
                            revoke.disable()
                self.rows[device.id] = _Row(status, last_seen, device.status)

    def _show_profiles(self) -> None:
        t = self.t
        self.profile_area.clear()
        with self.profile_area:
            if not self.directory.profiles:
                empty_state(
                    self.viewer,
                    "No device profiles yet",
                    "A profile lists the tags a kind of device sends; create one through the API.",
                )
                return
            columns = [
                {"name": "tag", "label": t("Tag name"), "field": "tag", "align": "left"},
                {"name": "unit", "label": t("Unit"), "field": "unit", "align": "left"},
                {"name": "type", "label": t("Type"), "field": "type", "align": "left"},
                {"name": "range", "label": t("Range"), "field": "range", "align": "left"},
                {"name": "desc", "label": t("Description"), "field": "desc", "align": "left"},
            ]
            for index, profile in enumerate(self.directory.profiles):
                title = f"{profile.name} · {len(profile.tags)} {t('tags')}"
                with (
                    ui.expansion(title, icon="memory", value=index == 0)
                    .classes("w-full border rounded")
                    .props(f'data-testid="profile-{profile.id}"')
                ):
                    if profile.description:
                        ui.label(profile.description).classes("text-grey-7")
                    ui.table(
                        columns=columns,
                        rows=[self._tag_row(tag) for tag in profile.tags],
                        row_key="tag",
                        pagination=0,
                    ).props(f"flat dense hide-bottom {table_labels(self.viewer)}").classes("w-full")

    def _tag_row(self, tag: ProfileTag) -> dict[str, object]:
        english, chinese = tag.description_en, tag.description_zh
        description = (chinese or english) if self.viewer.language == "zh-CN" else english
        low, high = tag.min_value, tag.max_value
        return {
            "tag": tag.name,
            "unit": tag.unit or "—",
            "type": self.t(tag.data_type) if tag.data_type in TAG_TYPES else tag.data_type,
            "range": _range(low, high),
            "desc": description or chinese or "—",
        }

    def _show_dead_letters(self, rows: list[dict[str, object]]) -> None:
        if rows != self.dead_letter_table.rows:
            self.dead_letter_table.rows = rows
        self.dead_letter_table.set_visibility(bool(rows))
        if bool(rows) == bool(self.dead_letter_empty.default_slot.children):
            self.dead_letter_empty.clear()
            if not rows:
                with self.dead_letter_empty:
                    empty_state(
                        self.viewer,
                        "No dead letters",
                        "Rejected payloads appear here with the reason, so that a device can be "
                        "fixed.",
                    )

    async def _filter_dead_letters(self) -> None:
        self.device_filter = str(self.filter_select.value or "")
        letters = await run.io_bound(self._read_dead_letters)
        if letters is not None:
            self._show_dead_letters(letters)

    # --- changing --------------------------------------------------------------------------------

    def _change(self, action: Callable[[], Done], device_id: str = "") -> Done | None:
        """Run a change, telling the viewer why it was refused; the result, or None if refused."""
        try:
            return action()
        except (ClusterBrainError, ValidationError) as error:
            text = problem_text(self.viewer, error, device_id)
            ui.notify(text, type="negative", multi_line=True)
            return None

    def _open_register(self) -> None:
        t = self.t
        profiles = {p.id: p.name for p in self.directory.profiles}
        machines: dict[int, str] = {0: t("No machine")} | self.directory.machines
        with self.dialogs, ui.dialog() as dialog, ui.card().classes("w-[32rem] gap-2"):
            ui.label(t("Register device")).classes("text-lg font-semibold")
            device_id = (
                ui.input(t("Device ID"), placeholder=t("Leave empty to generate one"))
                .props('data-testid="new-device-id"')
                .classes("w-full")
            )
            name = ui.input(t("Name")).props('data-testid="new-device-name"').classes("w-full")
            profile = (
                ui.select(profiles, value=next(iter(profiles), None), label=t("Profile"))
                .props('data-testid="new-device-profile"')
                .classes("w-full")
            )
            machine = (
                ui.select(machines, value=0, label=t("Machine"))
                .props('data-testid="new-device-machine"')
                .classes("w-full")
            )

            async def submit() -> None:
                if profile.value is None:
                    ui.notify(t("Choose a device profile"), type="negative")
                    return
                wanted = str(device_id.value or "").strip()
                credentials = self._change(
                    lambda: self._register(
                        wanted,
                        str(name.value or "").strip(),
                        int(profile.value),
                        int(machine.value or 0),
                    ),
                    wanted,
                )
                if credentials is not None:
                    dialog.close()
                    self._show_credentials(credentials, t("Device registered"))
                    await self.refresh()

            with ui.row().classes("w-full justify-end"):
                ui.button(t("Cancel"), on_click=dialog.close).props("flat")
                ui.button(t("Register"), on_click=submit).props('data-testid="register-submit"')
        dialog.on("hide", dialog.delete)
        dialog.open()

    def _register(
        self, device_id: str, name: str, profile_id: int, machine_id: int
    ) -> schemas.DeviceCredentials:
        runtime = self.console.runtime
        data = schemas.DeviceIn(
            profile_id=profile_id,
            machine_id=machine_id or None,
            name=name,
            device_id=device_id or None,
        )
        with session_scope(runtime.sessions) as session:
            device, secret = devices.register_device(
                session, self.viewer.principal, data, runtime.broker_auth
            )
            runtime.directory.invalidate(device.id)
            profile = devices.get_profile(session, self.viewer.principal, device.profile_id)
            return credentials_of(device, secret, profile, runtime.settings)

    def _rotate(self, device_id: str) -> schemas.DeviceCredentials:
        runtime = self.console.runtime
        principal = self.viewer.principal
        with session_scope(runtime.sessions) as session:
            device, secret = devices.rotate_secret(
                session, principal, device_id, runtime.broker_auth
            )
            runtime.directory.invalidate(device_id)
            profile = devices.get_profile(session, principal, device.profile_id)
            return credentials_of(device, secret, profile, runtime.settings)

    def _revoke(self, device_id: str) -> bool:
        runtime = self.console.runtime
        with session_scope(runtime.sessions) as session:
            devices.revoke_device(session, self.viewer.principal, device_id, runtime.broker_auth)
        runtime.directory.invalidate(device_id)
        return True

    def _confirm(self, question: str, confirm: str, action: Callable[[], Awaitable[None]]) -> None:
        t = self.t
        with self.dialogs, ui.dialog() as dialog, ui.card().classes("w-96"):
            ui.label(question)
            with ui.row().classes("w-full justify-end"):
                ui.button(t("Cancel"), on_click=dialog.close).props("flat")

                async def go() -> None:
                    dialog.close()
                    await action()

                ui.button(confirm, on_click=go).props('color=negative data-testid="confirm"')
        dialog.on("hide", dialog.delete)
        dialog.open()

    def _confirm_rotate(self, device_id: str) -> None:
        async def rotate() -> None:
            credentials = self._change(lambda: self._rotate(device_id), device_id)
            if credentials is not None:
                self._show_credentials(credentials, self.t("New secret issued"))
                await self.refresh()

        question = self.t("Issue a new secret for {device}? The old secret stops working at once.")
        self._confirm(question.format(device=device_id), self.t("Rotate secret"), rotate)

    def _confirm_revoke(self, device_id: str) -> None:
        async def revoke() -> None:
            if self._change(lambda: self._revoke(device_id), device_id):
                ui.notify(self.t("{device} is revoked").format(device=device_id))
            await self.refresh()

        question = self.t(
            "Revoke {device}? It can no longer send data until a new secret is issued."
        )
        self._confirm(question.format(device=device_id), self.t("Revoke"), revoke)

    def _show_credentials(self, credentials: schemas.DeviceCredentials, title: str) -> None:
        """The secret, once: the dialog is emptied and removed when it closes."""
        t = self.t
        mqtt = credentials.mqtt
        settings = "\n".join(
            (
                f"host: {mqtt.host}",
                f"port: {mqtt.port}",
                f"username: {mqtt.username}",
                f"password: {credentials.secret}",
                f"client_id: {mqtt.client_id}",
                f"telemetry_topic: {mqtt.telemetry_topic}",
                f"commands_topic: {mqtt.commands_topic}",
                f"http_ingest: POST {credentials.http_ingest_path}",
                f"http_authorization: Bearer {credentials.secret}",
            )
        )
        payload = json.dumps(credentials.sample_payload, ensure_ascii=False, indent=2)
        with (
            self.dialogs,
            ui.dialog().props("persistent") as dialog,
            ui.card().classes("w-[44rem] max-w-full gap-2").props('data-testid="credentials"'),
        ):
            ui.label(f"{title}: {credentials.device.id}").classes("text-lg font-semibold")
            with ui.row().classes("w-full items-start no-wrap bg-amber-1 p-2 rounded"):
                ui.icon("warning", color="warning")
                ui.label(
                    t(
                        "Copy the secret now: it is shown only this once. Only a hash is kept; "
                        "if the secret is lost, rotate it to issue a new one."
                    )
                )
            with ui.row().classes("w-full items-center"):
                ui.label(t("Secret")).classes("font-semibold")
                ui.label(credentials.secret).classes("font-mono text-base").props(
                    'data-testid="secret"'
                )
            ui.label(t("Connection settings")).classes("font-semibold")
            ui.code(settings, language="yaml").classes("w-full").props(
                'data-testid="mqtt-settings"'
            )
            ui.label(t("Sample payload")).classes("font-semibold")
            ui.code(payload, language="json").classes("w-full").props(
                'data-testid="sample-payload"'
            )

            def copy() -> None:
                ui.clipboard.write(f"{settings}\n\n{payload}")
                ui.notify(t("Copied"), type="positive")

            def close() -> None:
                dialog.close()
                dialog.clear()

            with ui.row().classes("w-full justify-end"):
                ui.button(t("Copy settings"), icon="content_copy", on_click=copy).props(
                    'flat data-testid="copy-settings"'
                )
                ui.button(t("I have saved the secret"), on_click=close).props(
                    'data-testid="close-credentials"'
                )
        dialog.on("hide", dialog.delete)
        dialog.open()


def _range(low: float | None, high: float | None) -> str:
    """A tag's expected range, without needless ``.0``.

    >>> _range(0.0, 400.0), _range(0.0, None), _range(None, 0.5), _range(None, None)
    ('0 … 400', '≥ 0', '≤ 0.5', '—')
    """
    if low is None and high is None:
        return "—"
    if high is None:
        return f"≥ {low:g}"
    if low is None:
        return f"≤ {high:g}"
    return f"{low:g} … {high:g}"
