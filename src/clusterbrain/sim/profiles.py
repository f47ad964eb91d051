"""Device profiles of the machines the factory simulator plays, as plain data.

The kinds are the machines most common on the shop floors of Zhongshan's small lighting and
appliance makers: injection moulding machines (lamp housings, diffusers, appliance shells), CNC
machining centres (die-cast aluminium parts), screw air compressors (every workshop has one) and a
three-phase power meter on the workshop feeder. The same data seeds the device registry's profiles,
so the units, ranges and zh-CN descriptions here are what an engineer sees in the console.

Ranges are the instrument's measuring range, wide enough for every normal operating point; a value
outside them is implausible rather than merely unusual.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

DataType = Literal["float", "int", "bool", "string"]

MACHINE_STATES: tuple[str, ...] = ("running", "idle", "down", "setup")
"""Values of every ``state`` tag: producing, waiting, unplanned stop, changeover."""


@dataclass(frozen=True, slots=True)
class TagSpec:
    """One signal of a profile; ``None`` bounds mean unbounded (e.g. counters)."""

    name: str
    unit: str
    data_type: DataType
    min_value: float | None
    max_value: float | None
    description_en: str
    description_zh: str


@dataclass(frozen=True, slots=True)
class ProfileSpec:
    """What one kind of machine sends."""

    name: str
    description: str
    tags: list[TagSpec]
    description_zh: str = ""
    counters: tuple[str, ...] = field(default=())
    """Tags that only grow, except a reset to zero (production counters at a shift change)."""

    def tag(self, name: str) -> TagSpec:
        """The tag called ``name``; KeyError when the profile has none."""
        for spec in self.tags:
            if spec.name == name:
                return spec
        raise KeyError(name)

    @property
    def tag_names(self) -> list[str]:
        return [spec.name for spec in self.tags]


def _f(name: str, unit: str, lo: float | None, hi: float | None, en: str, zh: str) -> TagSpec:
    return TagSpec(name, unit, "float", lo, hi, en, zh)


def _state(machine_zh: str) -> TagSpec:
    return TagSpec(
        "state",
        "",
        "string",
        None,
        None,
        "Machine state: running, idle, down (unplanned stop) or setup (changeover)",
        f"{machine_zh}状态：running 运行、idle 待机、down 非计划停机、setup 换模/调机",
    )


def _alarm(machine_zh: str) -> TagSpec:
    return TagSpec(
        "alarm_active",
        "",
        "bool",
        None,
        None,
        "An alarm is active on the controller (andon light red)",
        f"{machine_zh}控制器报警中（三色灯红灯）",
    )


def _counter(name: str, unit: str, en: str, zh: str) -> TagSpec:
    return TagSpec(name, unit, "int", 0, None, en, zh)


def _barrel_zone(index: int) -> TagSpec:
    where_en = "feed end" if index == 1 else ("nozzle end" if index == 4 else "middle")
    where_zh = "靠近下料口" if index == 1 else ("靠近射嘴" if index == 4 else "中段")
    return _f(
        f"barrel_zone{index}_temp",
        "°C",
        0,
        400,
        f"Barrel heating zone {index} temperature ({where_en})",
        f"注塑机 料筒第{index}段温度（{where_zh}）",
    )


def _injection_moulding() -> ProfileSpec:
    tags = [
        _state("注塑机"),
        _alarm("注塑机"),
        _f(
            "cycle_time",
            "s",
            5,
            180,
            "Duration of the last moulding cycle",
            "注塑机 周期时间（上一模）",
        ),
        *[_barrel_zone(i) for i in range(1, 5)],
        _f(
            "mould_temp",
            "°C",
            0,
            160,
            "Mould temperature (mould temperature controller)",
            "注塑机 模具温度（模温机）",
        ),
        _f(
            "injection_pressure",
            "bar",
            0,
            2500,
            "Peak injection pressure of the last cycle",
            "注塑机 注射压力峰值（上一模）",
        ),
        _f("power", "kW", 0, 200, "Active electrical power of the machine", "注塑机 有功功率"),
        _f(
            "energy",
            "kWh",
            0,
            None,
            "Electrical energy meter reading (never resets)",
            "注塑机 累计电能（电表读数，不清零）",
        ),
        _counter(
            "good_count",
            "pcs",
            "Good parts this shift (the operator may reset it)",
            "注塑机 良品计数（本班次，换班时可能清零）",
        ),
        _counter(
            "scrap_count",
            "pcs",
            "Scrap parts this shift (the operator may reset it)",
            "注塑机 不良品计数（本班次，换班时可能清零）",
        ),
    ]
    return ProfileSpec(
        "injection_moulding",
        "Injection moulding machine (servo-hydraulic, 90-320 t clamp force)",
        tags,
        "注塑机（伺服液压，锁模力 90-320 吨）",
        ("good_count", "scrap_count"),
    )


def _cnc() -> ProfileSpec:
    tags = [
        _state("加工中心"),
        _alarm("加工中心"),
        _f("spindle_speed", "rpm", 0, 24000, "Spindle speed", "加工中心 主轴转速"),
        _f(
            "spindle_load",
            "%",
            0,
            150,
            "Spindle load, percent of rated torque",
            "加工中心 主轴负载（额定扭矩百分比）",
        ),
        _f("feed_rate", "mm/min", 0, 30000, "Actual feed rate", "加工中心 实际进给速度"),
        _f(
            "vibration_rms",
            "mm/s",
            0,
            50,
            "Spindle housing vibration velocity, RMS (ISO 10816)",
            "加工中心 主轴振动速度有效值（ISO 10816）",
        ),
        _f("power", "kW", 0, 80, "Active electrical power of the machine", "加工中心 有功功率"),
        _counter(
            "part_count",
            "pcs",
            "Parts finished this shift (the operator may reset it)",
            "加工中心 完工件数（本班次，换班时可能清零）",
        ),
    ]
    return ProfileSpec(
        "cnc",
        "CNC vertical machining centre (BT40 spindle)",
        tags,
        "数控立式加工中心（BT40 主轴）",
        ("part_count",),
    )


def _air_compressor() -> ProfileSpec:
    tags = [
        _state("空压机"),
        _alarm("空压机"),
        _f(
            "discharge_pressure",
            "bar",
            0,
            16,
            "Discharge (network) pressure, gauge",
            "空压机 排气压力（表压）",
        ),
        _f("motor_current", "A", 0, 200, "Main motor current", "空压机 主电机电流"),
        _f(
            "oil_temp",
            "°C",
            0,
            130,
            "Compression oil temperature at the airend outlet",
            "空压机 机头排气油温",
        ),
        _f(
            "vibration_rms",
            "mm/s",
            0,
            50,
            "Airend vibration velocity, RMS (ISO 10816)",
            "空压机 机头振动速度有效值（ISO 10816）",
        ),
        _f("power", "kW", 0, 120, "Active electrical power", "空压机 有功功率"),
    ]
    return ProfileSpec(
        "air_compressor",
        "Oil-injected screw air compressor, load/unload control (22-55 kW)",
        tags,
        "喷油螺杆空压机，加载/卸载控制（22-55 kW）",
    )


def _phase(quantity: str, phase: int) -> TagSpec:
    if quantity == "voltage":
        return _f(
            f"voltage_l{phase}",
            "V",
            0,
            300,
            f"Phase L{phase} to neutral voltage",
            f"电表 L{phase} 相电压（相对中性线）",
        )
    return _f(f"current_l{phase}", "A", 0, 1500, f"Phase L{phase} current", f"电表 L{phase} 相电流")


def _power_meter() -> ProfileSpec:
    tags = [
        *[_phase("voltage", p) for p in (1, 2, 3)],
        *[_phase("current", p) for p in (1, 2, 3)],
        _f(
            "active_power", "kW", 0, 1000, "Total active power, three phases", "电表 三相总有功功率"
        ),
        _f("power_factor", "", 0, 1, "Total power factor", "电表 总功率因数"),
        _f(
            "energy_kwh",
            "kWh",
            0,
            None,
            "Active energy import meter reading (never resets)",
            "电表 正向有功电能（读数，不清零）",
        ),
    ]
    return ProfileSpec(
        "power_meter",
        "Three-phase four-wire energy meter on a workshop feeder (380/220 V)",
        tags,
        "车间配电回路三相四线电能表（380/220 V）",
    )


def _all_profiles() -> dict[str, ProfileSpec]:
    profiles = [_injection_moulding(), _cnc(), _air_compressor(), _power_meter()]
    return {profile.name: profile for profile in profiles}


PROFILES: dict[str, ProfileSpec] = _all_profiles()
"""Profile of each machine kind the simulator plays, keyed by kind."""
