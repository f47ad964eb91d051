"""Edge gateways (边缘网关): each gateway's health and the field devices behind it, live; commands
to the field devices' writable tags (``ui.commands``) and OPC UA discovery (``ui.discovery``).

A gateway is a device that other devices name as their gateway, or whose profile has the
gateway's health tags (``HEALTH_TAGS``); its health is the telemetry store's latest values of
those tags. Every read goes through the tenant-scoped services with the viewer's principal, so
another enterprise's gateway answers "not found", even by URL.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from nicegui import run, ui

from clusterbrain.api.runtime import Runtime
from clusterbrain.connectors.gateway.runner import HEALTH_TAGS
from clusterbrain.devices import service as devices
from clusterbrain.devices.spec import TagKind
from clusterbrain.platform.db import session_scope, utcnow
from clusterbrain.platform.tenancy import Principal
from clusterbrain.ui.commands import CommandPanel, WritableTag
from clusterbrain.ui.context import Console, Viewer
from clusterbrain.ui.discovery import DiscoveryDialog
from clusterbrain.ui.layout import empty_state, frame, page

TEXT = {
    "Edge gateways": "边缘网关",
    "Edge gateway": "边缘网关",
    "No edge gateways yet": "还没有边缘网关",
    "Register a device for the gateway and name it as the gateway of the field devices it "
    "reads; its health appears here.": (
        "为网关注册一个设备，并在它读取的现场设备上将其设为网关；网关运行状态会显示在这里。"
    ),
    "Gateway not found": "未找到网关",
    "It does not exist or belongs to another enterprise.": "它不存在或属于其他企业。",
    "All gateways": "全部网关",
    "Online": "在线",
    "Offline": "离线",
    "Revoked": "已停用",
    "Last seen": "最后上报",
    "Health reported": "状态上报时间",
    "No health reported yet": "尚未收到网关运行状态",
    "Values read": "已读取数值",
    "Read errors": "读取错误",
    "Field reconnects": "现场重连次数",
    "Field connections": "现场连接",
    "Uplink reconnects": "上行重连次数",
    "Spool size": "缓存大小",
    "Waiting in the spool": "缓存待发送",
    "Dropped (spool full)": "丢弃（缓存已满）",
    "Commands (failed)": "指令（失败）",
    "Field devices behind this gateway": "该网关下的现场设备",
    "No field devices behind this gateway": "该网关下还没有现场设备",
    "Device ID": "设备编号",
    "Name": "名称",
    "Profile": "设备模板",
    "Status": "状态",
    "Actions": "操作",
    "Send a command": "下发指令",
}

HEALTH = (
    ("reads", "Values read"),
    ("errors", "Read errors"),
    ("reconnects", "Field reconnects"),
    ("sources_connected", "Field connections"),
    ("uplink_reconnects", "Uplink reconnects"),
    ("spool_bytes", "Spool size"),
    ("spool_pending", "Waiting in the spool"),
    ("spool_dropped", "Dropped (spool full)"),
    ("commands", "Commands (failed)"),
)
"""The tiles of a gateway's health: the store's tag (key) and the tile's label."""
STATUS_COLOURS = {"Online": "positive", "Offline": "grey-6", "Revoked": "negative"}
MIN_REFRESH_S = 2.0


# --- pure helpers -------------------------------------------------------------------------------


def number_text(value: float) -> str:
    """A counter for a tile: whole numbers with thousands separators.

    >>> number_text(1234567.0), number_text(3.25), number_text(float("nan"))
    ('1,234,567', '3.25', '—')
    """
    if not math.isfinite(value):
        return "—"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:g}"


def size_text(size: float) -> str:
    """Bytes for people.

    >>> size_text(0), size_text(2048), size_text(5_300_000), size_text(3.2e9)
    ('0 B', '2 kB', '5.1 MB', '3 GB')
    """
    for unit in ("B", "kB", "MB"):
        if size < 1024:
            return f"{round(size, 1):g} {unit}"
        size /= 1024
    return f"{round(size, 1):g} GB"


def health_text(key: str, health: Mapping[str, float]) -> str:
    """What a health tile shows; '—' for what the gateway has not reported.

    >>> health = {"sources_connected": 1.0, "sources": 2.0, "commands": 4.0,
    ...           "commands_failed": 1.0, "spool_bytes": 4096.0}
    >>> [health_text(k, health) for k in ("sources_connected", "commands", "spool_bytes", "reads")]
    ['1 / 2', '4 (1)', '4 kB', '—']
    """
    value = health.get(key)
    if value is None:
        return "—"
    if key == "sources_connected":
        return f"{number_text(value)} / {number_text(health.get('sources', math.nan))}"
    if key == "commands":
        return f"{number_text(value)} ({number_text(health.get('commands_failed', 0.0))})"
    if key == "spool_bytes":
        return size_text(value)
    return number_text(value)


# --- reads --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldView:
    id: str
    name: str
    profile: str
    status: str
    last_seen_at: datetime | None
    writable: bool


@dataclass(frozen=True, slots=True)
class GatewayView:
    id: str
    name: str
    status: str
    last_seen_at: datetime | None
    health: dict[str, float]
    reported_at: datetime | None
    fields: tuple[FieldView, ...]


@dataclass(frozen=True, slots=True)
class Board:
    gateways: list[GatewayView]
    writable: dict[str, list[WritableTag]]
    """Devices (of the board) with writable tags → those tags."""
    labels: dict[str, str]


def _status(revoked: bool, last_seen_at: datetime | None, now: datetime) -> str:
    if revoked:
        return "Revoked"
    return "Online" if devices.is_online(last_seen_at, now) else "Offline"


def read_board(runtime: Runtime, principal: Principal, only: str | None = None) -> Board:
    """The viewer's gateways (or the one named ``only``) with health, field devices, tags."""
    health_tags = frozenset(HEALTH_TAGS)
    with session_scope(runtime.sessions) as session:
        found = list(devices.list_devices(session, principal))
        profiles = list(devices.list_profiles(session, principal))
        names = {p.id: p.name for p in profiles}
        tag_names = {p.id: {t.name for t in p.tags} for p in profiles}
        writable = {
            p.id: [
                WritableTag(t.name, TagKind(t.data_type), t.min_value, t.max_value, t.unit)
                for t in p.tags
                if t.writable
            ]
            for p in profiles
        }
        now = utcnow()
        ids = {d.id for d in found}
        gateway_ids = {d.gateway_id for d in found if d.gateway_id in ids} | {
            d.id for d in found if health_tags <= tag_names.get(d.profile_id, set())
        }
        if only is not None:
            gateway_ids &= {only}
        behind: dict[str, list[FieldView]] = {gateway: [] for gateway in gateway_ids}
        for d in found:
            if d.gateway_id in behind:
                behind[d.gateway_id].append(
                    FieldView(
                        d.id,
                        d.name,
                        names.get(d.profile_id, ""),
                        _status(d.revoked_at is not None, d.last_seen_at, now),
                        d.last_seen_at,
                        bool(writable.get(d.profile_id)),
                    )
                )
        shown = [d for d in found if d.id in gateway_ids]
        commandable = {
            d.id: writable[d.profile_id]
            for d in found
            if writable.get(d.profile_id) and (only is None or d.gateway_id == only or d.id == only)
        }
        labels = {d.id: f"{d.name} ({d.id})" if d.name else d.id for d in found}
        heads = [
            (d.id, d.name, _status(d.revoked_at is not None, d.last_seen_at, now), d.last_seen_at)
            for d in shown
        ]
    latest = runtime.store.latest_many(sorted(gateway_ids), list(HEALTH_TAGS)) if heads else []
    health: dict[str, dict[str, float]] = {gateway: {} for gateway in gateway_ids}
    reported: dict[str, datetime] = {}
    for value in latest:
        if value.value is not None and value.device_id in health:
            health[value.device_id][value.tag] = float(value.value)
            if value.device_id not in reported or value.ts > reported[value.device_id]:
                reported[value.device_id] = value.ts
    gateways = [
        GatewayView(
            gateway,
            name,
            status,
            last_seen,
            health[gateway],
            reported.get(gateway),
            tuple(behind[gateway]),
        )
        for gateway, name, status, last_seen in heads
    ]
    return Board(gateways, commandable, labels)


# --- the pages ----------------------------------------------------------------------------------


def register(console: Console) -> None:
    @page("/gateways")
    async def gateways_page(device: str = "") -> None:
        viewer = console.viewer()
        if viewer is None:
            ui.navigate.to("/login")
            return
        with frame(viewer, viewer.t("Edge gateways")):
            await GatewaysPage(console, viewer, None, device).build()

    @page("/gateways/{gateway_id}")
    async def gateway_page(gateway_id: str, device: str = "") -> None:
        viewer = console.viewer()
        if viewer is None:
            ui.navigate.to("/login")
            return
        with frame(viewer, viewer.t("Edge gateway")):
            ui.link(f"← {viewer.t('All gateways')}", "/gateways").props(
                'data-testid="back-to-gateways"'
            )
            await GatewaysPage(console, viewer, gateway_id, device).build()


@dataclass
class _Tiles:
    status: ui.badge
    status_key: str
    last_seen: ui.label
    reported: ui.label
    values: dict[str, ui.label] = field(default_factory=dict)
    fields: dict[str, tuple[ui.badge, ui.label, list[str]]] = field(default_factory=dict)


class GatewaysPage:
    def __init__(self, console: Console, viewer: Viewer, only: str | None, device: str) -> None:
        self.console, self.viewer, self.only = console, viewer, only
        self.t = viewer.t
        self.tiles: dict[str, _Tiles] = {}
        self.shape: tuple[object, ...] = ()
        self.board = Board([], {}, {})
        self.wanted_device = device

    async def build(self) -> None:
        t = self.t
        self.dialogs = ui.element("div")
        with ui.row().classes("w-full items-center"):
            ui.space()
            ui.button(
                t("Discover OPC UA server"), icon="travel_explore", on_click=self._discover
            ).props('outline data-testid="discovery-open"')
        self.area = ui.column().classes("w-full gap-4")
        with self.area:
            ui.spinner(size="lg")
        self.commands = CommandPanel(self.console, self.viewer)
        await self.refresh()
        if self.board.gateways or self.only is None:
            await self.commands.build(self.board.writable, self.board.labels, self.wanted_device)
        refresh_s = max(self.console.runtime.settings.console_refresh_s, MIN_REFRESH_S)
        ui.timer(refresh_s, self.refresh)

    async def refresh(self) -> None:
        runtime, principal = self.console.runtime, self.viewer.principal
        board = await run.io_bound(read_board, runtime, principal, self.only)
        if board is None:
            return
        self.board = board
        self._show(board)
        self.commands.update_devices(board.writable, board.labels)

    def _discover(self) -> None:
        with self.dialogs:
            DiscoveryDialog(self.console, self.viewer).open()

    # --- gateways -------------------------------------------------------------------------------

    def _show(self, board: Board) -> None:
        shape = tuple(
            (g.id, g.name, tuple((f.id, f.name, f.profile, f.writable) for f in g.fields))
            for g in board.gateways
        )
        if shape != self.shape or not self.tiles:
            self.shape = shape
            self._build(board.gateways)
        for gateway in board.gateways:
            tiles = self.tiles.get(gateway.id)
            if tiles is None:
                continue
            self._set_status(tiles.status, gateway.status, tiles.status_key)
            tiles.status_key = gateway.status
            tiles.last_seen.text = self.viewer.local(gateway.last_seen_at)
            tiles.reported.text = self.viewer.local(gateway.reported_at)
            for key, label in tiles.values.items():
                label.text = health_text(key, gateway.health)
            for device in gateway.fields:
                row = tiles.fields.get(device.id)
                if row is not None:
                    badge, last_seen, shown = row
                    self._set_status(badge, device.status, shown[0])
                    shown[0] = device.status
                    last_seen.text = self.viewer.local(device.last_seen_at)

    def _set_status(self, badge: ui.badge, status: str, shown: str) -> None:
        if status != shown:
            badge.text = self.t(status)
            badge.props(f"color={STATUS_COLOURS[status]}")

    def _build(self, gateways: Sequence[GatewayView]) -> None:
        self.tiles.clear()
        self.area.clear()
        with self.area:
            if not gateways:
                if self.only is not None:
                    empty_state(
                        self.viewer,
                        "Gateway not found",
                        "It does not exist or belongs to another enterprise.",
                    )
                else:
                    empty_state(
                        self.viewer,
                        "No edge gateways yet",
                        "Register a device for the gateway and name it as the gateway of the "
                        "field devices it reads; its health appears here.",
                    )
                return
            for gateway in gateways:
                self._build_gateway(gateway)

    def _build_gateway(self, gateway: GatewayView) -> None:
        t = self.t
        with ui.card().classes("w-full gap-3").props(f'data-testid="gateway-{gateway.id}"'):
            with ui.row().classes("w-full items-center gap-3"):
                ui.icon("router", size="md").classes("text-primary")
                ui.link(gateway.id, f"/gateways/{gateway.id}").classes(
                    "text-lg font-mono font-semibold"
                ).props(f'data-testid="gateway-link-{gateway.id}"')
                if gateway.name:
                    ui.label(gateway.name).classes("text-grey-8")
                status = ui.badge(t(gateway.status), color=STATUS_COLOURS[gateway.status]).props(
                    f'data-testid="gateway-status-{gateway.id}"'
                )
                ui.space()
                ui.label(t("Last seen")).classes("text-grey-7 text-sm")
                last_seen = ui.label(self.viewer.local(gateway.last_seen_at)).classes("text-sm")
                ui.label(t("Health reported")).classes("text-grey-7 text-sm")
                reported = ui.label(self.viewer.local(gateway.reported_at)).classes("text-sm")
            tiles = _Tiles(status, gateway.status, last_seen, reported)
            with (
                ui.element("div")
                .classes("w-full grid gap-2")
                .style("grid-template-columns: repeat(auto-fill, minmax(7.5rem, 1fr))")
            ):
                for key, label in HEALTH:
                    with (
                        ui.column()
                        .classes("gap-0 bg-grey-2 rounded p-2")
                        .props(f'data-testid="health-{gateway.id}-{key}"')
                    ):
                        ui.label(t(label)).classes("text-grey-7 text-xs")
                        tiles.values[key] = ui.label(health_text(key, gateway.health)).classes(
                            "text-lg font-semibold"
                        )
            if not gateway.health:
                ui.label(t("No health reported yet")).classes("text-grey-7")
            ui.label(t("Field devices behind this gateway")).classes("font-semibold")
            self._build_fields(gateway, tiles)
        self.tiles[gateway.id] = tiles

    def _build_fields(self, gateway: GatewayView, tiles: _Tiles) -> None:
        t = self.t
        if not gateway.fields:
            ui.label(t("No field devices behind this gateway")).classes("text-grey-7")
            return
        columns = "grid-template-columns: 1.4fr 1.4fr 1.4fr 0.8fr 1.2fr 0.8fr"
        grid = "w-full grid gap-x-3 items-center"
        with ui.element("div").classes(f"{grid} px-2 text-grey-7 text-sm").style(columns):
            for heading in ("Device ID", "Name", "Profile", "Status", "Last seen", "Actions"):
                ui.label(t(heading))
        for device in gateway.fields:
            with (
                ui.element("div")
                .classes(f"{grid} px-2 py-1 border-t")
                .style(columns)
                .props(f'data-testid="field-{device.id}"')
            ):
                ui.label(device.id).classes("font-mono text-sm")
                ui.label(device.name or "—")
                ui.label(device.profile or "—")
                with ui.element("div"):
                    badge = ui.badge(t(device.status), color=STATUS_COLOURS[device.status]).props(
                        f'data-testid="field-status-{device.id}"'
                    )
                last_seen = ui.label(self.viewer.local(device.last_seen_at)).classes("text-sm")
                with ui.element("div"):
                    if device.writable:
                        ui.button(
                            icon="tune",
                            on_click=lambda _e, d=device.id: self.commands.choose(d),
                        ).props(f'flat dense round data-testid="command-{device.id}"').tooltip(
                            t("Send a command")
                        )
            tiles.fields[device.id] = (badge, last_seen, [device.status])
