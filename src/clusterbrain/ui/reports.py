"""Reports (报表): KPIs per shift or day by machine and by line, CSV/Excel download, and the
scheduled e-mail reports of each site."""

from __future__ import annotations

import tempfile
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from nicegui import run, ui
from pydantic import ValidationError

from clusterbrain.platform.db import session_scope, utcnow
from clusterbrain.platform.errors import ClusterBrainError, Forbidden, NotFound
from clusterbrain.platform.export import csv_chunks, write_xlsx
from clusterbrain.platform.models import Line, Site
from clusterbrain.platform.service import list_scoped
from clusterbrain.production import oee_service, schemas, service
from clusterbrain.production.kpi import TimeElements, compute_kpis, sum_elements
from clusterbrain.ui.context import Console, Viewer
from clusterbrain.ui.i18n import LANGUAGES
from clusterbrain.ui.layout import empty_state, frame, page
from clusterbrain.ui.overview import percent

TEXT = {
    "Reports": "报表",
    "KPIs by machine and line": "按机台和产线的指标",
    "From date": "开始日期",
    "To date": "结束日期",
    "Period": "周期",
    "Shift": "班次",
    "in progress": "进行中",
    "Day": "天",
    "Show": "查询",
    "Close": "关闭",
    "Download CSV": "下载 CSV",
    "Download Excel": "下载 Excel",
    "Level": "层级",
    "Machine": "机台",
    "Line": "产线",
    "Machine / line": "机台 / 产线",
    "Period start": "周期开始",
    "Period end": "周期结束",
    "OEE": "OEE",
    "Availability": "可用率",
    "Performance": "性能率",
    "Quality": "质量率",
    "Good": "良品",
    "Scrap": "不良品",
    "No machines yet": "还没有设备",
    "Register a device and bind it to a machine to see it here.": "注册设备并绑定到机台后即可在这里看到。",
    "No data": "无数据",
    "Rows per page": "每页行数",
    "Dates look like 2026-05-04, and the start is not after the end": (
        "日期格式如 2026-05-04，且开始日期不能晚于结束日期"
    ),
    "At most 400 days at once": "一次最多查询 400 天",
    "Line totals add up the time elements of their machines; ratios are never averaged.": (
        "产线合计由各机台的时间要素相加得出，不对比率求平均。"
    ),
    "Scheduled reports": "定时报表",
    "Each shift's or day's report is e-mailed with a PDF when the period ends.": (
        "每个班次或每天结束后，报表会以邮件（附 PDF）发送。"
    ),
    "Site": "厂区",
    "E-mail": "电子邮箱",
    "Language": "语言",
    "Last sent": "最近发送",
    "Last error": "最近错误",
    "Add": "添加",
    "Delete": "删除",
    "No scheduled reports": "还没有定时报表",
    "Add an e-mail address to receive each shift's or day's report.": (
        "添加电子邮箱即可收到每个班次或每天的报表。"
    ),
    "Enter a valid e-mail address": "请输入有效的电子邮箱",
    "Choose a site": "请选择厂区",
    "The site was not found": "找不到该厂区",
    "The subscription was not found": "找不到该订阅",
    "Your role may not change report subscriptions": "您的角色无权修改报表订阅",
    "Refused": "操作被拒绝",
    "Subscription added": "已添加订阅",
    "Subscription deleted": "已删除订阅",
}

PERIODS = {"shift": "Shift", "day": "Day"}
DEFAULT_DAYS = 7
MAX_DAYS = 400
PERCENT_COLUMNS = ("oee", "availability", "performance", "quality")


@dataclass(frozen=True, slots=True)
class KpiLine:
    """One row of the table and of the downloads."""

    start: datetime
    end: datetime
    level: str  # "line" or "machine"
    name: str
    line: str
    elements: TimeElements


def register(console: Console) -> None:
    @page("/reports")
    async def reports_page() -> None:
        viewer = console.viewer()
        if viewer is None:
            ui.navigate.to("/login")
            return
        with frame(viewer, viewer.t("Reports")):
            await ReportsPage(console, viewer).build()


def table_labels(viewer: Viewer) -> str:
    """Props that replace Quasar's built-in table texts with the viewer's language."""
    return (
        f'no-data-label="{viewer.t("No data")}" '
        f'rows-per-page-label="{viewer.t("Rows per page")}" '
        ":pagination-label=\"(first, last, total) => first + '–' + last + ' / ' + total\""
    )


def kpi_lines(
    console: Console, viewer: Viewer, start: datetime, end: datetime, period: str
) -> list[KpiLine]:
    """Each visible machine's KPIs per period, and each line's from its machines' summed time
    elements (a line's periods come from its site's calendar, shared by its machines)."""
    runtime = console.runtime
    principal = viewer.principal
    now = utcnow()
    found: list[KpiLine] = []
    per_line: dict[tuple[int, datetime, datetime], list[TimeElements]] = defaultdict(list)
    with session_scope(runtime.sessions) as session:
        lines = {line.id: line.name for line in list_scoped(session, Line, principal)}
        for machine in oee_service.machines_in_scope(session, principal, None, None):
            try:
                _, results = oee_service.machine_kpis_by_period(
                    session,
                    runtime.store,
                    principal,
                    machine.id,
                    start,
                    end,
                    period,
                    default_timezone=viewer.timezone,
                )
            except NotFound:  # removed meanwhile
                continue
            line_name = lines.get(machine.line_id, "")
            for result in (r for r in results if r.start < now):  # not the periods to come
                found.append(
                    KpiLine(
                        result.start,
                        result.end,
                        "machine",
                        machine.name,
                        line_name,
                        result.elements,
                    )
                )
                per_line[(machine.line_id, result.start, result.end)].append(result.elements)
    for (line_id, lo, hi), parts in per_line.items():
        name = lines.get(line_id, str(line_id))
        found.append(KpiLine(lo, hi, "line", name, name, sum_elements(parts)))
    found.sort(key=lambda k: (-k.start.timestamp(), k.line, k.level != "line", k.name))
    return found


def parse_range(first: str, last: str, zone_name: str) -> tuple[datetime, datetime] | None:
    """Local dates ``first``..``last`` (both whole days) as a UTC-aware range, or None.

    >>> start, end = parse_range("2026-05-01", "2026-05-07", "Asia/Shanghai")
    >>> start.isoformat(), (end - start).days
    ('2026-05-01T00:00:00+08:00', 7)
    >>> parse_range("2026-05-08", "2026-05-07", "Asia/Shanghai") is None
    True
    """
    try:
        day_from, day_to = date.fromisoformat(first.strip()), date.fromisoformat(last.strip())
    except ValueError:
        return None
    if day_to < day_from:
        return None
    zone = ZoneInfo(zone_name)
    start = datetime.combine(day_from, time(), zone)
    return start, datetime.combine(day_to + timedelta(days=1), time(), zone)


class ReportsPage:
    def __init__(self, console: Console, viewer: Viewer) -> None:
        self.console, self.viewer = console, viewer
        self.t = viewer.t
        self.lines: list[KpiLine] = []
        self.period = "shift"
        self.computed_at = utcnow()

    # --- KPI table -------------------------------------------------------------------------------

    async def build(self) -> None:
        t = self.t
        today = utcnow().astimezone(self.viewer.zone).date()
        ui.label(t("KPIs by machine and line")).classes("text-xl")
        with ui.row().classes("w-full items-end gap-4"):
            self.first = _date_input(
                self.viewer, t("From date"), today - timedelta(days=DEFAULT_DAYS - 1), "report-from"
            )
            self.last = _date_input(self.viewer, t("To date"), today, "report-to")
            self.period_toggle = ui.toggle(
                {key: t(label) for key, label in PERIODS.items()}, value="shift"
            ).props('data-testid="report-period"')
            self.show_button = ui.button(t("Show"), icon="search", on_click=self.compute).props(
                'data-testid="report-show"'
            )
            ui.space()
            self.csv_button = ui.button(
                t("Download CSV"), icon="download", on_click=lambda: self.download("csv")
            ).props('outline data-testid="download-csv"')
            self.xlsx_button = ui.button(
                t("Download Excel"), icon="download", on_click=lambda: self.download("xlsx")
            ).props('outline data-testid="download-xlsx"')
        ui.label(
            t("Line totals add up the time elements of their machines; ratios are never averaged.")
        ).classes("text-grey-7 text-sm")
        self.table_area = ui.column().classes("w-full")
        ui.label(t("Scheduled reports")).classes("text-xl mt-4")
        ui.label(
            t("Each shift's or day's report is e-mailed with a PDF when the period ends.")
        ).classes("text-grey-7 text-sm")
        self.subscription_form()
        self.subscription_area = ui.column().classes("w-full gap-0")
        await self.show_subscriptions()
        await self.compute()

    async def compute(self) -> None:
        t = self.t
        found = parse_range(
            str(self.first.value or ""), str(self.last.value or ""), self.viewer.timezone
        )
        if found is None:
            ui.notify(
                t("Dates look like 2026-05-04, and the start is not after the end"), type="negative"
            )
            return
        start, end = found
        if end - start > timedelta(days=MAX_DAYS):
            ui.notify(t("At most 400 days at once"), type="negative")
            return
        period = str(self.period_toggle.value or "shift")
        self.table_area.clear()
        with self.table_area:
            ui.spinner(size="lg").props('data-testid="report-loading"')
        for button in (self.show_button, self.csv_button, self.xlsx_button):
            button.disable()
        try:
            lines = await run.io_bound(kpi_lines, self.console, self.viewer, start, end, period)
        except ClusterBrainError as error:
            ui.notify(f"{t('Refused')}: {error.detail}", type="negative")
            lines = []
        finally:
            for button in (self.show_button, self.csv_button, self.xlsx_button):
                button.enable()
        self.lines, self.period, self.computed_at = lines or [], period, utcnow()
        self._show_table()

    def _show_table(self) -> None:
        t = self.t
        self.table_area.clear()
        with self.table_area:
            if not self.lines:
                empty_state(
                    self.viewer,
                    "No machines yet",
                    "Register a device and bind it to a machine to see it here.",
                )
                return
            columns = [
                {"name": "period", "label": t("Period"), "field": "period", "align": "left"},
                {"name": "level", "label": t("Level"), "field": "level", "align": "left"},
                {"name": "name", "label": t("Machine / line"), "field": "name", "align": "left"},
                {"name": "oee", "label": t("OEE"), "field": "oee"},
                {"name": "availability", "label": t("Availability"), "field": "availability"},
                {"name": "performance", "label": t("Performance"), "field": "performance"},
                {"name": "quality", "label": t("Quality"), "field": "quality"},
                {"name": "good", "label": t("Good"), "field": "good"},
                {"name": "scrap", "label": t("Scrap"), "field": "scrap"},
            ]
            ui.table(
                columns=columns,
                rows=[self._table_row(i, line) for i, line in enumerate(self.lines)],
                row_key="id",
                pagination=20,
            ).props(
                f"flat bordered dense {table_labels(self.viewer)} "
                ":table-row-class-fn=\"row => row.is_line ? 'bg-blue-1 text-weight-medium' : ''\" "
                'data-testid="kpi-table"'
            ).classes("w-full")

    def _period_label(self, line: KpiLine) -> str:
        """The period in the viewer's zone; one still running says so (its planned time counts
        to its end, so its ratios are still growing)."""
        local = self.viewer.local
        if self.period == "day":
            label = local(line.start, "%Y-%m-%d")
        else:
            label = f"{local(line.start, '%Y-%m-%d %H:%M')}–{local(line.end, '%H:%M')}"
        if line.end > self.computed_at:
            label = f"{label} · {self.t('in progress')}"
        return label

    def _table_row(self, index: int, line: KpiLine) -> dict[str, object]:
        kpis = compute_kpis(line.elements)
        return {
            "id": index,
            "is_line": line.level == "line",
            "period": self._period_label(line),
            "level": self.t("Line" if line.level == "line" else "Machine"),
            "name": line.name,
            "oee": percent(kpis.oee),
            "availability": percent(kpis.availability),
            "performance": percent(kpis.effectiveness),
            "quality": percent(kpis.quality_ratio),
            "good": f"{line.elements.good_quantity:.0f}",
            "scrap": f"{line.elements.scrap_quantity:.0f}",
        }

    # --- downloads -------------------------------------------------------------------------------

    def _export_rows(self) -> tuple[list[str], list[list[object]]]:
        t = self.t
        header = [
            t("Period start"),
            t("Period end"),
            t("Level"),
            t("Machine / line"),
            t("Line"),
            f"{t('OEE')} %",
            f"{t('Availability')} %",
            f"{t('Performance')} %",
            f"{t('Quality')} %",
            t("Good"),
            t("Scrap"),
        ]
        rows: list[list[object]] = []
        for line in self.lines:
            kpis = compute_kpis(line.elements)
            rows.append(
                [
                    self.viewer.local(line.start, "%Y-%m-%d %H:%M"),
                    self.viewer.local(line.end, "%Y-%m-%d %H:%M"),
                    t("Line" if line.level == "line" else "Machine"),
                    line.name,
                    line.line,
                    *(
                        None if ratio is None else round(ratio * 100, 1)
                        for ratio in (
                            kpis.oee,
                            kpis.availability,
                            kpis.effectiveness,
                            kpis.quality_ratio,
                        )
                    ),
                    round(line.elements.good_quantity),
                    round(line.elements.scrap_quantity),
                ]
            )
        return header, rows

    def _xlsx_bytes(self, header: list[str], rows: list[list[object]]) -> bytes:
        folder = self.console.runtime.settings.var_dir / "exports"
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, suffix=".xlsx", delete=False) as handle:
            path = Path(handle.name)
        try:
            write_xlsx(path, "KPIs", header, rows)
            return path.read_bytes()
        finally:
            path.unlink(missing_ok=True)

    async def download(self, fmt: str) -> None:
        header, rows = self._export_rows()
        first, last = str(self.first.value or ""), str(self.last.value or "")
        name = f"kpis-{self.period}-{first}-{last}"
        if fmt == "csv":
            content = b"".join(csv_chunks(header, rows))
            ui.download.content(content, f"{name}.csv", "text/csv")
            return
        content = await run.io_bound(self._xlsx_bytes, header, rows) or b""
        ui.download.content(
            content,
            f"{name}.xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        )

    # --- subscriptions ---------------------------------------------------------------------------

    def _sites(self) -> dict[int, str]:
        with session_scope(self.console.runtime.sessions) as session:
            return {s.id: s.name for s in list_scoped(session, Site, self.viewer.principal)}

    def subscription_form(self) -> None:
        t = self.t
        sites = self._sites()
        with ui.row().classes("w-full items-end gap-4"):
            self.site = (
                ui.select(sites, value=next(iter(sites), None), label=t("Site"))
                .props('data-testid="subscription-site"')
                .classes("w-56")
            )
            self.email = (
                ui.input(t("E-mail")).props('data-testid="subscription-email"').classes("w-72")
            )
            self.sub_period = ui.toggle(
                {key: t(label) for key, label in PERIODS.items()}, value="day"
            ).props('data-testid="subscription-period"')
            self.language = (
                ui.select(dict(LANGUAGES), value=self.viewer.language, label=t("Language"))
                .props('data-testid="subscription-language"')
                .classes("w-32")
            )
            ui.button(t("Add"), icon="add", on_click=self.add_subscription).props(
                'data-testid="add-subscription"'
            )

    def _problem(self, error: ClusterBrainError | ValidationError) -> str:
        t = self.t
        if isinstance(error, ValidationError):
            return t("Enter a valid e-mail address")
        if isinstance(error, NotFound):
            field = error.field or ""
            return t(
                "The site was not found" if field == "site_id" else "The subscription was not found"
            )
        if isinstance(error, Forbidden):
            return t("Your role may not change report subscriptions")
        return f"{t('Refused')}: {error.detail}"

    async def add_subscription(self) -> None:
        if self.site.value is None:
            ui.notify(self.t("Choose a site"), type="negative")
            return
        try:
            data = schemas.SubscriptionIn(
                site_id=int(self.site.value),
                email=str(self.email.value or "").strip(),
                period=str(self.sub_period.value),
                language=str(self.language.value),
            )
            with session_scope(self.console.runtime.sessions) as session:
                service.create_subscription(session, self.viewer.principal, data)
        except (ClusterBrainError, ValidationError) as error:
            ui.notify(self._problem(error), type="negative")
            return
        self.email.value = ""
        ui.notify(self.t("Subscription added"), type="positive")
        await self.show_subscriptions()

    async def delete_subscription(self, ident: int) -> None:
        try:
            with session_scope(self.console.runtime.sessions) as session:
                service.delete_subscription(session, self.viewer.principal, ident)
        except ClusterBrainError as error:
            ui.notify(self._problem(error), type="negative")
            return
        ui.notify(self.t("Subscription deleted"))
        await self.show_subscriptions()

    def _read_subscriptions(self) -> list[dict[str, object]]:
        principal = self.viewer.principal
        with session_scope(self.console.runtime.sessions) as session:
            sites = {s.id: s.name for s in list_scoped(session, Site, principal)}
            return [
                {
                    "id": row.id,
                    "site": sites.get(row.site_id, str(row.site_id)),
                    "email": row.email,
                    "period": self.t(PERIODS.get(row.period, row.period)),
                    "language": LANGUAGES.get(row.language, row.language),
                    "last_sent": self.viewer.local(row.last_period_end),
                    "last_error": row.last_error or "—",
                }
                for row in service.list_subscriptions(session, principal)
            ]

    async def show_subscriptions(self) -> None:
        t = self.t
        rows = await run.io_bound(self._read_subscriptions) or []
        self.subscription_area.clear()
        with self.subscription_area:
            if not rows:
                empty_state(
                    self.viewer,
                    "No scheduled reports",
                    "Add an e-mail address to receive each shift's or day's report.",
                )
                return
            grid = "grid gap-x-3 items-center"
            columns = "grid-template-columns: 1.2fr 2fr 0.7fr 0.7fr 1.2fr 2fr 0.5fr"
            with (
                ui.element("div")
                .classes(f"w-full {grid} px-2 py-1 text-grey-7 text-sm")
                .style(columns)
            ):
                for heading in ("Site", "E-mail", "Period", "Language", "Last sent", "Last error"):
                    ui.label(t(heading))
                ui.label("")
            for row in rows:
                with (
                    ui.element("div")
                    .classes(f"w-full {grid} px-2 py-1 border-t")
                    .style(columns)
                    .props(f'data-testid="subscription-{row["id"]}"')
                ):
                    for key in ("site", "email", "period", "language", "last_sent", "last_error"):
                        ui.label(str(row[key]))
                    ui.button(
                        icon="delete",
                        on_click=lambda _e, ident=row["id"]: self.delete_subscription(int(ident)),
                    ).props(
                        f'flat dense round color=negative data-testid="delete-subscription-{row["id"]}"'
                    ).tooltip(t("Delete"))


def _date_input(viewer: Viewer, label: str, value: date, test_id: str) -> ui.input:
    """A date field with a calendar; Quasar's calendar words follow the viewer's language."""
    field = ui.input(label, value=value.isoformat()).classes("w-40")
    with field.props(f'data-testid="{test_id}"'):
        with ui.menu().props("no-parent-event") as menu:
            picker = ui.date(mask="YYYY-MM-DD").bind_value(field)
            if viewer.language == "en":
                picker.props["locale"] = ENGLISH_CALENDAR
            with picker, ui.row().classes("justify-end"):
                ui.button(viewer.t("Close"), on_click=menu.close).props("flat")
        with field.add_slot("append"):
            ui.icon("edit_calendar").on("click", menu.open).classes("cursor-pointer").props(
                f'data-testid="{test_id}-calendar"'
            )
    return field


ENGLISH_CALENDAR = {
    "days": ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"],
    "daysShort": ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"],
    "months": [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ],
    "monthsShort": [
        "Jan",
        "Feb",
        "Mar",
        "Apr",
        "May",
        "Jun",
        "Jul",
        "Aug",
        "Sep",
        "Oct",
        "Nov",
        "Dec",
    ],
    "firstDayOfWeek": 1,
    "format24h": True,
    "pluralDay": "days",
}
