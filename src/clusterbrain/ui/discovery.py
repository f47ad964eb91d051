"""OPC UA discovery in the console: an engineer names an endpoint, the server browses it, the
variables are listed with checkboxes (tag names editable), and the chosen ones become a device
profile (writable ones with their range) and the gateway's node list to copy into gateway.yaml.

Discovery connects from the platform to the named server, so it is for the roles that set up
devices (engineers and administrators), as creating the profile is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from nicegui import ui
from pydantic import ValidationError

from clusterbrain.api.runtime import Runtime
from clusterbrain.connectors.opcua.browse import discover_draft
from clusterbrain.connectors.opcua.client import OpcUaConnectError
from clusterbrain.connectors.opcua.draft import (
    MAX_UNIT_LENGTH,
    DiscoveredVariable,
    assign_tags,
    profile_data_type,
    skip_reason,
    snake_case,
)
from clusterbrain.devices import schemas
from clusterbrain.devices import service as devices
from clusterbrain.devices.spec import TagKind
from clusterbrain.platform.db import session_scope
from clusterbrain.platform.errors import ClusterBrainError, Conflict, Forbidden, InvalidInput
from clusterbrain.platform.tenancy import CONFIGURE_ROLES, Principal
from clusterbrain.ui.commands import range_text, refusable
from clusterbrain.ui.context import Console, Viewer

TEXT = {
    "Discover OPC UA server": "发现 OPC UA 服务器",
    "Discovery: OPC UA server → device profile": "发现：OPC UA 服务器 → 设备模板",
    "Endpoint": "服务器地址",
    "Discover": "开始发现",
    "Browsing the server…": "正在浏览服务器…",
    "Enter an endpoint of the form opc.tcp://host:port": "请输入 opc.tcp://主机:端口 形式的地址",
    "Cannot reach the server: is it running, and is the address right?": (
        "无法连接服务器：请确认服务器已运行且地址正确。"
    ),
    "The server did not answer in time": "服务器未及时应答",
    "The server refused the login": "服务器拒绝了登录",
    "The server refused the secure channel": "服务器拒绝了安全通道",
    "The server answered with an error": "服务器返回了错误",
    "The server has no variables to read": "该服务器没有可读取的变量",
    "{n} variables found; {skipped} left out (arrays or types a tag cannot hold).": (
        "发现 {n} 个变量；{skipped} 个未列出（数组或数据点无法保存的类型）。"
    ),
    "{n} variables found.": "发现 {n} 个变量。",
    "Select all": "全选",
    "Browse path": "浏览路径",
    "Tag name": "数据点",
    "Type": "类型",
    "Unit": "单位",
    "Writable": "可写",
    "Range": "范围",
    "float": "浮点数",
    "int": "整数",
    "bool": "布尔",
    "string": "文本",
    "Profile name": "模板名称",
    "Create profile": "创建设备模板",
    "Choose at least one variable": "请至少选择一个变量",
    "{n} selected": "已选 {n} 个",
    "Profile {name} created with {n} tags": "已创建设备模板 {name}，共 {n} 个数据点",
    "Gateway node list: copy it into gateway.yaml": "网关节点列表：复制到 gateway.yaml",
    "Copy": "复制",
    "Copied": "已复制",
    "Close": "关闭",
    "Refused": "操作被拒绝",
    "Your role may not change devices": "您的角色无权修改设备",
    "A profile named {name} already exists": "已存在名为 {name} 的设备模板",
    "Profile name: 1 to 100 characters": "模板名称：1 到 100 个字符",
    "Tag name {tag}: lower-case letters, digits and '_', starting with a letter": (
        "数据点 {tag}：只能用小写字母、数字和“_”，并以字母开头"
    ),
    "Tag name {tag} appears twice": "数据点 {tag} 重复",
}

KINDS_OF_ERROR = {
    "unreachable": "Cannot reach the server: is it running, and is the address right?",
    "timeout": "The server did not answer in time",
    "auth": "The server refused the login",
    "security": "The server refused the secure channel",
}
"""``OpcUaConnectError.kind`` → the headline shown (the connector's own message below it)."""
DISCOVERY_TIMEOUT_S = 60.0
MAX_DISCOVERED_ROWS = 500


@dataclass
class _Choice:
    variable: DiscoveredVariable
    kind: str
    selected: ui.checkbox
    tag: ui.input
    writable: ui.checkbox


class DiscoveryDialog:
    """Endpoint → variables with checkboxes → a device profile and the gateway's node list."""

    def __init__(self, console: Console, viewer: Viewer) -> None:
        self.console, self.viewer = console, viewer
        self.t = viewer.t
        self.choices: list[_Choice] = []
        self.endpoint_used = ""

    def open(self) -> None:
        t = self.t
        with (
            ui.dialog() as self.dialog,
            ui.card().classes("w-[76rem] max-w-full gap-3").props('data-testid="discovery"'),
        ):
            ui.label(t("Discovery: OPC UA server → device profile")).classes(
                "text-lg font-semibold"
            )
            with ui.row().classes("w-full items-end gap-3 no-wrap"):
                self.endpoint = (
                    ui.input(t("Endpoint"), placeholder="opc.tcp://192.168.1.30:4840")
                    .props('outlined dense data-testid="discovery-endpoint"')
                    .classes("grow")
                )
                self.run_button = ui.button(
                    t("Discover"), icon="travel_explore", on_click=self._run
                ).props('data-testid="discovery-run"')
            self.endpoint.on("keydown.enter", self._run)
            self.result = ui.column().classes("w-full gap-2")
            with ui.row().classes("w-full justify-end"):
                ui.button(t("Close"), on_click=self.dialog.close).props(
                    'flat data-testid="discovery-close"'
                )
        self.dialog.on("hide", self.dialog.delete)
        self.dialog.open()

    async def _run(self) -> None:
        t = self.t
        url = str(self.endpoint.value or "").strip()
        self.result.clear()
        if not url.startswith("opc.tcp://") or len(url) <= len("opc.tcp://"):
            self._error(t("Enter an endpoint of the form opc.tcp://host:port"))
            return
        try:
            self.viewer.principal.require(CONFIGURE_ROLES, "discover OPC UA servers")
        except Forbidden:
            self._error(t("Your role may not change devices"))
            return
        with (
            self.result,
            ui.row().classes("items-center gap-2").props('data-testid="discovery-busy"'),
        ):
            ui.spinner(size="md")
            ui.label(t("Browsing the server…"))
        self.run_button.disable()
        try:
            report = await asyncio.wait_for(discover_draft(url), DISCOVERY_TIMEOUT_S)
        except OpcUaConnectError as exc:
            headline = t(KINDS_OF_ERROR.get(exc.kind, "The server answered with an error"))
            self._error(headline, exc.detail)
            return
        except TimeoutError:
            self._error(t("The server did not answer in time"))
            return
        except Exception as exc:  # a broken server must not break the page
            self._error(t("The server answered with an error"), f"{type(exc).__name__}: {exc}")
            return
        finally:
            self.run_button.enable()
        self.endpoint_used = url
        self._show(report.variables)

    def _error(self, headline: str, detail: str = "") -> None:
        self.result.clear()
        with (
            self.result,
            ui.row()
            .classes("w-full items-start no-wrap bg-red-1 p-2 rounded")
            .props('data-testid="discovery-error"'),
        ):
            ui.icon("error", color="negative")
            with ui.column().classes("gap-0"):
                ui.label(headline).classes("font-semibold")
                if detail:
                    ui.label(detail).classes("text-grey-8 text-sm font-mono")

    def _show(self, variables: Sequence[DiscoveredVariable]) -> None:
        t = self.t
        kept = [v for v in variables if skip_reason(v) is None][:MAX_DISCOVERED_ROWS]
        names = assign_tags(kept)
        skipped = len(variables) - len(kept)
        self.result.clear()
        self.choices = []
        with self.result:
            if not kept:
                self._error(t("The server has no variables to read"))
                return
            summary = (
                t("{n} variables found; {skipped} left out (arrays or types a tag cannot hold).")
                if skipped
                else t("{n} variables found.")
            )
            with ui.row().classes("w-full items-center gap-4"):
                ui.label(summary.format(n=len(variables), skipped=skipped)).classes("text-grey-7")
                ui.space()
                self.count = ui.label(t("{n} selected").format(n=0)).props(
                    'data-testid="discovery-count"'
                )
                ui.checkbox(t("Select all"), on_change=self._select_all).props(
                    'data-testid="discovery-select-all"'
                )
            columns = "grid-template-columns: 2rem 2.6fr 2.2fr 0.6fr 0.5fr 0.5fr 0.9fr"
            grid = "w-full grid gap-x-2 items-center"
            with ui.element("div").classes(f"{grid} px-1 text-grey-7 text-sm").style(columns):
                for heading in ("", "Tag name", "Browse path", "Type", "Unit", "Writable", "Range"):
                    ui.label(t(heading) if heading else "")
            with ui.scroll_area().classes("w-full h-96 border rounded"):
                for variable in kept:
                    self._row(variable, names[variable.node_id], grid, columns)
            with ui.row().classes("w-full items-end gap-3"):
                self.profile_name = (
                    ui.input(t("Profile name"), value=_profile_name(kept))
                    .props('outlined dense data-testid="discovery-profile-name"')
                    .classes("w-80")
                )
                ui.button(t("Create profile"), icon="add", on_click=self._create).props(
                    'data-testid="discovery-create"'
                )
            self.nodes_area = ui.column().classes("w-full gap-2")

    def _row(self, variable: DiscoveredVariable, tag: str, grid: str, columns: str) -> None:
        kind = profile_data_type(variable.data_type) or "string"
        with (
            ui.element("div")
            .classes(f"{grid} px-1 border-t")
            .style(columns)
            .props(f'data-testid="discovery-row-{tag}"')
        ):
            selected = ui.checkbox(on_change=self._count).props(
                f'dense data-testid="discovery-select-{tag}"'
            )
            name = ui.input(value=tag).props(f'dense data-testid="discovery-tag-{tag}"')
            ui.label(variable.browse_path).classes("font-mono text-xs break-all")
            ui.label(self.t(kind))
            ui.label(variable.unit or "—")
            writable = ui.checkbox(value=variable.writable).props(
                f'dense data-testid="discovery-writable-{tag}"'
            )
            if not variable.writable:
                writable.disable()
            ui.label(range_text(variable.min_value, variable.max_value) or "—").classes("text-sm")
        self.choices.append(_Choice(variable, kind, selected, name, writable))

    def _selected(self) -> list[_Choice]:
        return [choice for choice in self.choices if choice.selected.value]

    def _count(self) -> None:
        self.count.text = self.t("{n} selected").format(n=len(self._selected()))

    def _select_all(self, event: Any) -> None:
        for choice in self.choices:
            choice.selected.set_value(bool(event.value))
        self._count()

    async def _create(self) -> None:
        t = self.t
        chosen = self._selected()
        if not chosen:
            ui.notify(t("Choose at least one variable"), type="negative")
            return
        name = str(self.profile_name.value or "").strip()
        tags = [(str(c.tag.value or "").strip(), c) for c in chosen]
        runtime, principal = self.console.runtime, self.viewer.principal
        result = await refusable(lambda: _create_profile(runtime, principal, name, tags))
        if isinstance(result, ClusterBrainError | ValidationError):
            ui.notify(self._problem(result, name, tags), type="negative", multi_line=True)
            return
        if result is None:
            return
        ui.notify(
            t("Profile {name} created with {n} tags").format(name=name, n=len(tags)),
            type="positive",
        )
        self._show_nodes(name, tags)

    def _problem(
        self,
        error: ClusterBrainError | ValidationError,
        name: str,
        tags: Sequence[tuple[str, _Choice]],
    ) -> str:
        t = self.t
        if isinstance(error, ValidationError):
            loc = error.errors()[0]["loc"]
            if loc and loc[0] == "tags" and len(loc) > 1 and isinstance(loc[1], int):
                tag = tags[loc[1]][0] if loc[1] < len(tags) else ""
                return t(
                    "Tag name {tag}: lower-case letters, digits and '_', starting with a letter"
                ).format(tag=tag)
            return t("Profile name: 1 to 100 characters")
        if isinstance(error, Forbidden):
            return t("Your role may not change devices")
        if isinstance(error, Conflict):
            return t("A profile named {name} already exists").format(name=name)
        if isinstance(error, InvalidInput) and (error.field or "").startswith("tags["):
            index = int((error.field or "tags[0]").split("[")[1].split("]")[0])
            tag = tags[index][0] if index < len(tags) else ""
            return t("Tag name {tag} appears twice").format(tag=tag)
        return f"{t('Refused')}: {error.detail}"

    def _show_nodes(self, name: str, tags: Sequence[tuple[str, _Choice]]) -> None:
        t = self.t
        text = gateway_nodes_yaml(
            self.endpoint_used,
            name.replace("_", "-") + "-01",
            [(tag, choice.variable, bool(choice.writable.value)) for tag, choice in tags],
        )
        self.nodes_area.clear()
        with self.nodes_area:
            ui.label(t("Gateway node list: copy it into gateway.yaml")).classes("font-semibold")
            ui.code(text, language="yaml").classes("w-full").props('data-testid="discovery-nodes"')

            def copy() -> None:
                ui.clipboard.write(text)
                ui.notify(t("Copied"), type="positive")

            ui.button(t("Copy"), icon="content_copy", on_click=copy).props(
                'flat data-testid="discovery-copy"'
            )


def _profile_name(variables: Sequence[DiscoveredVariable]) -> str:
    """A default name: the first browse path segment (the machine object), snake-cased.

    >>> from clusterbrain.connectors.opcua.draft import DiscoveredVariable as V
    >>> _profile_name([V("ns=2;s=IMM1.A", "IMM1/A", "Double", 1.0, False)])
    'imm1_opcua'
    """

    first = variables[0].browse_path.split("/")[0] if variables else ""
    return f"{snake_case(first) or 'device'}_opcua"


def _tag_in(tag: str, choice: _Choice) -> schemas.TagIn:
    variable, kind = choice.variable, choice.kind
    numeric = kind in ("float", "int")
    return schemas.TagIn(
        name=tag,
        unit=variable.unit[:MAX_UNIT_LENGTH],
        data_type=TagKind(kind),
        min_value=variable.min_value if numeric else None,
        max_value=variable.max_value if numeric else None,
        description_en=variable.description,
        writable=bool(choice.writable.value) and variable.writable,
    )


def _create_profile(
    runtime: Runtime, principal: Principal, name: str, tags: Sequence[tuple[str, _Choice]]
) -> int:
    data = schemas.ProfileIn(
        name=name,
        description=f"From OPC UA discovery ({len(tags)} tags)",
        tags=[_tag_in(tag, choice) for tag, choice in tags],
    )
    with session_scope(runtime.sessions) as session:
        return devices.create_profile(session, principal, data).id


def gateway_nodes_yaml(
    endpoint: str, device_id: str, tags: Sequence[tuple[str, DiscoveredVariable, bool]]
) -> str:
    """The gateway.yaml entry reading the chosen variables; writable ones carry their range.

    >>> from clusterbrain.connectors.opcua.draft import DiscoveredVariable as V
    >>> v = V("ns=2;s=CNC1.Spindle.Override", "CNC1/Spindle/Override", "Double", 100.0, True,
    ...       min_value=50.0, max_value=120.0)
    >>> print(gateway_nodes_yaml("opc.tcp://h:4840", "cnc-01", [("spindle_override", v, True)]))
    devices:
    - id: cnc-01
      protocol: opcua
      opcua:
        endpoint: opc.tcp://h:4840
        nodes:
        - tag: spindle_override
          node_id: ns=2;s=CNC1.Spindle.Override
          writable: true
          min_value: 50.0
          max_value: 120.0
    <BLANKLINE>
    """
    nodes: list[dict[str, Any]] = []
    for tag, variable, writable in tags:
        node: dict[str, Any] = {"tag": tag, "node_id": variable.node_id}
        if writable and variable.writable:
            node["writable"] = True
            bounds = {"min_value": variable.min_value, "max_value": variable.max_value}
            node.update({key: value for key, value in bounds.items() if value is not None})
        nodes.append(node)
    document = {
        "devices": [
            {"id": device_id, "protocol": "opcua", "opcua": {"endpoint": endpoint, "nodes": nodes}}
        ]
    }
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
