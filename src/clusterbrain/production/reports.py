"""Shift and day reports: KPI tables rendered as HTML and PDF in zh-CN or English (pure).

PDFs use reportlab's built-in CID font STSong-Light, which renders Chinese without shipping font
files.
"""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from reportlab.lib import colors
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.styles import getSampleStyleSheet
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from clusterbrain.production.kpi import KpiSet, TimeElements

PDF_FONT = "STSong-Light"

LABELS = {
    "en": {
        "title": "Production report",
        "period": "Period",
        "machine": "Machine",
        "availability": "Availability",
        "effectiveness": "Performance",
        "quality": "Quality",
        "oee": "OEE",
        "good": "Good",
        "scrap": "Scrap",
        "down_min": "Down (min)",
        "total": "All machines",
    },
    "zh-CN": {
        "title": "生产报表",
        "period": "时段",
        "machine": "设备",
        "availability": "可用率",
        "effectiveness": "性能率",
        "quality": "良品率",
        "oee": "设备综合效率",
        "good": "良品数",
        "scrap": "废品数",
        "down_min": "停机（分钟）",
        "total": "全部设备",
    },
}


@dataclass(frozen=True, slots=True)
class ReportRow:
    label: str
    elements: TimeElements
    kpis: KpiSet


@dataclass(frozen=True, slots=True)
class Report:
    enterprise: str
    period_name: str
    start: datetime
    end: datetime
    rows: Sequence[ReportRow]
    total: ReportRow
    language: str = "zh-CN"

    @property
    def labels(self) -> dict[str, str]:
        return LABELS.get(self.language, LABELS["en"])

    @property
    def title(self) -> str:
        return f"{self.labels['title']} · {self.enterprise} · {self.period_name}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f} %"


def table_rows(report: Report) -> list[list[str]]:
    """Header and one line per machine, then the total (from summed time elements).

    >>> from clusterbrain.production.kpi import compute_kpis
    >>> e = TimeElements(planned_operation_time=480, actual_production_time=420)
    >>> r = ReportRow("IMM-01", e, compute_kpis(e))
    >>> rep = Report("Lumen", "day", datetime(2026, 1, 1), datetime(2026, 1, 2), [r], r, "en")
    >>> table_rows(rep)[1][:2]
    ['IMM-01', '87.5 %']
    """
    labels = report.labels
    header = [
        labels[k]
        for k in (
            "machine",
            "availability",
            "effectiveness",
            "quality",
            "oee",
            "good",
            "scrap",
            "down_min",
        )
    ]
    lines = [header]
    for row in [*report.rows, report.total]:
        e, k = row.elements, row.kpis
        lines.append(
            [
                row.label,
                _pct(k.availability),
                _pct(k.effectiveness),
                _pct(k.quality_ratio),
                _pct(k.oee),
                f"{e.good_quantity:.0f}",
                f"{e.scrap_quantity:.0f}",
                f"{e.actual_unit_down_time / 60:.0f}",
            ]
        )
    return lines


def render_html(report: Report) -> str:
    lines = table_rows(report)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in lines[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in line) + "</tr>" for line in lines[1:]
    )
    span = f"{report.start:%Y-%m-%d %H:%M} – {report.end:%Y-%m-%d %H:%M}"
    return (
        f'<html lang="{report.language}"><head><meta charset="utf-8">'
        f"<title>{html.escape(report.title)}</title></head><body>"
        f"<h1>{html.escape(report.title)}</h1><p>{report.labels['period']}: {span}</p>"
        f'<table border="1" cellpadding="4" cellspacing="0"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></body></html>"
    )


def render_pdf(report: Report) -> bytes:
    _register_font()
    buffer = io.BytesIO()
    document = SimpleDocTemplate(buffer, pagesize=landscape(A4), title=report.title)
    styles = getSampleStyleSheet()
    heading, normal = styles["Heading2"], styles["Normal"]
    heading.fontName = normal.fontName = PDF_FONT
    span = f"{report.labels['period']}: {report.start:%Y-%m-%d %H:%M} – {report.end:%Y-%m-%d %H:%M}"
    table = Table(table_rows(report), repeatRows=1)
    table.setStyle(
        TableStyle(
            [
                ("FONT", (0, 0), (-1, -1), PDF_FONT, 9),
                ("BACKGROUND", (0, 0), (-1, 0), colors.lightgrey),
                ("GRID", (0, 0), (-1, -1), 0.25, colors.grey),
                ("ALIGN", (1, 1), (-1, -1), "RIGHT"),
            ]
        )
    )
    document.build([Paragraph(report.title, heading), Paragraph(span, normal), Spacer(1, 8), table])
    return buffer.getvalue()


def _register_font() -> None:
    if PDF_FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(PDF_FONT))
