"""Alarms (报警): the ISA-18.2 alarm list with its actions and history, and the alarm rules.

Every read and write goes through the alarm API's route functions with the viewer's principal,
so the console enforces exactly what the HTTP API does: enterprise scoping, roles and the
lifecycle's refusals. The list refreshes in place; refused actions and rule forms are reported
in the viewer's language, naming the field.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

from nicegui import run, ui
from nicegui.element import Element
from nicegui.events import GenericEventArguments
from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from clusterbrain.devices.models import ProfileTag
from clusterbrain.devices.service import list_devices
from clusterbrain.platform.db import session_scope
from clusterbrain.platform.errors import (
    ClusterBrainError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
)
from clusterbrain.platform.models import Machine
from clusterbrain.platform.service import list_scoped
from clusterbrain.platform.tenancy import Principal
from clusterbrain.production import alarm_api
from clusterbrain.production.alarm_api import AlarmOut, AlarmRuleIn, AlarmRuleOut
from clusterbrain.production.alarms import AlarmState, Priority
from clusterbrain.production.models import AlarmRule
from clusterbrain.production.rules import parse_rule
from clusterbrain.production.states import MachineState
from clusterbrain.ui.context import Console, Viewer
from clusterbrain.ui.layout import empty_state, frame, page

TEXT = {
    "Alarms": "报警",
    "Alarm": "报警",
    "Loading…": "加载中…",
    "Alarm list": "报警列表",
    "Alarm rules": "报警规则",
    # ISA-18.2 states and priorities
    "Normal": "正常",
    "Active, unacknowledged": "报警未确认",
    "Active, acknowledged": "报警已确认",
    "Cleared, unacknowledged": "恢复未确认",
    "Shelved": "已搁置",
    "Suppressed": "已抑制",
    "Critical": "紧急",
    "High": "高",
    "Medium": "中",
    "Low": "低",
    # the list
    "State": "状态",
    "Priority": "优先级",
    "All states": "全部状态",
    "All priorities": "全部优先级",
    "Include cleared alarms": "包括已恢复正常的报警",
    "Rule": "规则",
    "Device": "采集设备",
    "Message": "报警信息",
    "Last value": "最新值",
    "Occurrences": "发生次数",
    "Actions": "操作",
    "No alarms match the filters": "没有符合筛选条件的报警",
    "No alarms need attention": "没有需要处理的报警",
    "Alarms appear here when one of your rules fires. To watch a machine, create a rule.": (
        "报警规则触发后，报警会显示在这里。要监视设备，请先创建报警规则。"
    ),
    "Create a rule": "创建报警规则",
    # actions
    "Acknowledge": "确认",
    "Shelve": "搁置",
    "Unshelve": "取消搁置",
    "Suppress": "抑制",
    "Unsuppress": "取消抑制",
    "Details": "详情",
    "Cancel": "取消",
    "Comment (optional)": "备注（可选）",
    "Reason (optional)": "原因（可选）",
    "Shelve for (minutes)": "搁置时长（分钟）",
    "Acknowledge alarm": "确认报警",
    "Shelve alarm": "搁置报警",
    "Suppress alarm": "抑制报警",
    "Alarm acknowledged": "报警已确认",
    "Alarm shelved": "报警已搁置",
    "Shelf ended": "已取消搁置",
    "Alarm suppressed": "报警已抑制",
    "Suppression ended": "已取消抑制",
    "Your role may not do this.": "您的角色无权执行此操作。",
    "This action does not apply in the alarm's current state.": "报警当前状态下不能执行此操作。",
    "Not found: it does not exist or belongs to another enterprise.": (
        "未找到：它不存在或属于其他企业。"
    ),
    # details and history
    "Alarm not found": "未找到报警",
    "It does not exist or belongs to another enterprise.": "它不存在或属于其他企业。",
    "Back to the alarm list": "返回报警列表",
    "Open as a page": "在单独页面打开",
    "Close": "关闭",
    "Repeats": "重复次数",
    "Shelved until": "搁置至",
    "History": "历史记录",
    "No history yet": "暂无历史记录",
    "Time": "时间",
    "Event": "事件",
    "User": "用户",
    "From state": "原状态",
    "To state": "新状态",
    "Note": "说明",
    "condition_active": "条件触发",
    "condition_cleared": "条件消除",
    "acknowledge": "确认",
    "shelve": "搁置",
    "unshelve": "取消搁置",
    "shelve_expired": "搁置到期",
    "suppress": "抑制",
    "unsuppress": "取消抑制",
    "escalate": "升级",
    "occurrence": "第几次发生",
    "level": "级别",
    "until": "至",
    "never announced (shelved or suppressed): needs no acknowledgement": (
        "未曾通知（搁置或抑制期间）：无需确认"
    ),
    # rules
    "New rule": "新建规则",
    "Edit rule": "编辑规则",
    "Edit": "编辑",
    "Delete": "删除",
    "Save": "保存",
    "Name": "名称",
    "Kind": "规则类型",
    "Condition": "条件",
    "Status": "状态",
    "Enabled": "已启用",
    "Disabled": "已停用",
    "Disabled:": "已停用：",
    "Threshold": "阈值",
    "Rate of change": "变化率",
    "Silence (no data)": "无数据（离线）",
    "State duration": "状态持续时间",
    "Expression": "表达式",
    "Tag": "数据点",
    "Comparison": "比较",
    "Limit": "限值",
    "Deadband": "回差",
    "Delay (s)": "延时（秒）",
    "Maximum rate (per s)": "最大变化率（每秒）",
    "Window (s)": "时间窗口（秒）",
    "Timeout (s)": "超时（秒）",
    "Machine state": "设备状态",
    "Minimum duration (s)": "最短持续时间（秒）",
    "Webhook URL": "Webhook 地址",
    "E-mail addresses": "邮件地址",
    "Separate several addresses with commas": "多个地址用逗号分隔",
    "Shown with the alarm; the rule's name when empty": "随报警显示；为空时使用规则名称",
    "Any tag": "任意数据点",
    "Leave empty to watch every tag of the device": "留空则监视该设备的所有数据点",
    "for": "持续",
    "silent for more than": "无数据超过",
    "Rule saved": "规则已保存",
    "Rule deleted": "规则已删除",
    "Delete the rule {name}? Its alarm is deleted with it.": "删除规则 {name}？其报警将一并删除。",
    "No alarm rules yet": "还没有报警规则",
    "Create a rule: pick a machine's device, a tag and a limit, e.g. barrel zone 1 above 240 °C.": (
        "创建规则：选择采集设备、数据点和限值，例如料筒一区温度高于 240 °C。"
    ),
    # validation
    "{field}: {problem}": "{field}：{problem}",
    "is required": "必填",
    "must not be empty": "不能为空",
    "is too long": "过长",
    "has too many entries": "条目过多",
    "must be at least {ge}": "不能小于 {ge}",
    "must be greater than {gt}": "必须大于 {gt}",
    "must be a finite number": "必须是有限数值",
    "must be a number": "必须是数字",
    "has an invalid format": "格式不正确",
    "is not one of the allowed values": "不是允许的取值",
    "is not allowed: {reason}": "不允许：{reason}",
    "is invalid: {reason}": "无效：{reason}",
    # machine states (as on the overview)
    "running": "运行",
    "idle": "空闲",
    "unplanned_down": "故障停机",
    "planned_stop": "计划停机",
    "setup": "换型调试",
    "offline": "离线",
}

STATES = {
    AlarmState.NORMAL: ("Normal", "green-7"),
    AlarmState.UNACK_ACTIVE: ("Active, unacknowledged", "red-7"),
    AlarmState.ACK_ACTIVE: ("Active, acknowledged", "deep-orange-6"),
    AlarmState.UNACK_RTN: ("Cleared, unacknowledged", "amber-8"),
    AlarmState.SHELVED: ("Shelved", "blue-grey-6"),
    AlarmState.SUPPRESSED: ("Suppressed", "grey-6"),
}
PRIORITIES = {
    Priority.CRITICAL: ("Critical", "red-9"),
    Priority.HIGH: ("High", "deep-orange-7"),
    Priority.MEDIUM: ("Medium", "amber-9"),
    Priority.LOW: ("Low", "blue-grey-5"),
}
KINDS = {
    "threshold": "Threshold",
    "rate_of_change": "Rate of change",
    "no_data": "Silence (no data)",
    "state_duration": "State duration",
    "expression": "Expression",
}
KIND_FIELDS = {
    "threshold": ("tag", "op", "limit", "deadband", "delay_s"),
    "rate_of_change": ("tag", "max_rate_per_s", "window_s"),
    "no_data": ("tag", "timeout_s"),
    "state_duration": ("tag", "state", "min_duration_s"),
    "expression": ("expression", "delay_s"),
}
FIELDS = {
    "name": "Name",
    "device_id": "Device",
    "priority": "Priority",
    "message": "Message",
    "webhook_url": "Webhook URL",
    "emails": "E-mail addresses",
    "definition": "Condition",
    "tag": "Tag",
    "op": "Comparison",
    "limit": "Limit",
    "deadband": "Deadband",
    "delay_s": "Delay (s)",
    "max_rate_per_s": "Maximum rate (per s)",
    "window_s": "Window (s)",
    "timeout_s": "Timeout (s)",
    "state": "Machine state",
    "min_duration_s": "Minimum duration (s)",
    "expression": "Expression",
    "until": "Shelve for (minutes)",
    "until_us": "Shelve for (minutes)",
    "minutes": "Shelve for (minutes)",
    "comment": "Comment (optional)",
    "reason": "Reason (optional)",
}
"""Names in the API's bodies and rule documents → the form's label (English)."""
FORM_ORDER = {field: index for index, field in enumerate(FIELDS)}

PROBLEMS = {
    "missing": "is required",
    "string_type": "is required",
    "string_too_short": "must not be empty",
    "string_too_long": "is too long",
    "too_long": "has too many entries",
    "greater_than_equal": "must be at least {ge}",
    "greater_than": "must be greater than {gt}",
    "finite_number": "must be a finite number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "string_pattern_mismatch": "has an invalid format",
    "literal_error": "is not one of the allowed values",
    "enum": "is not one of the allowed values",
    "value_error": "is not allowed: {reason}",
}
"""pydantic's error types → what the form says (English, a key of TEXT)."""

ACTIONS = {  # action → (button, dialog title, text field, done)
    "acknowledge": ("Acknowledge", "Acknowledge alarm", "Comment (optional)", "Alarm acknowledged"),
    "shelve": ("Shelve", "Shelve alarm", "Reason (optional)", "Alarm shelved"),
    "unshelve": ("Unshelve", "", "", "Shelf ended"),
    "suppress": ("Suppress", "Suppress alarm", "Reason (optional)", "Alarm suppressed"),
    "unsuppress": ("Unsuppress", "", "", "Suppression ended"),
}

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)
E = TypeVar("E", bound=Element)


# --- pure helpers -------------------------------------------------------------------------------


def value_text(value: object) -> str:
    """A tag value for a table cell.

    >>> value_text(231.4567), value_text(3.0), value_text(None), value_text("ALARM")
    ('231.46', '3', '—', 'ALARM')
    """
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{round(value, 2):g}"
    return str(value)


def _number(value: object) -> str:
    return value_text(float(value)) if isinstance(value, int | float) else str(value)


@dataclass(frozen=True, slots=True)
class Problem:
    """What is wrong with a form, for the viewer: the field and an English message template."""

    field: str | None
    template: str
    values: Mapping[str, str]


def problems(exc: ValidationError) -> list[Problem]:
    """The errors of a validation, each with the form field it concerns.

    >>> try:
    ...     parse_rule({"type": "threshold", "id": "x", "tag": "t", "op": ">", "limit": 1,
    ...                 "deadband": -1})
    ... except ValidationError as exc:
    ...     found = problems(exc)
    >>> [(p.field, p.template, p.values["ge"]) for p in found]
    [('deadband', 'must be at least {ge}', '0')]
    """
    return [_problem(error) for error in exc.errors()]


def first_problem(exc: ValidationError) -> Problem:
    return problems(exc)[0]


def _problem(error: Any) -> Problem:
    loc = [str(part) for part in error.get("loc", ())]
    field = next((part for part in reversed(loc) if part in FIELDS), None)
    kind = str(error.get("type", ""))
    values = {key: _number(value) for key, value in (error.get("ctx") or {}).items()}
    values["reason"] = str(error.get("msg", "")).removeprefix("Value error, ")
    return Problem(field, PROBLEMS.get(kind, "is invalid: {reason}"), values)


def rule_summary(definition: Mapping[str, Any], t: Callable[[str], str]) -> str:
    """A rule's condition in one line (tags and numbers are data; a few words are translated).

    >>> rule_summary({"type": "threshold", "tag": "oil_temp", "op": ">", "limit": 60.0,
    ...               "delay_s": 10}, str)
    'oil_temp > 60 for 10 s'
    >>> rule_summary({"type": "no_data", "timeout_s": 120}, str)
    'Any tag silent for more than 120 s'
    """
    kind = definition.get("type")
    tag = str(definition.get("tag") or "")
    delay = definition.get("delay_s") or 0
    after = f" {t('for')} {_number(delay)} s" if delay else ""
    if kind == "threshold":
        deadband = definition.get("deadband") or 0
        band = f" (±{_number(deadband)})" if deadband else ""
        limit = _number(definition.get("limit"))
        return f"{tag} {definition.get('op')} {limit}{band}{after}"
    if kind == "rate_of_change":
        window = _number(definition.get("window_s"))
        rate = _number(definition.get("max_rate_per_s"))
        return f"|Δ{tag}| / {window} s > {rate}/s"
    if kind == "no_data":
        timeout = _number(definition.get("timeout_s"))
        return f"{tag or t('Any tag')} {t('silent for more than')} {timeout} s"
    if kind == "state_duration":
        state = str(definition.get("state"))
        shown = t(state) if state in MachineState.__members__.values() else state
        duration = _number(definition.get("min_duration_s"))
        return f"{tag or 'state'} = {shown} ≥ {duration} s"
    return f"{definition.get('expression', '')}{after}"


_SHELF = re.compile(r"^until (\d+)(?:: (.*))?$", re.S)
_NUMBERED = re.compile(r"^(occurrence|level) (\d+)$")


def history_detail(detail: str, viewer: Viewer) -> str:
    """An audit entry's detail in the viewer's words: shelf ends as local times."""
    if shelf := _SHELF.match(detail):
        until = datetime.fromtimestamp(int(shelf.group(1)) / 1e6, UTC)
        reason = f": {shelf.group(2)}" if shelf.group(2) else ""
        return f"{viewer.t('until')} {viewer.local(until, '%Y-%m-%d %H:%M')}{reason}"
    if numbered := _NUMBERED.match(detail):
        return f"{viewer.t(numbered.group(1))} {numbered.group(2)}"
    if detail in TEXT:
        return viewer.t(detail)
    return detail


def problem_text(viewer: Viewer, exc: ClusterBrainError) -> str:
    """A refusal of the services, in the viewer's language as far as it is known."""
    t = viewer.t
    if isinstance(exc, Forbidden):
        return t("Your role may not do this.")
    if isinstance(exc, NotFound) and exc.field is None:
        return t("Not found: it does not exist or belongs to another enterprise.")
    if isinstance(exc, Conflict):
        return t("This action does not apply in the alarm's current state.")
    label = FIELDS.get(exc.field or "")
    return (
        t("{field}: {problem}").format(field=t(label), problem=exc.detail) if label else exc.detail
    )


def _validated(model: type[M], data: Mapping[str, Any]) -> M:
    return model.model_validate(data)


async def _io(call: Callable[[], T]) -> T | ClusterBrainError | None:
    """Run blocking work off the event loop; a refusal is returned, not raised."""
    try:
        return await run.io_bound(call)
    except ClusterBrainError as exc:
        return exc


# --- reads --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceChoice:
    device_id: str
    label: str
    tags: tuple[str, ...]


def device_choices(session: Session, principal: Principal) -> list[DeviceChoice]:
    """The viewer's devices, labelled by their machine, with their profile's tags."""
    devices = list_devices(session, principal)
    machines = {m.id: m.name for m in list_scoped(session, Machine, principal)}
    tags: dict[int, list[str]] = defaultdict(list)
    profile_ids = {d.profile_id for d in devices}
    query = select(ProfileTag).where(ProfileTag.profile_id.in_(profile_ids)).order_by(ProfileTag.id)
    for tag in session.scalars(query):
        tags[tag.profile_id].append(tag.name)
    choices = []
    for device in devices:
        machine = machines.get(device.machine_id or 0) or device.name or device.id
        label = f"{machine} ({device.id})"
        choices.append(DeviceChoice(device.id, label, tuple(tags[device.profile_id])))
    return sorted(choices, key=lambda c: c.label)


# --- the page -----------------------------------------------------------------------------------


def register(console: Console) -> None:
    @page("/alarms")
    async def alarms_page(tab: str = "alarms") -> None:
        viewer = console.viewer()
        if viewer is None:
            ui.navigate.to("/login")
            return
        t = viewer.t
        with frame(viewer, t("Alarms")):
            with ui.tabs().classes("w-full").props("align=left no-caps") as tabs:
                alarms_tab = ui.tab("alarms", t("Alarm list")).props('data-testid="tab-alarms"')
                rules_tab = ui.tab("rules", t("Alarm rules")).props('data-testid="tab-rules"')
            actions = AlarmActions(console, viewer)
            rules = RuleBoard(console, viewer)

            async def create_rule() -> None:
                tabs.set_value(rules_tab)
                await rules.form.open(None)

            board = AlarmBoard(console, viewer, actions, create_rule, rules.device_label)
            with ui.tab_panels(
                tabs, value=rules_tab if tab == "rules" else alarms_tab, animated=False
            ).classes("w-full"):
                with ui.tab_panel(alarms_tab).classes("p-0 gap-4"):
                    board.build()
                with ui.tab_panel(rules_tab).classes("p-0 gap-4"):
                    rules.build()
            await rules.refresh()
            await board.refresh()
            ui.timer(console.runtime.settings.console_refresh_s, board.refresh)
            ui.timer(max(5.0, console.runtime.settings.console_refresh_s), rules.refresh)

    @page("/alarms/{alarm_id}")
    async def alarm_page(alarm_id: int) -> None:
        viewer = console.viewer()
        if viewer is None:
            ui.navigate.to("/login")
            return
        with frame(viewer, viewer.t("Alarm")):
            ui.link(f"← {viewer.t('Back to the alarm list')}", "/alarms").props(
                'data-testid="back-to-alarms"'
            )
            area = ui.column().classes("w-full")
            actions = AlarmActions(console, viewer)
            detail = AlarmDetail(console, viewer, actions, area)

            async def show_again() -> None:
                await detail.show(alarm_id)

            actions.after.append(show_again)
            with area:
                ui.spinner(size="lg")
            if not await detail.show(alarm_id):
                area.clear()
                with area:
                    empty_state(
                        viewer,
                        "Alarm not found",
                        "It does not exist or belongs to another enterprise.",
                    )


# --- alarm actions ------------------------------------------------------------------------------


class AlarmActions:
    """Acknowledge, shelve, unshelve, suppress, unsuppress: ask what is needed, then act."""

    def __init__(self, console: Console, viewer: Viewer) -> None:
        self.console, self.viewer = console, viewer
        self.dialog = ui.dialog()
        with self.dialog, ui.card().classes("w-96"):
            self.body = ui.column().classes("w-full")
        self.after: list[Callable[[], Awaitable[None]]] = []

    async def start(self, action: str, alarm_id: int, title: str) -> None:
        t = self.viewer.t
        text, minutes = "", None
        if ACTIONS[action][1]:
            answer = await self._ask(action, title)
            if answer is None:
                return
            text, minutes = answer
            if action == "shelve" and (minutes is None or minutes <= 0):
                label = t(FIELDS["minutes"])
                problem = t(PROBLEMS["greater_than"]).format(gt=0)
                ui.notify(
                    t("{field}: {problem}").format(field=label, problem=problem), type="negative"
                )
                return
        result = await _io(lambda: self._act(action, alarm_id, text, minutes))
        if isinstance(result, ClusterBrainError):
            ui.notify(problem_text(self.viewer, result), type="negative")
            return
        if result is None:
            return
        ui.notify(t(ACTIONS[action][3]), type="positive")
        for callback in self.after:
            await callback()

    async def _ask(self, action: str, title: str) -> tuple[str, float | None] | None:
        t = self.viewer.t
        _, heading, text_label, _ = ACTIONS[action]
        self.body.clear()
        with self.body:
            ui.label(t(heading)).classes("text-lg font-semibold")
            ui.label(title).classes("text-grey-8")
            minutes = None
            if action == "shelve":
                minutes = (
                    ui.number(t(FIELDS["minutes"]), value=60, min=1, step=5)
                    .props('data-testid="shelve-minutes"')
                    .classes("w-full")
                )
            text = ui.input(t(text_label)).props('data-testid="action-text"').classes("w-full")

            def submit() -> None:
                number = None if minutes is None else minutes.value
                self.dialog.submit((str(text.value or "").strip(), number))

            text.on("keydown.enter", submit)
            with ui.row().classes("w-full justify-end"):
                ui.button(t("Cancel"), on_click=lambda: self.dialog.submit(None)).props(
                    "flat no-caps"
                )
                ui.button(t(ACTIONS[action][0]), on_click=submit).props(
                    'no-caps data-testid="action-confirm"'
                )
        answer: tuple[str, float | None] | None = await self.dialog
        return answer

    def _act(self, action: str, alarm_id: int, text: str, minutes: float | None) -> AlarmOut:
        runtime = self.console.runtime
        principal, engine = self.viewer.principal, runtime.alarms
        until = datetime.now(UTC) + timedelta(minutes=minutes or 0)
        try:
            comment = _validated(alarm_api.CommentIn, {"comment": text})
            shelf = _validated(alarm_api.ShelveIn, {"until": until, "reason": text})
        except ValidationError as exc:
            problem = first_problem(exc)
            raise InvalidInput(problem.values["reason"], field=problem.field) from exc
        with session_scope(runtime.sessions) as session:
            if action == "acknowledge":
                return alarm_api.acknowledge(alarm_id, comment, session, principal, engine)
            if action == "shelve":
                return alarm_api.shelve(alarm_id, shelf, session, principal, engine)
            if action == "unshelve":
                return alarm_api.unshelve(alarm_id, session, principal, engine)
            if action == "suppress":
                return alarm_api.suppress(alarm_id, comment, session, principal, engine)
            return alarm_api.unsuppress(alarm_id, session, principal, engine)


def action_buttons(viewer: Viewer, alarm: AlarmOut) -> list[str]:
    """The actions that apply to an alarm in its state (the services refuse the others)."""
    del viewer
    shown = []
    if not alarm.acknowledged:
        shown.append("acknowledge")
    shown.append("unshelve" if alarm.shelved_until is not None else "shelve")
    shown.append("unsuppress" if alarm.state == AlarmState.SUPPRESSED else "suppress")
    return shown


# --- the alarm list -----------------------------------------------------------------------------

_BADGE = '<q-td :props="props"><q-badge :color="props.row.{0}_colour" :label="props.row.{0}" {1}/></q-td>'


class AlarmBoard:
    """Filters and the alarm table, refreshed in place; empty state when nothing needs attention."""

    def __init__(
        self,
        console: Console,
        viewer: Viewer,
        actions: AlarmActions,
        create_rule: Callable[[], Awaitable[None]],
        device_label: Callable[[str], str],
    ) -> None:
        self.console, self.viewer, self.actions = console, viewer, actions
        self.device_label = device_label
        self.create_rule = create_rule
        self.alarms: dict[int, AlarmOut] = {}
        self.busy = False
        self.loaded = False
        actions.after.append(self.refresh)
        self.detail_dialog = ui.dialog().props("full-width")
        with self.detail_dialog, ui.card().classes("w-full max-w-screen-lg"):
            self.detail_area = ui.column().classes("w-full")
            with ui.row().classes("w-full justify-end"):
                ui.button(viewer.t("Open as a page"), on_click=self._open_page).props(
                    "flat no-caps"
                )
                ui.button(viewer.t("Close"), on_click=self.detail_dialog.close).props(
                    'flat no-caps data-testid="detail-close"'
                )
        self.detail = AlarmDetail(console, viewer, actions, self.detail_area)
        actions.after.append(self._refresh_detail)

    def build(self) -> None:
        t = self.viewer.t
        with ui.row().classes("w-full items-center gap-4"):
            states = {"all": t("All states")} | {
                s.value: t(label) for s, (label, _) in STATES.items()
            }
            self.state = ui.select(states, value="all", label=t("State"), on_change=self.refresh)
            self.state.props('dense outlined data-testid="filter-state"').classes("w-56")
            priorities = {"all": t("All priorities")} | {
                p.value: t(label) for p, (label, _) in PRIORITIES.items()
            }
            self.priority = ui.select(
                priorities, value="all", label=t("Priority"), on_change=self.refresh
            )
            self.priority.props('dense outlined data-testid="filter-priority"').classes("w-40")
            self.include = ui.checkbox(t("Include cleared alarms"), on_change=self.refresh)
            self.include.props('data-testid="filter-cleared"')
        self.spinner = ui.spinner(size="lg")
        self.empty = ui.column().classes("w-full items-center")
        with self.empty:
            empty_state(
                self.viewer,
                "No alarms need attention",
                "Alarms appear here when one of your rules fires. To watch a machine, create a rule.",
            )
            ui.button(t("Create a rule"), icon="add", on_click=self.create_rule).props(
                'no-caps data-testid="empty-create-rule"'
            )
        self.empty.visible = False
        columns = [
            {"name": "priority", "label": t("Priority"), "field": "priority", "align": "left"},
            {"name": "rule", "label": t("Rule"), "field": "rule", "align": "left"},
            {"name": "device", "label": t("Device"), "field": "device", "align": "left"},
            {"name": "state", "label": t("State"), "field": "state", "align": "left"},
            {"name": "message", "label": t("Message"), "field": "message", "align": "left"},
            {"name": "value", "label": t("Last value"), "field": "value", "align": "right"},
            {"name": "occurrence", "label": t("Occurrences"), "field": "occurrence"},
            {"name": "actions", "label": t("Actions"), "field": "id", "align": "left"},
        ]
        self.table = ui.table(columns=columns, rows=[], row_key="id", pagination=0)
        self.table.classes("w-full").props(
            f'flat bordered wrap-cells hide-pagination no-data-label="{t("No alarms match the filters")}"'
            ' data-testid="alarm-table"'
        )
        self.table.add_slot("body-cell-priority", _BADGE.format("priority", ""))
        self.table.add_slot("body-cell-state", _BADGE.format("state", 'data-testid="alarm-state"'))
        buttons = "".join(
            f"<q-btn v-if=\"props.row.actions.includes('{action}')\" dense flat no-caps "
            f'color="primary" label="{t(button)}" data-testid="alarm-{action}" '
            f"@click=\"$parent.$emit('act', {{action: '{action}', id: props.row.id}})\" />"
            for action, (button, *_) in ACTIONS.items()
        )
        details = (
            f'<q-btn dense flat no-caps color="grey-8" label="{t("Details")}" '
            'data-testid="alarm-details" @click="$parent.$emit(\'details\', props.row.id)" />'
        )
        self.table.add_slot(
            "body-cell-actions",
            f'<q-td :props="props"><div class="row no-wrap">{buttons}{details}</div></q-td>',
        )
        self.table.on("act", self._on_act)
        self.table.on("details", self._on_details)
        self.table.visible = False

    def _read(self, state: str | None, priority: str | None, cleared: bool) -> list[AlarmOut]:
        with session_scope(self.console.runtime.sessions) as session:
            found = alarm_api.list_alarms(
                session,
                self.viewer.principal,
                state=state,
                priority=priority,
                include_normal=cleared,
            )
        return sorted(found, key=lambda a: Priority(a.priority).rank)

    async def refresh(self) -> None:
        if self.busy:
            return
        self.busy = True
        try:
            state = None if self.state.value == "all" else str(self.state.value)
            priority = None if self.priority.value == "all" else str(self.priority.value)
            cleared = bool(self.include.value)
            found = await _io(lambda: self._read(state, priority, cleared))
        finally:
            self.busy = False
        if not isinstance(found, list):
            return
        self.alarms = {alarm.id: alarm for alarm in found}
        filtered = state is not None or priority is not None or cleared
        self.spinner.visible = False
        self.empty.visible = not found and not filtered
        self.table.visible = not self.empty.visible
        rows = [self._row(alarm) for alarm in found]
        if rows != self.table.rows:
            self.table.rows = rows

    def _row(self, alarm: AlarmOut) -> dict[str, Any]:
        t = self.viewer.t
        state, state_colour = STATES[AlarmState(alarm.state)]
        priority, priority_colour = PRIORITIES[Priority(alarm.priority)]
        return {
            "id": alarm.id,
            "priority": t(priority),
            "priority_colour": priority_colour,
            "rule": alarm.rule_name,
            "device": self.device_label(alarm.device_id),
            "state": t(state),
            "state_colour": state_colour,
            "message": alarm.message,
            "value": value_text(alarm.last_value),
            "occurrence": alarm.occurrence,
            "actions": action_buttons(self.viewer, alarm),
        }

    async def _on_act(self, event: GenericEventArguments) -> None:
        alarm = self.alarms.get(int(event.args["id"]))
        action = str(event.args["action"])
        if alarm is None or action not in ACTIONS:
            return
        await self.actions.start(action, alarm.id, f"{alarm.rule_name} · {alarm.device_id}")

    async def _on_details(self, event: GenericEventArguments) -> None:
        alarm_id = int(event.args)
        self.detail_area.clear()
        with self.detail_area:
            ui.spinner(size="lg")
        self.detail_dialog.open()
        if not await self.detail.show(alarm_id):
            self.detail_dialog.close()
            ui.notify(self.viewer.t("Alarm not found"), type="negative")

    def _open_page(self) -> None:
        if self.detail.alarm_id is not None:
            ui.navigate.to(f"/alarms/{self.detail.alarm_id}")

    async def _refresh_detail(self) -> None:
        if self.detail_dialog.value and self.detail.alarm_id is not None:
            await self.detail.show(self.detail.alarm_id)


# --- one alarm ----------------------------------------------------------------------------------


class AlarmDetail:
    """One alarm: its facts, the actions that apply, and its history (newest first)."""

    def __init__(
        self, console: Console, viewer: Viewer, actions: AlarmActions, area: ui.column
    ) -> None:
        self.console, self.viewer, self.actions, self.area = console, viewer, actions, area
        self.alarm_id: int | None = None

    def _read(self, alarm_id: int) -> AlarmOut:
        with session_scope(self.console.runtime.sessions) as session:
            return alarm_api.get_alarm(alarm_id, session, self.viewer.principal)

    async def show(self, alarm_id: int) -> bool:
        """Render the alarm; False when the viewer may not see it (or it does not exist)."""
        found = await _io(lambda: self._read(alarm_id))
        if not isinstance(found, AlarmOut):
            return False
        self.alarm_id = alarm_id
        self.area.clear()
        with self.area:
            self._render(found)
        return True

    def _render(self, alarm: AlarmOut) -> None:
        t, viewer = self.viewer.t, self.viewer
        state, state_colour = STATES[AlarmState(alarm.state)]
        priority, priority_colour = PRIORITIES[Priority(alarm.priority)]
        with ui.row().classes("items-center gap-3"):
            ui.badge(t(priority)).props(f"color={priority_colour}")
            ui.label(alarm.rule_name).classes("text-xl font-semibold")
            ui.badge(t(state)).props(f'color={state_colour} data-testid="detail-state"')
        with ui.grid(columns=4).classes("w-full gap-x-6 gap-y-1"):
            for label, text in (
                ("Device", alarm.device_id),
                ("Message", alarm.message or "—"),
                ("Last value", value_text(alarm.last_value)),
                ("Occurrences", str(alarm.occurrence)),
                ("Repeats", str(alarm.repeats)),
                ("Shelved until", viewer.local(alarm.shelved_until, "%Y-%m-%d %H:%M")),
            ):
                with ui.column().classes("gap-0"):
                    ui.label(t(label)).classes("text-xs text-grey-7")
                    ui.label(text)
        with ui.row().classes("gap-2"):
            for action in action_buttons(viewer, alarm):
                ui.button(
                    t(ACTIONS[action][0]),
                    on_click=lambda _e, a=action: self.actions.start(
                        a, alarm.id, f"{alarm.rule_name} · {alarm.device_id}"
                    ),
                ).props(f'outline no-caps data-testid="detail-{action}"')
        ui.label(t("History")).classes("text-lg")
        columns = [
            {"name": "at", "label": t("Time"), "field": "at", "align": "left"},
            {"name": "event", "label": t("Event"), "field": "event", "align": "left"},
            {"name": "user", "label": t("User"), "field": "user", "align": "left"},
            {"name": "from", "label": t("From state"), "field": "from", "align": "left"},
            {"name": "to", "label": t("To state"), "field": "to", "align": "left"},
            {"name": "detail", "label": t("Note"), "field": "detail", "align": "left"},
        ]
        rows = [
            {
                "key": index,
                "at": viewer.local(entry["at"]),
                "event": t(entry["event"]) if entry["event"] in TEXT else entry["event"],
                "user": entry.get("user") or "—",
                "from": _state_label(t, entry["from"]),
                "to": _state_label(t, entry["to"]),
                "detail": history_detail(str(entry.get("detail") or ""), viewer),
            }
            for index, entry in enumerate(reversed(alarm.history))
        ]
        ui.table(columns=columns, rows=rows, row_key="key", pagination=0).classes("w-full").props(
            f'flat dense wrap-cells hide-pagination no-data-label="{t("No history yet")}" '
            'data-testid="alarm-history"'
        )


def _state_label(t: Callable[[str], str], state: str) -> str:
    try:
        return t(STATES[AlarmState(state)][0])
    except ValueError:
        return state


# --- rules --------------------------------------------------------------------------------------


class RuleBoard:
    """The enterprise's alarm rules: list, create, edit, delete; failing rules show why."""

    def __init__(self, console: Console, viewer: Viewer) -> None:
        self.console, self.viewer = console, viewer
        self.rules: dict[int, AlarmRuleOut] = {}
        self.devices: dict[str, DeviceChoice] = {}
        self.busy = False
        self.form = RuleForm(self)
        self.confirm = ui.dialog()
        with self.confirm, ui.card():
            self.confirm_text = ui.label()
            with ui.row().classes("w-full justify-end"):
                ui.button(viewer.t("Cancel"), on_click=lambda: self.confirm.submit(False)).props(
                    "flat"
                )
                ui.button(viewer.t("Delete"), on_click=lambda: self.confirm.submit(True)).props(
                    'no-caps color=negative data-testid="confirm-delete"'
                )

    def build(self) -> None:
        t = self.viewer.t
        with ui.row().classes("w-full items-center"):
            ui.button(t("New rule"), icon="add", on_click=lambda: self.form.open(None)).props(
                'no-caps data-testid="rule-new"'
            )
        self.spinner = ui.spinner(size="lg")
        self.empty = ui.column().classes("w-full")
        with self.empty:
            empty_state(
                self.viewer,
                "No alarm rules yet",
                "Create a rule: pick a machine's device, a tag and a limit, e.g. barrel zone 1 "
                "above 240 °C.",
            )
        self.empty.visible = False
        columns = [
            {"name": "name", "label": t("Name"), "field": "name", "align": "left"},
            {"name": "device", "label": t("Device"), "field": "device", "align": "left"},
            {"name": "kind", "label": t("Kind"), "field": "kind", "align": "left"},
            {"name": "condition", "label": t("Condition"), "field": "condition", "align": "left"},
            {"name": "priority", "label": t("Priority"), "field": "priority", "align": "left"},
            {"name": "status", "label": t("Status"), "field": "status", "align": "left"},
            {"name": "actions", "label": t("Actions"), "field": "id", "align": "left"},
        ]
        self.table = ui.table(columns=columns, rows=[], row_key="id", pagination=0)
        self.table.classes("w-full").props(
            'flat bordered wrap-cells hide-pagination data-testid="rule-table"'
        )
        self.table.add_slot("body-cell-priority", _BADGE.format("priority", ""))
        self.table.add_slot(
            "body-cell-status",
            "<q-td :props=\"props\"><q-badge :color=\"props.row.enabled ? 'green-7' : 'grey-7'\" "
            ':label="props.row.status" data-testid="rule-status" />'
            '<div v-if="props.row.reason" class="text-negative text-caption" '
            'style="max-width: 22rem; white-space: normal" '
            'data-testid="rule-reason">{{ props.row.reason }}</div></q-td>',
        )
        self.table.add_slot(
            "body-cell-actions",
            '<q-td :props="props"><div class="row no-wrap">'
            f'<q-btn dense flat no-caps color="primary" label="{t("Edit")}" '
            'data-testid="rule-edit" @click="$parent.$emit(\'edit\', props.row.id)" />'
            f'<q-btn dense flat no-caps color="negative" label="{t("Delete")}" '
            'data-testid="rule-delete" @click="$parent.$emit(\'delete\', props.row.id)" />'
            "</div></q-td>",
        )
        self.table.on("edit", self._on_edit)
        self.table.on("delete", self._on_delete)
        self.table.visible = False

    def _read(self) -> tuple[list[AlarmRuleOut], list[DeviceChoice]]:
        with session_scope(self.console.runtime.sessions) as session:
            principal = self.viewer.principal
            rules = cast(Sequence[AlarmRule], alarm_api.list_rules(session, principal))
            out = [AlarmRuleOut.model_validate(rule) for rule in rules]
            return out, device_choices(session, principal)

    async def refresh(self) -> None:
        if self.busy:
            return
        self.busy = True
        try:
            found = await _io(self._read)
        finally:
            self.busy = False
        if not isinstance(found, tuple):
            return
        rules, devices = found
        self.rules = {rule.id: rule for rule in rules}
        self.devices = {device.device_id: device for device in devices}
        self.spinner.visible = False
        self.empty.visible = not rules
        self.table.visible = bool(rules)
        rows = [self._row(rule) for rule in rules]
        if rows != self.table.rows:
            self.table.rows = rows

    def device_label(self, device_id: str) -> str:
        device = self.devices.get(device_id)
        return device.label if device else device_id

    def _row(self, rule: AlarmRuleOut) -> dict[str, Any]:
        t = self.viewer.t
        priority, colour = PRIORITIES[Priority(rule.priority)]
        kind = str(rule.definition.get("type", ""))
        return {
            "id": rule.id,
            "name": rule.name,
            "device": self.device_label(rule.device_id),
            "kind": t(KINDS[kind]) if kind in KINDS else kind,
            "condition": rule_summary(rule.definition, t),
            "priority": t(priority),
            "priority_colour": colour,
            "enabled": rule.enabled,
            "status": t("Enabled") if rule.enabled else t("Disabled"),
            "reason": "" if rule.enabled else rule.disabled_reason,
        }

    async def _on_edit(self, event: GenericEventArguments) -> None:
        rule = self.rules.get(int(event.args))
        if rule is not None:
            await self.form.open(rule)

    async def _on_delete(self, event: GenericEventArguments) -> None:
        rule = self.rules.get(int(event.args))
        if rule is None:
            return
        t = self.viewer.t
        text = t("Delete the rule {name}? Its alarm is deleted with it.").format(name=rule.name)
        self.confirm_text.text = text
        if not await self.confirm:
            return
        result = await _io(lambda: self._delete(rule.id))
        if isinstance(result, ClusterBrainError):
            ui.notify(problem_text(self.viewer, result), type="negative")
            return
        ui.notify(t("Rule deleted"), type="positive")
        await self.refresh()

    def _delete(self, rule_id: int) -> bool:
        runtime = self.console.runtime
        with session_scope(runtime.sessions) as session:
            alarm_api.delete_rule(rule_id, session, self.viewer.principal, runtime.alarms)
        runtime.alarms.reload()  # again after the commit: the engine reads rules lazily
        return True


class RuleForm:
    """Create or edit a rule: the kind decides which parameters show; problems name the field."""

    def __init__(self, board: RuleBoard) -> None:
        self.board, self.viewer = board, board.viewer
        self.rule_id: int | None = None
        t = self.viewer.t
        self.dialog = ui.dialog()
        with self.dialog, ui.card().classes("w-[44rem] max-w-full"):
            self.title = ui.label().classes("text-lg font-semibold")
            self.reason = ui.label().classes("text-negative text-sm")
            with ui.grid(columns=2).classes("w-full gap-x-4 gap-y-1"):
                self.name = self._field(ui.input(t("Name")), "name")
                self.device = self._field(
                    ui.select({}, label=t("Device"), on_change=self._device_changed), "device"
                )
                kinds = {kind: t(label) for kind, label in KINDS.items()}
                self.kind = self._field(
                    ui.select(
                        kinds, value="threshold", label=t("Kind"), on_change=self._kind_changed
                    ),
                    "kind",
                )
                priorities = {p.value: t(label) for p, (label, _) in PRIORITIES.items()}
                self.priority = self._field(
                    ui.select(priorities, value="medium", label=t("Priority")), "priority"
                )
            self.params: dict[str, Any] = {}
            with ui.grid(columns=3).classes("w-full gap-x-4 gap-y-1"):
                self.params["tag"] = self._field(
                    ui.select([], label=t("Tag"), new_value_mode="add-unique", clearable=True),
                    "tag",
                )
                self.params["op"] = self._field(
                    ui.select([">", ">=", "<", "<="], value=">", label=t("Comparison")), "op"
                )
                for name in (
                    "limit",
                    "deadband",
                    "delay_s",
                    "max_rate_per_s",
                    "window_s",
                    "timeout_s",
                    "min_duration_s",
                ):
                    self.params[name] = self._field(ui.number(t(FIELDS[name])), name)
                states = {s.value: t(s.value) for s in MachineState}
                self.params["state"] = self._field(
                    ui.select(
                        states,
                        value="unplanned_down",
                        label=t("Machine state"),
                        new_value_mode="add-unique",
                    ),
                    "state",
                )
            self.params["expression"] = self._field(
                ui.textarea(
                    t("Expression"), placeholder="barrel_zone1_temp - barrel_zone2_temp > 15"
                )
                .props("autogrow")
                .classes("w-full"),
                "expression",
            )
            self.no_tag_hint = ui.label(t("Leave empty to watch every tag of the device")).classes(
                "text-xs text-grey-7"
            )
            self.message = self._field(
                ui.input(
                    t("Message"), placeholder=t("Shown with the alarm; the rule's name when empty")
                ),
                "message",
            ).classes("w-full")
            with ui.grid(columns=2).classes("w-full gap-x-4 gap-y-1"):
                self.webhook = self._field(
                    ui.input(t("Webhook URL"), placeholder="https://"), "webhook_url"
                )
                self.emails = self._field(
                    ui.input(
                        t("E-mail addresses"),
                        placeholder=t("Separate several addresses with commas"),
                    ),
                    "emails",
                )
            self.enabled = ui.switch(t("Enabled"), value=True).props('data-testid="rule-enabled"')
            self.error = ui.label().classes("text-negative").props('data-testid="rule-error"')
            with ui.row().classes("w-full justify-end"):
                ui.button(t("Cancel"), on_click=self.dialog.close).props(
                    'flat no-caps data-testid="rule-cancel"'
                )
                self.save_button = ui.button(t("Save"), on_click=self.save).props(
                    'no-caps data-testid="rule-save"'
                )
        self.fields: dict[str, Any] = {
            "name": self.name,
            "device_id": self.device,
            "priority": self.priority,
            "message": self.message,
            "webhook_url": self.webhook,
            "emails": self.emails,
            **self.params,
        }

    @staticmethod
    def _field(element: E, name: str) -> E:
        element.props(f'dense data-testid="rule-{name.replace("_", "-")}"')
        return element

    async def open(self, rule: AlarmRuleOut | None) -> None:
        t = self.viewer.t
        if not self.board.devices:
            await self.board.refresh()
        self.rule_id = None if rule is None else rule.id
        self.title.text = t("Edit rule") if rule else t("New rule")
        self.device.options = {d.device_id: d.label for d in self.board.devices.values()}
        definition: Mapping[str, Any] = rule.definition if rule else {"type": "threshold"}
        self.name.value = rule.name if rule else ""
        self.device.value = (
            rule.device_id if rule and rule.device_id in self.device.options else None
        )
        self.device.update()
        self.priority.value = rule.priority if rule else "medium"
        self.message.value = rule.message if rule else ""
        self.webhook.value = rule.webhook_url if rule else ""
        self.emails.value = ", ".join(rule.emails) if rule else ""
        # a rule the engine stopped is being fixed: saving it switches it on again
        self.enabled.value = rule.enabled or bool(rule.disabled_reason) if rule else True
        failed = rule.disabled_reason if rule and not rule.enabled else ""
        self.reason.text = f"{t('Disabled:')} {failed}" if failed else ""
        self.reason.visible = bool(failed)
        self.kind.value = definition.get("type", "threshold")
        defaults: dict[str, Any] = {
            "tag": None,
            "op": ">",
            "deadband": 0,
            "delay_s": 0,
            "state": "unplanned_down",
        }
        self._tags_of(self.device.value, str(definition.get("tag") or ""))
        state = definition.get("state")
        if state and state not in self.params["state"].options:
            self.params["state"].options[state] = state
            self.params["state"].update()
        for name, element in self.params.items():
            element.value = definition.get(name, defaults.get(name))
        self._clear_problems()
        self._kind_changed()
        self.dialog.open()

    def _tags_of(self, device_id: str | None, keep: str) -> None:
        device = self.board.devices.get(device_id or "")
        tags = list(device.tags) if device else []
        if keep and keep not in tags:
            tags.append(keep)
        tag = self.params["tag"]
        tag.options = tags
        tag.update()

    def _device_changed(self) -> None:
        tag = getattr(self, "params", {}).get("tag")
        if tag is None:  # the form is still being built
            return
        current = str(tag.value or "")
        self._tags_of(self.device.value, "")
        if current not in tag.options:
            tag.value = None

    def _kind_changed(self) -> None:
        params = getattr(self, "params", None)
        if params is None:  # the form is still being built
            return
        kind = str(self.kind.value)
        shown = KIND_FIELDS.get(kind, ())
        for name, element in params.items():
            element.visible = name in shown
        self.no_tag_hint.visible = kind == "no_data"

    def _clear_problems(self) -> None:
        self.error.text = ""
        for element in self.fields.values():
            element.error = None

    def _show_problem(self, field: str | None, message: str) -> None:
        """Next to the field, and in the form's problem line (several join with ';')."""
        t = self.viewer.t
        label = FIELDS.get(field or "")
        text = t("{field}: {problem}").format(field=t(label), problem=message) if label else message
        self.error.text = f"{self.error.text}; {text}" if self.error.text else text
        element = self.fields.get(field or "") or (
            self.params["expression"] if field == "definition" else None
        )
        if element is not None and element.visible:
            element.error = message

    def _definition(self) -> dict[str, Any]:
        kind = str(self.kind.value)
        definition: dict[str, Any] = {"type": kind}
        for name in KIND_FIELDS.get(kind, ()):
            value = self.params[name].value
            if isinstance(value, str):
                value = value.strip()
            if value is not None and value != "":
                definition[name] = value
        return definition

    def _body(self) -> dict[str, Any]:
        emails = [e for e in re.split(r"[,;\s]+", str(self.emails.value or "")) if e]
        body: dict[str, Any] = {
            "name": str(self.name.value or "").strip(),
            "priority": self.priority.value,
            "message": str(self.message.value or "").strip(),
            "webhook_url": str(self.webhook.value or "").strip(),
            "emails": emails,
            "enabled": bool(self.enabled.value),
            "definition": self._definition(),
        }
        if self.device.value:
            body["device_id"] = self.device.value
        return body

    async def save(self) -> None:
        t = self.viewer.t
        self._clear_problems()
        data = self._body()
        try:
            body = _validated(AlarmRuleIn, data)
            parse_rule({**data["definition"], "id": "new"})
        except ValidationError as exc:
            found = sorted(problems(exc), key=lambda p: FORM_ORDER.get(p.field or "", 99))
            for problem in found:
                self._show_problem(problem.field, t(problem.template).format(**problem.values))
            return
        rule_id = self.rule_id
        result = await _io(lambda: self._store(rule_id, body))
        if isinstance(result, ClusterBrainError):
            message = problem_text(self.viewer, result)
            if result.field:
                self._show_problem(result.field, result.detail)
            else:
                self.error.text = message
            ui.notify(message, type="negative")
            return
        if result is None:
            return
        self.dialog.close()
        ui.notify(t("Rule saved"), type="positive")
        await self.board.refresh()

    def _store(self, rule_id: int | None, body: AlarmRuleIn) -> bool:
        runtime = self.board.console.runtime
        principal = self.viewer.principal
        with session_scope(runtime.sessions) as session:
            if rule_id is None:
                alarm_api.create_rule(body, session, principal, runtime.alarms)
            else:
                alarm_api.update_rule(rule_id, body, session, principal, runtime.alarms)
        runtime.alarms.reload()  # again after the commit: the engine reads rules lazily
        return True
