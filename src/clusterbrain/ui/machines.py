"""One machine (设备详情): live tag values, trends, state timeline, OEE with the six big losses,
stops waiting for a reason and the machine's alarms.

Long trend ranges are read from the store's rollups with a bucket chosen so that about a thousand
points come back (:func:`trend_bucket`); the state timeline is drawn as a coloured strip, merged
into bins when a range holds more state changes than the strip has room for.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from nicegui import run, ui

from clusterbrain.devices import service as device_service
from clusterbrain.devices.models import DeviceProfile
from clusterbrain.platform.db import session_scope
from clusterbrain.platform.errors import Conflict, Forbidden, InvalidInput, NotFound
from clusterbrain.platform.models import Line, Machine
from clusterbrain.platform.service import get_scoped
from clusterbrain.platform.tenancy import Principal
from clusterbrain.production import alarm_api, downtime_service, live, oee_service
from clusterbrain.production import service as production_service
from clusterbrain.production.kpi import KpiSet
from clusterbrain.production.losses import LossStep
from clusterbrain.production.states import MachineState, StateInterval
from clusterbrain.production.stops import Stop
from clusterbrain.telemetry.store import Aggregate, LatestValue
from clusterbrain.ui.context import Console, Viewer
from clusterbrain.ui.layout import empty_state, frame, page
from clusterbrain.ui.overview import STATE_COLOURS, percent

PERFORMANCE_HINT = (
    "Performance above 100 %: the range is short against the cycle time, or the ideal cycle time "
    "is set longer than the machine really needs."
)


TEXT = {
    # shared with the overview (same translations)
    "Overview": "总览",
    "Alarms": "报警",
    "Availability": "可用率",
    "Performance": "性能率",
    "Quality": "质量率",
    "OEE": "OEE",
    "since": "起",
    "Line": "产线",
    "Alarms appear here when a rule fires.": "报警规则触发后会显示在这里。",
    "running": "运行",
    "idle": "空闲",
    "unplanned_down": "故障停机",
    "planned_stop": "计划停机",
    "setup": "换型调试",
    "offline": "离线",
    # this page
    "Machine not found": "未找到设备",
    "This machine does not exist or belongs to another enterprise.": "该设备不存在或属于其他企业。",
    "Back to the overview": "返回总览",
    "Machine kind": "设备类型",
    "Bound device": "绑定的采集设备",
    "Last seen": "最后上报",
    "No device bound": "未绑定采集设备",
    "Bind a device to this machine on the devices page to see its data.": "在设备接入页面为该设备绑定采集设备后即可看到数据。",
    "Live values": "实时数据",
    "Data point": "数据点",
    "Value": "数值",
    "Unit": "单位",
    "Description": "说明",
    "Updated": "更新时间",
    "No values received yet": "尚未收到数据",
    "Trend": "趋势",
    "Tags": "数据点",
    "Past minute": "近1分钟",
    "Past hour": "近1小时",
    "Past 8 h (shift)": "近8小时（班次）",
    "Past 24 h": "近24小时",
    "Past 7 days": "近7天",
    "Past 30 days": "近30天",
    "Past 365 days": "近365天",
    "Raw points": "原始数据点",
    "{n} min buckets": "{n} 分钟聚合",
    "{n} h buckets": "{n} 小时聚合",
    "Points: {n}": "点数：{n}",
    "No data in this range": "该时间段没有数据",
    "State timeline": "状态时间线",
    "OEE and the six big losses": "OEE 与六大损失",
    "Planned busy time": "计划占用时间",
    "Fully productive time": "完全有效生产时间",
    PERFORMANCE_HINT: "性能率超过 100 %：所选时间段相对节拍太短，"
    "或设定的理想节拍比设备实际所需更长。",
    "Breakdowns": "故障停机损失",
    "Setup and adjustments": "换型调整损失",
    "Small stops and idling": "空转与小停机损失",
    "Reduced speed": "速度降低损失",
    "Process defects": "过程缺陷损失",
    "Reduced yield": "开机良率损失",
    "Hours": "小时",
    "Minutes": "分钟",
    "Stops waiting for a reason": "待填写原因的停机",
    "Stops of the past 7 days": "仅显示近7天的停机",
    "No stops waiting for a reason": "没有待填写原因的停机",
    "Stops of 5 minutes or longer appear here so that you can record why.": "5 分钟及以上的停机会显示在这里，请填写停机原因。",
    "Downtime reason": "停机原因",
    "Assign": "提交",
    "Reason saved": "停机原因已保存",
    "Choose a reason first": "请先选择停机原因",
    "Your role may not assign downtime reasons": "您的角色无权填写停机原因",
    "This stop or reason no longer exists; reload the page": "该停机或原因已不存在，请刷新页面",
    "Could not save the reason": "停机原因保存失败",
    "Alarms of this machine": "本设备报警",
    "All alarms": "全部报警",
    "No alarms on this machine": "本设备没有报警",
}

RANGES: tuple[tuple[str, str, timedelta], ...] = (
    ("1min", "Past minute", timedelta(minutes=1)),
    ("1h", "Past hour", timedelta(hours=1)),
    ("8h", "Past 8 h (shift)", timedelta(hours=8)),
    ("1d", "Past 24 h", timedelta(days=1)),
    ("1w", "Past 7 days", timedelta(days=7)),
    ("1mo", "Past 30 days", timedelta(days=30)),
    ("1y", "Past 365 days", timedelta(days=365)),
)
DEFAULT_RANGE = "1h"
MAX_POINTS = 1000
RAW_UP_TO = timedelta(minutes=15)
HOURLY_FROM = timedelta(days=2)
BUCKETS = tuple(timedelta(minutes=m) for m in (1, 2, 5, 10, 15, 30)) + tuple(
    timedelta(hours=h) for h in (1, 2, 3, 6, 12, 24)
)
STOPS_SPAN = timedelta(days=7)  # stops are derived from raw points: keep the scan bounded
STRIP_SEGMENTS = 400
STATE_NAMES = frozenset(state.value for state in MachineState)
PREFERRED_TREND_TAGS = ("cycle_time", "spindle_load", "pressure", "power")
LOSS_NAMES = {
    "breakdowns": "Breakdowns",
    "setup_and_adjustments": "Setup and adjustments",
    "small_stops_and_idling": "Small stops and idling",
    "reduced_speed": "Reduced speed",
    "process_defects": "Process defects",
    "reduced_yield": "Reduced yield",
}
STATE_HEX = {
    MachineState.RUNNING: "#43a047",
    MachineState.IDLE: "#ffc107",
    MachineState.UNPLANNED_DOWN: "#d32f2f",
    MachineState.PLANNED_STOP: "#90a4ae",
    MachineState.SETUP: "#5c6bc0",
    MachineState.OFFLINE: "#9e9e9e",
}


# --- pure helpers ------------------------------------------------------------------------------


def trend_bucket(span: timedelta, max_points: int = MAX_POINTS) -> timedelta | None:
    """The bucket of a trend over ``span``: raw points up to 15 min, then the smallest bucket
    giving at most ``max_points`` points, whole hours from two days on (read from the hourly
    rollup, minute multiples from the minute rollup).

    >>> [trend_bucket(timedelta(minutes=m)) for m in (1, 15)]
    [None, None]
    >>> [str(trend_bucket(timedelta(hours=h))) for h in (1, 8, 24)]
    ['0:01:00', '0:01:00', '0:02:00']
    >>> [str(trend_bucket(timedelta(days=d))) for d in (2, 7, 30, 365)]
    ['1:00:00', '1:00:00', '1:00:00', '12:00:00']
    >>> str(trend_bucket(timedelta(days=3650)))
    '4 days, 0:00:00'
    """
    if span <= RAW_UP_TO:
        return None
    for bucket in BUCKETS:
        if span >= HOURLY_FROM and bucket < timedelta(hours=1):
            continue
        if span / bucket <= max_points:
            return bucket
    days = math.ceil(span / (timedelta(days=1) * max_points))
    return timedelta(days=days)


def bucket_text(bucket: timedelta | None) -> tuple[str, int]:
    """The English label of a bucket (a catalogue key with ``{n}``) and its ``n``.

    >>> bucket_text(None), bucket_text(timedelta(minutes=5)), bucket_text(timedelta(hours=12))
    (('Raw points', 0), ('{n} min buckets', 5), ('{n} h buckets', 12))
    """
    if bucket is None:
        return "Raw points", 0
    minutes = int(bucket.total_seconds() // 60)
    if minutes < 60:
        return "{n} min buckets", minutes
    return "{n} h buckets", minutes // 60


@dataclass(frozen=True, slots=True)
class Segment:
    """A piece of the state strip: ``share`` of the range's width, in ``state``."""

    state: MachineState
    start: datetime
    end: datetime
    share: float


def timeline_segments(
    intervals: Sequence[StateInterval],
    start: datetime,
    end: datetime,
    max_segments: int = STRIP_SEGMENTS,
) -> list[Segment]:
    """The strip of a range: one segment per interval, or, with more intervals than
    ``max_segments``, equal bins each coloured by the state that filled most of it.

    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> ivs = [StateInterval(MachineState.RUNNING, t, t + timedelta(minutes=45)),
    ...        StateInterval(MachineState.IDLE, t + timedelta(minutes=45), t + timedelta(hours=1))]
    >>> [(s.state.value, s.share) for s in timeline_segments(ivs, t, t + timedelta(hours=1))]
    [('running', 0.75), ('idle', 0.25)]
    >>> [(s.state.value, s.share) for s in timeline_segments(ivs, t, t + timedelta(hours=1), 1)]
    [('running', 1.0)]
    """
    total = (end - start).total_seconds()
    clipped = [(i.state, max(i.start, start), min(i.end, end)) for i in intervals if i.end > start]
    clipped = [(s, lo, hi) for s, lo, hi in clipped if hi > lo]
    if total <= 0 or not clipped:
        return []
    if len(clipped) <= max_segments:
        return [Segment(s, lo, hi, (hi - lo).total_seconds() / total) for s, lo, hi in clipped]
    width = (end - start) / max_segments
    segments: list[Segment] = []
    index = 0
    for n in range(max_segments):
        lo, hi = start + width * n, start + width * (n + 1)
        seconds: dict[MachineState, float] = {}
        while index < len(clipped) and clipped[index][2] <= lo:
            index += 1
        j = index
        while j < len(clipped) and clipped[j][1] < hi:
            state, a, b = clipped[j]
            overlap = (min(b, hi) - max(a, lo)).total_seconds()
            if overlap > 0:
                seconds[state] = seconds.get(state, 0.0) + overlap
            j += 1
        state = max(seconds, key=lambda s: seconds[s]) if seconds else MachineState.OFFLINE
        segments.append(Segment(state, lo, hi, 1 / max_segments))
    return segments


def state_totals(intervals: Sequence[StateInterval]) -> dict[MachineState, float]:
    """Seconds spent in each state, in the order of :class:`MachineState`.

    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> state_totals([StateInterval(MachineState.IDLE, t, t + timedelta(seconds=90))])
    {<MachineState.IDLE: 'idle'>: 90.0}
    """
    seconds: dict[MachineState, float] = {}
    for interval in intervals:
        seconds[interval.state] = seconds.get(interval.state, 0.0) + interval.seconds
    return {state: seconds[state] for state in MachineState if seconds.get(state)}


def duration_text(seconds: float) -> str:
    """A duration for people: ``45 s``, ``12 min``, ``5 h 3 min``, ``3 d 4 h``.

    >>> [duration_text(s) for s in (45, 720, 18_180, 273_600)]
    ['45 s', '12 min', '5 h 3 min', '3 d 4 h']
    """
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def value_text(value: LatestValue) -> str:
    """A newest value as shown in the live table.

    >>> from clusterbrain.telemetry.store import LatestValue as V
    >>> t = datetime(2026, 1, 1, tzinfo=UTC)
    >>> [value_text(V("d", "x", t, v, s, 0)) for v, s in ((21.346, None), (120.0, None),
    ...                                                    (None, "running"), (None, None))]
    ['21.35', '120', 'running', '—']
    """
    if value.value is None:
        return value.text if value.text is not None else "—"
    if float(value.value).is_integer() and abs(value.value) < 1e15:
        return f"{value.value:.0f}"
    return f"{value.value:.2f}"


def waterfall(losses: Sequence[LossStep], planned_busy: float, scale: float) -> dict[str, Any]:
    """Bars of the six-losses waterfall, in ``scale`` seconds: a transparent base under each
    loss so that it hangs from the time left before it.

    >>> from clusterbrain.production.losses import LossStep as L
    >>> w = waterfall([L("breakdowns", 60, 420), L("reduced_speed", 20, 400)], 480, 60)
    >>> w["base"], w["value"]
    ([0.0, 7.0, 6.67, 0.0], [8.0, 1.0, 0.33, 6.67])
    """
    base, value = [0.0], [round(planned_busy / scale, 2)]
    for step in losses:
        before = step.remaining_after + step.seconds_lost
        base.append(round(min(before, step.remaining_after) / scale, 2))
        value.append(round(abs(step.seconds_lost) / scale, 2))
    left = losses[-1].remaining_after if losses else planned_busy
    base.append(0.0)
    value.append(round(left / scale, 2))
    return {"base": base, "value": value}


def performance_hint(effectiveness: float | None) -> str | None:
    """Why performance can exceed 100 %, to show beside it (None when it does not).

    A finished part counts its whole ideal cycle time, so a range shorter than a few cycles, or
    an ideal cycle time set too long, gives more ideal time than production time.

    >>> performance_hint(0.95) is None, performance_hint(None) is None
    (True, True)
    >>> performance_hint(4.66) == PERFORMANCE_HINT
    True
    """
    return PERFORMANCE_HINT if effectiveness is not None and effectiveness > 1.0 else None


def chart_ms(moment: datetime, zone: ZoneInfo) -> int:
    """Epoch milliseconds shifted to the viewer's wall clock (the chart runs in UTC mode, so the
    axis shows the viewer's time whatever the browser's zone).

    >>> chart_ms(datetime(2026, 1, 1, tzinfo=UTC), ZoneInfo("Asia/Shanghai")) - 1767225600000
    28800000
    """
    offset = moment.astimezone(zone).utcoffset() or timedelta(0)
    return int((moment + offset).timestamp() * 1000)


# --- reading ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TagInfo:
    unit: str
    description: str
    numeric: bool


@dataclass(frozen=True, slots=True)
class MachineInfo:
    """What the page keeps of a machine between refreshes (read once, through the principal)."""

    watched: live.Watched
    line: str
    tags: dict[str, TagInfo]
    reasons: dict[int, str] = field(default_factory=dict)

    @property
    def device_id(self) -> str | None:
        return self.watched.setup.device_id


def load_machine(
    console: Console, principal: Principal, machine_id: int, language: str
) -> MachineInfo | None:
    """The machine as the viewer may see it, or None when it is not theirs (or not there)."""
    with session_scope(console.runtime.sessions) as session:
        try:
            machine = get_scoped(session, Machine, machine_id, principal)
        except NotFound:
            return None
        setup = oee_service.machine_setup(session, machine)
        line = session.get(Line, machine.line_id)
        watched = live.Watched(machine.id, machine.name, machine.kind, machine.line_id, setup)
        return MachineInfo(
            watched,
            line.name if line is not None else "",
            _profile_tags(session, principal, setup.device_id, language),
            _reason_names(session, principal, language),
        )


def _profile_tags(
    session: Any, principal: Principal, device_id: str | None, language: str
) -> dict[str, TagInfo]:
    if device_id is None:
        return {}
    try:
        device = device_service.get_device(session, principal, device_id)
    except NotFound:
        return {}
    profile = session.get(DeviceProfile, device.profile_id)
    if profile is None:
        return {}
    return {
        tag.name: TagInfo(
            tag.unit,
            (tag.description_zh if language == "zh-CN" else tag.description_en)
            or tag.description_en,
            tag.data_type in ("float", "int"),
        )
        for tag in profile.tags
    }


def _reason_names(session: Any, principal: Principal, language: str) -> dict[int, str]:
    """Reasons an operator can pick: the leaves of the tree, named "parent / leaf"."""
    reasons = [r for r in production_service.list_reasons(session, principal) if r.active]
    by_id = {r.id: r for r in reasons}
    parents = {r.parent_id for r in reasons if r.parent_id is not None}

    def name(reason: Any) -> str:
        return str(reason.name_zh if language == "zh-CN" else reason.name_en)

    names: dict[int, str] = {}
    for reason in reasons:
        if reason.id in parents:
            continue
        parent = by_id.get(reason.parent_id) if reason.parent_id is not None else None
        names[reason.id] = f"{name(parent)} / {name(reason)}" if parent else name(reason)
    return names


@dataclass(frozen=True, slots=True)
class RangeData:
    """Everything of the page that depends on the chosen range."""

    start: datetime
    end: datetime
    intervals: list[StateInterval]
    kpis: KpiSet
    planned_busy: float
    losses: list[LossStep]
    stops: list[tuple[Stop, int | None]]
    stops_from: datetime


def read_range(
    console: Console, principal: Principal, info: MachineInfo, start: datetime, end: datetime
) -> RangeData:
    runtime = console.runtime
    store = runtime.store
    machine_id = info.watched.machine_id
    setup = info.watched.setup
    with session_scope(runtime.sessions) as session:
        stored = oee_service.uses_stored(store, setup, start, "auto")
        runs = oee_service.machine_runs(store, setup, start, end, stored=stored)
        result = oee_service.machine_kpis(session, store, principal, machine_id, start, end)
        stops_from = max(start, end - STOPS_SPAN)
        stops = downtime_service.machine_stops(
            session, store, principal, machine_id, stops_from, end
        )
        return RangeData(
            start,
            end,
            runs.intervals(),
            result.kpis,
            result.elements.planned_busy_time,
            result.losses,
            [(stop, row.reason_id if row is not None else None) for stop, row in stops],
            stops_from,
        )


def read_trend(
    console: Console,
    device_id: str,
    tags: Sequence[str],
    start: datetime,
    end: datetime,
    zone: ZoneInfo,
) -> dict[str, list[list[float]]]:
    """``tag → [[ms, value], ...]`` of the range, from the rollup that fits its bucket."""
    if not tags:
        return {}
    bucket = trend_bucket(end - start)
    table = console.runtime.store.query_range(
        device_id, list(tags), start, end, bucket=bucket, agg=Aggregate.AVG
    )
    series: dict[str, list[list[float]]] = {tag: [] for tag in tags}
    for tag, ts, value in zip(
        table.column("tag").to_pylist(),
        table.column("ts").to_pylist(),
        table.column("value").to_pylist(),
        strict=True,
    ):
        if value is not None and tag in series:
            series[tag].append([chart_ms(ts, zone), round(float(value), 4)])
    return series


# --- the page -----------------------------------------------------------------------------------


def register(console: Console) -> None:
    @page("/machines/{machine_id}")
    async def machine_page(machine_id: str) -> None:
        viewer = console.viewer()
        if viewer is None:
            ui.navigate.to("/login")
            return
        info = None
        if machine_id.isdigit():
            info = await run.io_bound(
                load_machine, console, viewer.principal, int(machine_id), viewer.language
            )
        if info is None:
            _not_found(viewer)
            return
        with frame(viewer, info.watched.name):
            page = MachineView(console, viewer, info)
            page.build()
            ui.timer(console.runtime.settings.console_refresh_s, page.refresh_live)
            ui.timer(5.0, page.refresh_short_trend)
            await ui.context.client.connected()  # long reads must not hold the first response
            await asyncio.gather(page.refresh_live(), page.show_range(DEFAULT_RANGE))


def _not_found(viewer: Viewer) -> None:
    t = viewer.t
    with (
        frame(viewer, t("Machine not found")),
        ui.card().classes("w-full items-center p-8 text-center").props('data-testid="not-found"'),
    ):
        ui.icon("search_off", size="lg").classes("text-grey-6")
        ui.label(t("Machine not found")).classes("text-lg")
        ui.label(t("This machine does not exist or belongs to another enterprise.")).classes(
            "text-grey-7"
        )
        ui.link(t("Back to the overview"), "/").props('data-testid="back-to-overview"')


class MachineView:
    """The machine page; live parts are updated in place, range parts rebuilt per range."""

    def __init__(self, console: Console, viewer: Viewer, info: MachineInfo) -> None:
        self.console, self.viewer, self.info = console, viewer, info
        self.range_key = DEFAULT_RANGE
        self.generation = 0
        self.trend_tags: list[str] = self._default_trend_tags()
        self.range_buttons: dict[str, ui.button] = {}
        self.state_colour = ""
        self.waiting = 0

    @property
    def t(self) -> Callable[[str], str]:
        return self.viewer.t

    # -- layout

    def build(self) -> None:
        t = self.t
        self._header()
        with ui.card().classes("w-full"):
            ui.label(t("Live values")).classes("text-xl")
            self.live_table = (
                ui.table(
                    columns=[
                        {"name": "tag", "label": t("Data point"), "field": "tag", "align": "left"},
                        {"name": "value", "label": t("Value"), "field": "value", "align": "right"},
                        {"name": "unit", "label": t("Unit"), "field": "unit", "align": "left"},
                        {
                            "name": "description",
                            "label": t("Description"),
                            "field": "description",
                            "align": "left",
                        },
                        {"name": "ts", "label": t("Updated"), "field": "ts", "align": "left"},
                    ],
                    rows=[],
                    row_key="tag",
                    pagination=0,
                )
                .classes("w-full")
                .props(
                    f'dense flat hide-pagination no-data-label="{t("No values received yet")}" '
                    'data-testid="live-values"'
                )
            )
        with ui.row().classes("w-full items-center gap-1"):
            for key, label, _ in RANGES:
                self.range_buttons[key] = ui.button(
                    t(label), on_click=lambda _e, k=key: self.show_range(k)
                ).props(f'no-caps outline data-testid="range-{key}"')
        self._trend_card()
        with ui.card().classes("w-full"):
            ui.label(t("State timeline")).classes("text-xl")
            self.timeline = ui.column().classes("w-full gap-1").props('data-testid="timeline"')
        with ui.card().classes("w-full"):
            ui.label(t("OEE and the six big losses")).classes("text-xl")
            self.oee_area = ui.column().classes("w-full gap-2")
        with ui.card().classes("w-full"):
            ui.label(t("Stops waiting for a reason")).classes("text-xl")
            self.stops_area = ui.column().classes("w-full gap-1").props('data-testid="stops"')
        with ui.card().classes("w-full"):
            with ui.row().classes("w-full items-center"):
                ui.label(t("Alarms of this machine")).classes("text-xl")
                ui.space()
                ui.link(f"{t('All alarms')} →", "/alarms").props('data-testid="all-alarms"')
            self.alarms_area = ui.column().classes("w-full gap-1").props('data-testid="alarms"')
            self._alarms()

    def _header(self) -> None:
        t, watched = self.t, self.info.watched
        with (
            ui.card().classes("w-full").props('data-testid="machine-header"'),
            ui.row().classes("w-full items-center gap-6"),
        ):
            self.state = (
                ui.label("…")
                .classes("text-lg font-bold px-3 py-1 rounded")
                .props('data-testid="state"')
            )
            self.since = ui.label().classes("text-grey-7")
            ui.label(f"{t('Machine kind')}: {watched.kind or '—'}")
            ui.label(f"{t('Line')}: {self.info.line or '—'}")
            ui.label(f"{t('Bound device')}: {self.info.device_id or '—'}").props(
                'data-testid="device-id"'
            )
            ui.space()
            self.last_seen = ui.label(f"{t('Last seen')}: —").props('data-testid="last-seen"')
        if self.info.device_id is None:
            empty_state(
                self.viewer,
                "No device bound",
                "Bind a device to this machine on the devices page to see its data.",
            )

    def _trend_card(self) -> None:
        t = self.t
        numeric = self._numeric_tags()
        with ui.card().classes("w-full"):
            with ui.row().classes("w-full items-center gap-4"):
                ui.label(t("Trend")).classes("text-xl")
                ui.select(
                    numeric,
                    multiple=True,
                    value=self.trend_tags,
                    label=t("Tags"),
                    on_change=lambda e: self._set_trend_tags(e.value),
                ).props('dense use-chips data-testid="trend-tags"').classes("min-w-64")
                ui.space()
                self.bucket = ui.label().classes("text-grey-7").props('data-testid="bucket"')
                self.points = ui.label().classes("text-grey-7").props('data-testid="points"')
            self.trend_spinner = ui.spinner(size="lg")
            self.trend = (
                ui.echart(self._trend_options({}))
                .classes("w-full h-80")
                .props('data-testid="trend"')
            )

    def _default_trend_tags(self) -> list[str]:
        numeric = self._numeric_tags()
        preferred = [tag for tag in PREFERRED_TREND_TAGS if tag in numeric]
        return preferred[:1] or numeric[:1]

    def _numeric_tags(self) -> list[str]:
        return sorted(
            name for name, tag in self.info.tags.items() if tag.numeric and not name.startswith("$")
        )

    # -- live values

    def _read_live(self) -> tuple[live.MachineStatus, list[LatestValue]] | None:
        device_id = self.info.device_id
        if device_id is None:
            return None
        store = self.console.runtime.store
        status = live.machine_statuses(store, [self.info.watched], datetime.now(UTC))[0]
        values = [v for v in store.latest(device_id) if not v.tag.startswith("$")]
        return status, values

    async def refresh_live(self) -> None:
        found = await run.io_bound(self._read_live)
        if found is None:
            self._show_state(MachineState.OFFLINE, None, None)
            return
        status, values = found
        self._show_state(status.state, status.since, status.last_seen)
        rows = []
        for value in sorted(values, key=lambda v: v.tag):
            tag = self.info.tags.get(value.tag)
            rows.append(
                {
                    "tag": value.tag,
                    "value": self._value_text(value),
                    "unit": tag.unit if tag else "",
                    "description": tag.description if tag else "",
                    "ts": self.viewer.local(value.ts, "%H:%M:%S"),
                }
            )
        if rows != self.live_table.rows:
            self.live_table.rows = rows
            self.live_table.update()

    def _value_text(self, value: LatestValue) -> str:
        """States in the viewer's words; other values as sent."""
        text = value_text(value)
        if value.tag == self.info.watched.setup.rules.state_tag and text in STATE_NAMES:
            return self.t(text)
        return text

    def _show_state(
        self, state: MachineState, since: datetime | None, last_seen: datetime | None
    ) -> None:
        t = self.t
        colour = STATE_COLOURS[state]
        if colour != self.state_colour:
            self.state.classes(remove=self.state_colour, add=colour)
            self.state_colour = colour
        self.state.text = t(state.value)
        self.since.text = f"{t('since')} {self.viewer.local(since, '%m-%d %H:%M')}" if since else ""
        self.last_seen.text = f"{t('Last seen')}: {self.viewer.local(last_seen)}"

    # -- range

    def _range(self, key: str) -> tuple[datetime, datetime]:
        span = next(span for k, _, span in RANGES if k == key)
        end = datetime.now(UTC).replace(microsecond=0)
        return end - span, end

    async def show_range(self, key: str) -> None:
        self.range_key = key
        self.generation += 1
        generation = self.generation
        for k, button in self.range_buttons.items():
            if k == key:
                button.props(remove="outline", add="unelevated")
            else:
                button.props(remove="unelevated", add="outline")
        start, end = self._range(key)
        for area in (self.timeline, self.oee_area, self.stops_area):
            area.clear()
            with area:
                ui.spinner(size="lg")
        await asyncio.gather(
            self._show_trend(start, end, generation, reset_zoom=True),
            self._show_range_data(start, end, generation),
        )

    async def refresh_short_trend(self) -> None:
        """Keep the shortest range moving; longer ones change too slowly to poll."""
        if self.range_key == "1min":
            start, end = self._range(self.range_key)
            await self._show_trend(start, end, self.generation, reset_zoom=False)

    async def _set_trend_tags(self, tags: Any) -> None:
        self.trend_tags = [str(tag) for tag in tags or []]
        start, end = self._range(self.range_key)
        await self._show_trend(start, end, self.generation, reset_zoom=True)

    async def _show_trend(
        self, start: datetime, end: datetime, generation: int, *, reset_zoom: bool
    ) -> None:
        t = self.t
        text, n = bucket_text(trend_bucket(end - start))
        self.bucket.text = t(text).format(n=n)
        device_id = self.info.device_id
        series: dict[str, list[list[float]]] = {}
        if device_id is not None:
            self.trend_spinner.set_visibility(True)
            found = await run.io_bound(
                read_trend, self.console, device_id, self.trend_tags, start, end, self.viewer.zone
            )
            self.trend_spinner.set_visibility(False)
            series = found or {}
        if generation != self.generation:
            return
        count = sum(len(points) for points in series.values())
        self.points.text = t("Points: {n}").format(n=count)
        options = self._trend_options(series, start, end)
        if not reset_zoom:
            for zoom in options["dataZoom"]:
                zoom.pop("start", None)
                zoom.pop("end", None)
        self.trend.options.clear()
        self.trend.options.update(options)
        self.trend.update()

    def _trend_options(
        self,
        series: dict[str, list[list[float]]],
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> dict[str, Any]:
        zone = self.viewer.zone
        empty = not any(series.values())
        x_axis: dict[str, Any] = {"type": "time"}
        if start is not None and end is not None:
            x_axis.update(min=chart_ms(start, zone), max=chart_ms(end, zone))
        options: dict[str, Any] = {
            "useUTC": True,
            "animation": False,
            "tooltip": {"trigger": "axis"},
            "legend": {"top": 0},
            "grid": {"left": 60, "right": 24, "top": 36, "bottom": 70},
            "xAxis": x_axis,
            "yAxis": {"type": "value", "scale": True},
            "dataZoom": [
                {"type": "inside", "start": 0, "end": 100},
                {"type": "slider", "bottom": 10, "start": 0, "end": 100},
            ],
            "series": [
                {"name": tag, "type": "line", "showSymbol": len(points) < 60, "data": points}
                for tag, points in series.items()
            ],
        }
        if empty and start is not None:
            options["title"] = {
                "text": self.t("No data in this range"),
                "left": "center",
                "top": "middle",
                "textStyle": {"color": "#757575", "fontSize": 14},
            }
        return options

    async def _show_range_data(self, start: datetime, end: datetime, generation: int) -> None:
        data = await run.io_bound(
            read_range, self.console, self.viewer.principal, self.info, start, end
        )
        if data is None or generation != self.generation:
            return
        self._show_timeline(data)
        self._show_oee(data)
        self._show_stops(data)

    # -- state timeline

    def _show_timeline(self, data: RangeData) -> None:
        t, local = self.t, self.viewer.local
        self.timeline.clear()
        with self.timeline:
            with ui.element("div").classes("w-full h-8 flex flex-nowrap rounded overflow-hidden"):
                for segment in timeline_segments(data.intervals, data.start, data.end):
                    title = (
                        f"{t(segment.state.value)} {local(segment.start, '%m-%d %H:%M:%S')}"
                        f" – {local(segment.end, '%m-%d %H:%M:%S')}"
                    )
                    ui.element("div").classes(
                        STATE_COLOURS[segment.state].split()[0] + " h-full"
                    ).style(f"width: {segment.share * 100:.3f}%").props(
                        f'title="{title}" data-state="{segment.state.value}"'
                    )
            with ui.row().classes("w-full justify-between text-xs text-grey-7"):
                ui.label(local(data.start, "%Y-%m-%d %H:%M"))
                ui.label(local(data.end, "%Y-%m-%d %H:%M"))
            with ui.row().classes("gap-4 text-sm"):
                for state, seconds in state_totals(data.intervals).items():
                    with ui.row().classes("items-center gap-1"):
                        ui.element("div").classes(
                            STATE_COLOURS[state].split()[0] + " w-3 h-3 rounded-sm"
                        )
                        ui.label(f"{t(state.value)} {duration_text(seconds)}")

    # -- OEE and losses

    def _show_oee(self, data: RangeData) -> None:
        t = self.t
        self.oee_area.clear()
        with self.oee_area:
            with ui.row().classes("w-full gap-4"):
                for label, value, testid in (
                    ("OEE", data.kpis.oee, "oee"),
                    ("Availability", data.kpis.availability, "availability"),
                    ("Performance", data.kpis.effectiveness, "performance"),
                    ("Quality", data.kpis.quality_ratio, "quality"),
                ):
                    with ui.card().classes("p-3 min-w-40").props(f'data-testid="kpi-{testid}"'):
                        ui.label(t(label)).classes("text-grey-7")
                        ui.label(percent(value)).classes("text-2xl font-bold")
            hint = performance_hint(data.kpis.effectiveness)
            if hint:
                ui.label(t(hint)).classes("text-orange-9").props('data-testid="performance-hint"')
            hours = data.planned_busy >= 3 * 3600
            scale, unit = (3600.0, t("Hours")) if hours else (60.0, t("Minutes"))
            bars = waterfall(data.losses, data.planned_busy, scale)
            names = [
                t("Planned busy time"),
                *(t(LOSS_NAMES.get(step.name, step.name)) for step in data.losses),
                t("Fully productive time"),
            ]
            colours = ["#1f4e79", *("#d32f2f" for _ in data.losses), "#43a047"]
            ui.echart(
                {
                    "animation": False,
                    "tooltip": {"trigger": "axis", "axisPointer": {"type": "shadow"}},
                    "grid": {"left": 60, "right": 24, "top": 30, "bottom": 60},
                    "xAxis": {
                        "type": "category",
                        "data": names,
                        "axisLabel": {"interval": 0, "width": 110, "overflow": "break"},
                    },
                    "yAxis": {"type": "value", "name": unit},
                    "series": [
                        {
                            "name": "base",
                            "type": "bar",
                            "stack": "waterfall",
                            "silent": True,
                            "itemStyle": {"color": "transparent"},
                            "tooltip": {"show": False},
                            "data": bars["base"],
                        },
                        {
                            "name": unit,
                            "type": "bar",
                            "stack": "waterfall",
                            "label": {"show": True, "position": "top"},
                            "data": [
                                {"value": v, "itemStyle": {"color": c}}
                                for v, c in zip(bars["value"], colours, strict=True)
                            ],
                        },
                    ],
                }
            ).classes("w-full h-72").props('data-testid="losses"')

    # -- stops

    def _show_stops(self, data: RangeData) -> None:
        t, local = self.t, self.viewer.local
        self.stops_area.clear()
        waiting = [stop for stop, reason in data.stops if reason is None]
        with self.stops_area:
            if data.stops_from > data.start:
                ui.label(t("Stops of the past 7 days")).classes("text-xs text-grey-7")
            self.waiting = len(waiting)
            if not waiting:
                self._no_stops()
                return
            for stop in reversed(waiting):  # newest first: the one people remember
                with (
                    ui.row()
                    .classes("w-full items-center gap-4 py-1 border-b")
                    .props('data-testid="stop"') as row
                ):
                    ui.label(t(stop.state.value)).classes(
                        f"{STATE_COLOURS[stop.state]} px-2 py-1 rounded text-sm"
                    )
                    ui.label(
                        f"{local(stop.start, '%m-%d %H:%M:%S')} – {local(stop.end, '%H:%M:%S')}"
                    )
                    ui.label(duration_text(stop.seconds)).classes("text-grey-7")
                    ui.space()
                    select = (
                        ui.select(self.info.reasons, label=t("Downtime reason"))
                        .props('dense data-testid="stop-reason"')
                        .classes("min-w-72")
                    )
                    ui.button(
                        t("Assign"),
                        on_click=lambda _e, s=stop, sel=select, r=row: self._assign(s, sel, r),
                    ).props('data-testid="stop-assign"')

    def _no_stops(self) -> None:
        empty_state(
            self.viewer,
            "No stops waiting for a reason",
            "Stops of 5 minutes or longer appear here so that you can record why.",
        )

    async def _assign(self, stop: Stop, select: ui.select, row: ui.row) -> None:
        t = self.t
        if select.value is None:
            ui.notify(t("Choose a reason first"), type="warning")
            return
        reason_id = int(select.value)
        runtime, principal = self.console.runtime, self.viewer.principal

        def save() -> None:
            with session_scope(runtime.sessions) as session:
                downtime_service.assign_reason(
                    session, runtime.store, principal, stop.machine_id, stop.start, reason_id
                )

        try:
            await run.io_bound(save)
        except Forbidden:
            ui.notify(t("Your role may not assign downtime reasons"), type="negative")
            return
        except NotFound:
            ui.notify(t("This stop or reason no longer exists; reload the page"), type="negative")
            return
        except (Conflict, InvalidInput) as exc:
            ui.notify(f"{t('Could not save the reason')}: {exc.detail}", type="negative")
            return
        ui.notify(t("Reason saved"), type="positive")
        row.delete()
        self.waiting -= 1
        if self.waiting <= 0:
            with self.stops_area:
                self._no_stops()

    # -- alarms

    def _alarms(self) -> None:
        device_id = self.info.device_id
        with session_scope(self.console.runtime.sessions) as session:
            alarms = [
                a
                for a in alarm_api.list_alarms(session, self.viewer.principal)
                if device_id is not None and a.device_id == device_id
            ]
        with self.alarms_area:
            if not alarms:
                empty_state(
                    self.viewer,
                    "No alarms on this machine",
                    "Alarms appear here when a rule fires.",
                )
                return
            for alarm in alarms[:20]:
                with ui.row().classes("w-full items-center gap-4").props('data-testid="alarm"'):
                    ui.badge(alarm.priority).props("color=red" if alarm.active else "color=grey")
                    ui.label(alarm.rule_name).classes("font-medium")
                    ui.label(alarm.message or "").classes("text-grey-7")
                    if alarm.last_value is not None:
                        ui.label(str(alarm.last_value)).classes("text-grey-7")
                    ui.space()
                    ui.link("→", "/alarms")
