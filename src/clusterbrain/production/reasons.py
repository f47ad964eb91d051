"""The standard downtime reason tree every enterprise starts from (editable per enterprise)."""

from __future__ import annotations

from typing import NamedTuple


class StandardReason(NamedTuple):
    code: str
    parent: str | None
    name_en: str
    name_zh: str
    category: str


CATEGORIES = ("unplanned_down", "planned_stop", "setup", "small_stop", "quality", "external")

STANDARD_REASONS: tuple[StandardReason, ...] = (
    StandardReason("BRK", None, "Breakdown", "设备故障", "unplanned_down"),
    StandardReason("BRK.MECH", "BRK", "Mechanical failure", "机械故障", "unplanned_down"),
    StandardReason("BRK.ELEC", "BRK", "Electrical failure", "电气故障", "unplanned_down"),
    StandardReason("BRK.HYD", "BRK", "Hydraulic failure", "液压故障", "unplanned_down"),
    StandardReason(
        "BRK.HEAT", "BRK", "Heater or temperature control", "加热/温控故障", "unplanned_down"
    ),
    StandardReason(
        "BRK.MOULD", "BRK", "Mould or tooling damage", "模具/刀具损坏", "unplanned_down"
    ),
    StandardReason("SET", None, "Setup and changeover", "换模/换线调机", "setup"),
    StandardReason("SET.MOULD", "SET", "Mould change", "换模", "setup"),
    StandardReason("SET.ADJ", "SET", "Adjustment and trial shots", "调机/试模", "setup"),
    StandardReason("MAT", None, "Material", "物料问题", "external"),
    StandardReason("MAT.SHORT", "MAT", "Waiting for material", "待料", "external"),
    StandardReason("MAT.DRY", "MAT", "Material drying", "原料干燥", "external"),
    StandardReason("PER", None, "Personnel", "人员", "external"),
    StandardReason("PER.ABS", "PER", "No operator", "缺员/无人操作", "external"),
    StandardReason("QUA", None, "Quality", "质量问题", "quality"),
    StandardReason("QUA.INSP", "QUA", "Quality inspection or hold", "质检/待判", "quality"),
    StandardReason("PLN", None, "Planned", "计划停机", "planned_stop"),
    StandardReason("PLN.MAINT", "PLN", "Planned maintenance", "计划保养", "planned_stop"),
    StandardReason("PLN.NOORD", "PLN", "No order", "无订单", "planned_stop"),
    StandardReason("UTL", None, "Utilities", "公用设施", "external"),
    StandardReason("UTL.POWER", "UTL", "Power outage", "停电", "external"),
    StandardReason(
        "UTL.AIR", "UTL", "Compressed air or cooling water", "气压/冷却水不足", "external"
    ),
    StandardReason("SML", None, "Small stops", "短暂停机", "small_stop"),
)
"""Reasons common on injection moulding and machining shop floors of the cluster."""
