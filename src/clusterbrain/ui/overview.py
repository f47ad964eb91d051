"""Overview (总览): this shift's and today's OEE, every machine coloured by state, open alarms."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

from nicegui import run, ui

from clusterbrain.platform.db import session_scope
from clusterbrain.production import alarm_api, live
from clusterbrain.production.alarm_api import AlarmOut
from clusterbrain.production.alarms import AlarmState, Priority
from clusterbrain.production.kpi import TimeElements, compute_kpis
from clusterbrain.production.states import MachineState
from clusterbrain.ui.alarms import PRIORITIES, STATES
from clusterbrain.ui.context import Console, Viewer
from clusterbrain.ui.layout import empty_state, frame, page

TEXT = {
    "This shift": "本班次",
    "Site / line": "厂区 / 产线",
    "Today": "今日",
    "Enterprise": "企业",
    "Machines": "设备",
    "Open alarms": "未关闭报警",
    "No open alarms": "没有未关闭的报警",
    "Alarms appear here when a rule fires.": "报警规则触发后会显示在这里。",
    "No machines yet": "还没有设备",
    "Register a device and bind it to a machine to see it here.": "注册设备并绑定到机台后即可在这里看到。",
    "No shift planned now": "当前没有计划班次",
    "since": "起",
    "Cycle time": "节拍",
    "Good parts": "良品数",
    "Availability": "可用率",
    "Performance": "性能率",
    "Quality": "质量率",
    "OEE": "OEE",
    "running": "运行",
    "idle": "空闲",
    "unplanned_down": "故障停机",
    "planned_stop": "计划停机",
    "setup": "换型调试",
    "offline": "离线",
    "Line": "产线",
    "Site": "厂区",
}

KPI_REFRESH_S = 30.0
ALARM_REFRESH_S = 5.0

STATE_COLOURS = {
    MachineState.RUNNING: "bg-green-6 text-white",
    MachineState.IDLE: "bg-amber-5 text-black",
    MachineState.UNPLANNED_DOWN: "bg-red-7 text-white",
    MachineState.PLANNED_STOP: "bg-blue-grey-4 text-white",
    MachineState.SETUP: "bg-indigo-5 text-white",
    MachineState.OFFLINE: "bg-grey-5 text-black",
}


def percent(value: float | None) -> str:
    """A ratio as a percentage for display.

    >>> percent(0.7917), percent(None)
    ('79.2 %', '—')
    """
    return "—" if value is None else f"{value * 100:.1f} %"


def register(console: Console) -> None:
    @page("/")
    async def overview_page() -> None:
        viewer = console.viewer()
        if viewer is None:
            ui.navigate.to("/login")
            return
        with frame(viewer, viewer.t("Overview")):
            kpi_area = ui.row().classes("w-full gap-4").props('data-testid="kpis"')
            with kpi_area:
                ui.spinner(size="lg")
            ui.label(viewer.t("Machines")).classes("text-xl")
            grid = MachineGrid(console, viewer)
            await grid.build()
            ui.label(viewer.t("Open alarms")).classes("text-xl")
            alarms_area = ui.column().classes("w-full")
            with alarms_area:
                ui.spinner(size="lg")
            open_alarms = OpenAlarms(console, viewer, alarms_area)
            # The grid answers the first response; alarms and KPIs arrive through their timers,
            # which start once the browser is connected.
            ui.timer(console.runtime.settings.console_refresh_s, grid.update, immediate=False)
            ui.timer(ALARM_REFRESH_S, open_alarms.refresh)
            ui.timer(KPI_REFRESH_S, lambda: _kpis(console, viewer, kpi_area))


@dataclass
class _Tile:
    element: ui.html
    colour: str


TILE_CLASSES = "q-card nicegui-card p-2 gap-0 cursor-pointer"


class MachineGrid:
    """One tile per machine, updated in place (no re-render) when a refresh arrives.

    A tile is a single element whose HTML is written here (every text escaped): NiceGUI builds
    each element with several observers, and a card of five labels per machine made the page
    of a few hundred machines slow to build and to mount in the browser. A refresh sends only
    the tiles whose text or colour changed.
    """

    def __init__(self, console: Console, viewer: Viewer) -> None:
        self.console, self.viewer = console, viewer
        self.tiles: dict[int, _Tile] = {}
        self.machines: list[live.Watched] | None = None

    def _read(self) -> list[live.MachineStatus]:
        runtime = self.console.runtime
        if self.machines is None:
            with session_scope(runtime.sessions) as session:
                self.machines = live.watched_machines(session, self.viewer.principal)
        return live.machine_statuses(runtime.store, self.machines, datetime.now(UTC))

    async def build(self) -> None:
        statuses = await run.io_bound(self._read) or []
        if not statuses:
            empty_state(
                self.viewer,
                "No machines yet",
                "Register a device and bind it to a machine to see it here.",
            )
            return
        with (
            ui.element("div")
            .classes("w-full grid gap-2 grid-cols-2 sm:grid-cols-3 md:grid-cols-4 lg:grid-cols-6")
            .props('data-testid="tiles"')
        ):
            for status in statuses:
                colour = STATE_COLOURS[status.state]
                element = (
                    ui.html(self._content(status), sanitize=False)
                    .classes(f"{TILE_CLASSES} {colour}")
                    .props(f'data-testid="machine-{status.machine_id}"')
                    .on("click", lambda _e, m=status.machine_id: ui.navigate.to(f"/machines/{m}"))
                )
                self.tiles[status.machine_id] = _Tile(element, colour)

    def _content(self, status: live.MachineStatus) -> str:
        return tile_html(
            status.machine_id,
            status.name,
            self.viewer.t(status.state.value),
            f"{self.viewer.t('since')} {self.viewer.local(status.since, '%H:%M')}",
            cycle_text(self.viewer, status),
            good_text(self.viewer, status),
        )

    def _show(self, status: live.MachineStatus) -> None:
        tile = self.tiles.get(status.machine_id)
        if tile is None:
            return
        colour = STATE_COLOURS[status.state]
        if colour != tile.colour:
            tile.element.classes(remove=tile.colour, add=colour)
            tile.colour = colour
        tile.element.content = self._content(status)  # sent only when it changed

    async def update(self) -> None:
        if not self.tiles:
            return
        for status in await run.io_bound(self._read) or []:
            self._show(status)


def tile_html(machine_id: int, name: str, state: str, since: str, cycle: str, good: str) -> str:
    """A machine tile's lines, every text escaped (names come from users).

    >>> tile_html(7, "A&B", "运行", "起 08:00", "节拍: 12.0 s", "良品数: 3")[:63]
    '<div class="font-bold">A&amp;B</div><div data-testid="state-7">'
    """
    lines = [f'<div class="font-bold">{escape(name)}</div>']
    lines.append(f'<div data-testid="state-{machine_id}">{escape(state)}</div>')
    lines.extend(f'<div class="text-xs">{escape(text)}</div>' for text in (since, cycle, good))
    return "".join(lines)


def cycle_text(viewer: Viewer, status: live.MachineStatus) -> str:
    cycle = "—" if status.cycle_time_s is None else f"{status.cycle_time_s:.1f} s"
    return f"{viewer.t('Cycle time')}: {cycle}"


def good_text(viewer: Viewer, status: live.MachineStatus) -> str:
    good = status.values.get("good_count", status.values.get("part_count"))
    return f"{viewer.t('Good parts')}: {'—' if good is None else f'{good:.0f}'}"


class OpenAlarms:
    """The ten most urgent alarms that are not back to normal; re-rendered only when they change."""

    def __init__(self, console: Console, viewer: Viewer, area: ui.column) -> None:
        self.console, self.viewer, self.area = console, viewer, area
        self.shown: list[tuple[int, str, str, str, str]] | None = None

    def _read(self) -> list[AlarmOut]:
        with session_scope(self.console.runtime.sessions) as session:
            found = alarm_api.list_alarms(session, self.viewer.principal)
        return sorted(found, key=lambda a: Priority(a.priority).rank)[:10]

    async def refresh(self) -> None:
        alarms = await run.io_bound(self._read) or []
        rows = [(a.id, a.priority, a.state, a.rule_name, a.message or "") for a in alarms]
        if rows == self.shown:
            return
        self.shown = rows
        t = self.viewer.t
        self.area.clear()
        with self.area:
            if not rows:
                empty_state(self.viewer, "No open alarms", "Alarms appear here when a rule fires.")
                return
            for alarm_id, priority, state, rule_name, message in rows:
                priority_label, priority_colour = PRIORITIES[Priority(priority)]
                state_label, state_colour = STATES[AlarmState(state)]
                with (
                    ui.row().classes("w-full items-center gap-4").props('data-testid="open-alarm"')
                ):
                    ui.badge(t(priority_label)).props(f"color={priority_colour}")
                    ui.badge(t(state_label)).props(f"outline color={state_colour}")
                    ui.link(rule_name, f"/alarms/{alarm_id}").classes("font-medium")
                    ui.label(message).classes("text-grey-7")


async def _kpis(console: Console, viewer: Viewer, area: ui.row) -> None:
    runtime = console.runtime
    principal = viewer.principal

    def read() -> live.ScopeKpis:
        with session_scope(runtime.sessions) as session:
            return live.scope_kpis(session, runtime.store, principal, datetime.now(UTC))

    # the same figures for everyone who sees the same machines, computed once per refresh
    key = ("scope_kpis", principal.role, principal.enterprise_id)
    found = await console.shared.get(key, KPI_REFRESH_S - 1, read)
    if found is None or area.is_deleted:
        return
    area.clear()
    with area:
        for label, elements in (
            ("This shift", found.shift.get("enterprise")),
            ("Today", found.day.get("enterprise")),
        ):
            _kpi_card(viewer, viewer.t(label), elements)
    scopes = sorted(
        (key for key in found.day if key != "enterprise"),
        key=lambda k: (not k.startswith("site:"), found.names.get(k, k)),
    )
    if scopes:
        with area:
            _scope_table(viewer, found, scopes)


def _scope_table(viewer: Viewer, found: live.ScopeKpis, scopes: list[str]) -> None:
    """Sites, then lines: this shift and today, each OEE with its A/P/Q (summed time elements)."""
    t = viewer.t
    columns = [{"name": "scope", "label": t("Site / line"), "field": "scope", "align": "left"}]
    for period in ("shift", "day"):
        prefix = t("This shift") if period == "shift" else t("Today")
        for name in ("OEE", "Availability", "Performance", "Quality"):
            columns.append(
                {
                    "name": f"{period}_{name}",
                    "label": f"{prefix} {t(name)}",
                    "field": f"{period}_{name}",
                }
            )
    rows = []
    for key in scopes:
        row: dict[str, str] = {"scope": found.names.get(key, key)}
        for period, table in (("shift", found.shift), ("day", found.day)):
            elements = table.get(key)
            kpis = compute_kpis(elements) if elements is not None else None
            values = (
                (kpis.oee, kpis.availability, kpis.effectiveness, kpis.quality_ratio)
                if kpis
                else (None,) * 4
            )
            for name, value in zip(
                ("OEE", "Availability", "Performance", "Quality"), values, strict=True
            ):
                row[f"{period}_{name}"] = percent(value)
        rows.append(row)
    ui.table(columns=columns, rows=rows, row_key="scope").classes("w-full").props(
        'flat bordered dense hide-pagination data-testid="scope-kpis"'
    )


def _kpi_card(
    viewer: Viewer, title: str, elements: TimeElements | None, *, small: bool = False
) -> None:
    t = viewer.t
    with ui.card().classes("p-3 min-w-48").props('data-testid="kpi-card"'):
        ui.label(title).classes("text-grey-7")
        if elements is None:
            ui.label(t("No shift planned now"))
            return
        kpis = compute_kpis(elements)
        ui.label(f"{t('OEE')} {percent(kpis.oee)}").classes(
            "text-lg font-bold" if small else "text-3xl font-bold"
        )
        ui.label(
            f"{t('Availability')} {percent(kpis.availability)} · "
            f"{t('Performance')} {percent(kpis.effectiveness)} · "
            f"{t('Quality')} {percent(kpis.quality_ratio)}"
        ).classes("text-xs")
