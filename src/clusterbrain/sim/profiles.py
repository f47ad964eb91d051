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
    writable: bool = False
    """Commands may set it, within ``min_value``..``max_value`` (setpoints, overrides)."""


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


# --- ready profiles: machines as the edge gateway reads them --------------------------------------
#
# Each ready profile is a device profile (the tags, as above) together with where the gateway finds
# every tag on the machine: the OPC UA node or the Modbus register. The maps fit the simulated
# servers (``sim.opcua_server``, ``sim.modbus_server``), which lay their machines out the way the
# real ones are, so a gateway.yaml written from them reads the simulator as it is and a real
# machine after the addresses are checked. Tag names are the simulator's, so production logic
# (states, counters) sees the same tags whether a machine publishes itself or sits behind a gateway.

GatewayProtocol = Literal["opcua", "modbus", "gateway"]

SIM_OPCUA_NAMESPACE = "urn:clusterbrain:sim:machines"
"""Namespace URI of the simulated OPC UA server's machines (``sim.opcua_server.NAMESPACE_URI``)."""

DEFAULT_INTERVAL_MS = 1000.0
"""The connectors' default sampling, publishing and poll interval."""

GATEWAY_HEALTH_TAGS: tuple[str, ...] = (
    "reads",
    "errors",
    "reconnects",
    "sources_connected",
    "sources",
    "uplink_connected",
    "uplink_reconnects",
    "spool_bytes",
    "spool_pending",
    "spool_dropped",
    "commands",
    "commands_failed",
)
"""The gateway's own telemetry: the same names as ``connectors.gateway.runner.HEALTH_TAGS``
(sim may not import connectors; a test keeps the two equal)."""


@dataclass(frozen=True, slots=True)
class OpcUaPoint:
    """Where a tag lives on an OPC UA server: the browse path below the machine object."""

    tag: str
    path: str
    """``Production/LastCycleTime``: with the machine ``IMM1`` the node ``s=IMM1.Production...``."""
    deadband: float | None = None


@dataclass(frozen=True, slots=True)
class ModbusPoint:
    """Where a tag lives in a Modbus device, in the gateway's register map terms."""

    tag: str
    table: str
    address: int
    type: str = "uint16"
    scale: float = 1.0
    word_order: str | None = None
    """None: the device's default."""
    byte_order: str | None = None
    bit: int | None = None


@dataclass(frozen=True, slots=True)
class ReadyProfile:
    """A device profile with the gateway's map of it: nodes (OPC UA) or registers (Modbus)."""

    profile: ProfileSpec
    protocol: GatewayProtocol
    standard: str = ""
    """The companion specification or convention the layout follows."""
    machine: str = ""
    """OPC UA: the machine object below Objects on the simulated server (``IMM1``)."""
    opcua: tuple[OpcUaPoint, ...] = ()
    unit_id: int = 1
    word_order: str = "big"
    byte_order: str = "big"
    modbus: tuple[ModbusPoint, ...] = ()
    device_prefix: str = "device"
    """Device ids of examples start with it: ``imm-01``."""

    @property
    def name(self) -> str:
        return self.profile.name

    def node_id(self, point: OpcUaPoint, machine: str | None = None) -> str:
        """The point's node id on the simulated server, by namespace URI (survives renumbering).

        >>> ready = READY_PROFILES["injection_moulding_euromap77"]
        >>> ready.node_id(ready.opcua[3])
        'nsu=urn:clusterbrain:sim:machines;s=IMM1.Production.LastCycleTime'
        """
        where = f"{machine or self.machine}/{point.path}".replace("/", ".")
        return f"nsu={SIM_OPCUA_NAMESPACE};s={where}"

    def opcua_nodes(
        self, machine: str | None = None, sampling_interval_ms: float = DEFAULT_INTERVAL_MS
    ) -> list[dict[str, object]]:
        """The ``nodes:`` list of the gateway's OPC UA section; writable tags carry their range."""
        nodes: list[dict[str, object]] = []
        for point in self.opcua:
            spec = self.profile.tag(point.tag)
            node: dict[str, object] = {"tag": point.tag, "node_id": self.node_id(point, machine)}
            if sampling_interval_ms != DEFAULT_INTERVAL_MS:
                node["sampling_interval_ms"] = _plain_number(sampling_interval_ms)
            if point.deadband is not None:
                node["deadband"] = point.deadband
            node.update(_command_range(spec))
            nodes.append(node)
        return nodes

    def modbus_tags(self) -> list[dict[str, object]]:
        """The ``tags:`` list of one Modbus device, defaults left out as the simulator does."""
        tags: list[dict[str, object]] = []
        for point in self.modbus:
            entry: dict[str, object] = {
                "tag": point.tag,
                "table": point.table,
                "address": point.address,
                "type": point.type,
            }
            optional = {
                "scale": (point.scale, 1.0),
                "word_order": (point.word_order, None),
                "byte_order": (point.byte_order, None),
                "bit": (point.bit, None),
            }
            entry.update({key: value for key, (value, unset) in optional.items() if value != unset})
            entry.update(_command_range(self.profile.tag(point.tag)))
            tags.append(entry)
        return tags

    def modbus_device(
        self, name: str, poll_interval_ms: float = DEFAULT_INTERVAL_MS
    ) -> dict[str, object]:
        """One unit of the gateway's Modbus section (``devices[]``)."""
        return {
            "name": name,
            "unit_id": self.unit_id,
            "poll_interval_ms": _plain_number(poll_interval_ms),
            "word_order": self.word_order,
            "byte_order": self.byte_order,
            "tags": self.modbus_tags(),
        }

    def gateway_device(
        self,
        device_id: str,
        *,
        endpoint: str = "opc.tcp://127.0.0.1:4840/clusterbrain/sim",
        host: str = "127.0.0.1",
        port: int = 5020,
        machine: str | None = None,
        interval_ms: float = DEFAULT_INTERVAL_MS,
    ) -> dict[str, object]:
        """The entry of ``devices:`` in gateway.yaml that reads this machine as ``device_id``.

        ``interval_ms`` is the publishing and sampling interval (OPC UA) or the poll interval
        (Modbus). The edge gateway profile is the gateway itself: it has no entry.
        """
        if self.protocol == "opcua":
            section: dict[str, object] = {
                "endpoint": endpoint,
                "publishing_interval_ms": _plain_number(interval_ms),
                "nodes": self.opcua_nodes(machine, interval_ms),
            }
        elif self.protocol == "modbus":
            section = {
                "host": host,
                "port": port,
                "devices": [self.modbus_device(device_id, interval_ms)],
            }
        else:
            raise ValueError(f"{self.name} is the gateway's own profile, not a field device")
        return {"id": device_id, "protocol": self.protocol, self.protocol: section}

    def registry_profile(self) -> dict[str, object]:
        """The device registry's profile document (``POST /api/v1/device-profiles``)."""
        profile = self.profile
        tags = [
            {
                "name": t.name,
                "unit": t.unit,
                "data_type": t.data_type,
                "min_value": t.min_value,
                "max_value": t.max_value,
                "description_en": t.description_en,
                "description_zh": t.description_zh,
                "writable": t.writable,
            }
            for t in profile.tags
        ]
        return {"name": profile.name, "description": profile.description, "tags": tags}


def _plain_number(value: float) -> float | int:
    """``1000.0`` as ``1000``, so that a written YAML file reads as a person would write it."""
    return int(value) if float(value).is_integer() else value


def _command_range(spec: TagSpec) -> dict[str, object]:
    """``writable`` with the range a command value must lie in, for a writable tag."""
    if not spec.writable:
        return {}
    bounds = {"min_value": spec.min_value, "max_value": spec.max_value}
    return {"writable": True, **{key: value for key, value in bounds.items() if value is not None}}


def _setpoint(name: str, unit: str, lo: float, hi: float, en: str, zh: str) -> TagSpec:
    return TagSpec(name, unit, "float", lo, hi, en, zh, writable=True)


def _flag(name: str, en: str, zh: str, writable: bool = False) -> TagSpec:
    return TagSpec(name, "", "bool", None, None, en, zh, writable)


def _ready_injection_moulding() -> ReadyProfile:
    base = PROFILES["injection_moulding"]
    mode = TagSpec(
        "machine_mode",
        "",
        "int",
        0,
        5,
        "Machine mode (EUROMAP 77 MachineModeEnumeration): 0 other, 1 automatic, "
        "2 semi-automatic, 3 manual, 4 setup, 5 sleep",
        "注塑机 机器模式（EUROMAP 77）：0 其他、1 全自动、2 半自动、3 手动、4 调机、5 休眠",
    )
    cycles = _counter(
        "cycle_counter",
        "",
        "Moulding cycles counted by the controller",
        "注塑机 循环计数（控制器累计模次）",
    )
    setpoints = [
        _setpoint(
            f"barrel_zone{i}_setpoint",
            "°C",
            0,
            350,
            f"Barrel heating zone {i} set temperature (commands may change it)",
            f"注塑机 料筒第{i}段设定温度（可下发指令修改）",
        )
        for i in range(1, 5)
    ]
    tags = [
        base.tag("state"),
        base.tag("alarm_active"),
        mode,
        base.tag("cycle_time"),
        cycles,
        base.tag("good_count"),
        base.tag("scrap_count"),
        base.tag("injection_pressure"),
        *[base.tag(f"barrel_zone{i}_temp") for i in range(1, 5)],
        *setpoints,
        base.tag("mould_temp"),
        base.tag("power"),
        base.tag("energy"),
    ]
    zones = "InjectionUnit/TemperatureZones/Zone"
    numbers = (1, 2, 3, 4)
    points = [
        OpcUaPoint("state", "MachineStatus/State"),
        OpcUaPoint("alarm_active", "MachineStatus/AlarmActive"),
        OpcUaPoint("machine_mode", "MachineStatus/MachineMode"),
        OpcUaPoint("cycle_time", "Production/LastCycleTime"),
        OpcUaPoint("cycle_counter", "Production/CycleCounter"),
        OpcUaPoint("good_count", "Production/GoodParts"),
        OpcUaPoint("scrap_count", "Production/ScrapParts"),
        OpcUaPoint("injection_pressure", "InjectionUnit/InjectionPressure"),
        *[
            OpcUaPoint(f"barrel_zone{i}_temp", f"{zones}{i}/ActualTemperature", 0.2)
            for i in numbers
        ],
        *[OpcUaPoint(f"barrel_zone{i}_setpoint", f"{zones}{i}/SetTemperature") for i in numbers],
        OpcUaPoint("mould_temp", "Mould/Temperature", 0.2),
        OpcUaPoint("power", "Energy/Power"),
        OpcUaPoint("energy", "Energy/Energy"),
    ]
    profile = ProfileSpec(
        "injection_moulding_euromap77",
        "Injection moulding machine read over OPC UA, variables of OPC 40077 / EUROMAP 77",
        tags,
        "注塑机（OPC UA 采集，OPC 40077 / EUROMAP 77 变量）",
        ("cycle_counter", "good_count", "scrap_count"),
    )
    return ReadyProfile(
        profile, "opcua", "OPC 40077 / EUROMAP 77", "IMM1", tuple(points), device_prefix="imm"
    )


def _ready_cnc() -> ReadyProfile:
    base = PROFILES["cnc"]
    mode = TagSpec(
        "operation_mode",
        "",
        "string",
        None,
        None,
        "Channel operation mode (umati ChannelModeEnumeration): Automatic, Manual or Other",
        "加工中心 通道运行模式（umati）：Automatic 自动、Manual 手动、Other 其他",
    )
    program = TagSpec(
        "program_name",
        "",
        "string",
        None,
        None,
        "Active part program (NC program name)",
        "加工中心 当前加工程序名",
    )
    spindle_override = _setpoint(
        "spindle_override",
        "%",
        50,
        120,
        "Spindle speed override (commands may change it)",
        "加工中心 主轴倍率（可下发指令修改）",
    )
    feed_override = _setpoint(
        "feed_override",
        "%",
        0,
        120,
        "Feed rate override (commands may change it)",
        "加工中心 进给倍率（可下发指令修改）",
    )
    tags = [
        base.tag("state"),
        base.tag("alarm_active"),
        mode,
        base.tag("spindle_speed"),
        base.tag("spindle_load"),
        spindle_override,
        base.tag("feed_rate"),
        feed_override,
        program,
        base.tag("part_count"),
        base.tag("vibration_rms"),
        base.tag("power"),
    ]
    points = [
        OpcUaPoint("state", "MachineStatus/State"),
        OpcUaPoint("alarm_active", "MachineStatus/AlarmActive"),
        OpcUaPoint("operation_mode", "MachineStatus/OperationMode"),
        OpcUaPoint("spindle_speed", "Spindle/Speed"),
        OpcUaPoint("spindle_load", "Spindle/Load"),
        OpcUaPoint("spindle_override", "Spindle/Override"),
        OpcUaPoint("feed_rate", "Feed/FeedRate"),
        OpcUaPoint("feed_override", "Feed/Override"),
        OpcUaPoint("program_name", "Program/ProgramName"),
        OpcUaPoint("part_count", "Program/PartCounter"),
        OpcUaPoint("vibration_rms", "Monitoring/Vibration"),
        OpcUaPoint("power", "Energy/Power"),
    ]
    profile = ProfileSpec(
        "cnc_umati",
        "CNC machining centre read over OPC UA, in the spirit of OPC 40501 / umati",
        tags,
        "数控加工中心（OPC UA 采集，参照 OPC 40501 / umati）",
        ("part_count",),
    )
    return ReadyProfile(
        profile, "opcua", "OPC 40501 / umati", "CNC1", tuple(points), device_prefix="cnc"
    )


def _ready_power_meter() -> ReadyProfile:
    base = PROFILES["power_meter"]
    reactive = _f(
        "reactive_power", "kvar", -1000, 1000, "Total reactive power, three phases",
        "电表 三相总无功功率",
    )  # fmt: skip
    energy_total = _f(
        "energy_total_kwh",
        "kWh",
        0,
        None,
        "Active energy import as a float64 register (the same counter as energy_kwh)",
        "电表 正向有功电能（float64 寄存器，与 energy_kwh 为同一计数）",
    )
    tags = [
        *[base.tag(f"voltage_l{p}") for p in (1, 2, 3)],
        *[base.tag(f"current_l{p}") for p in (1, 2, 3)],
        base.tag("active_power"),
        base.tag("power_factor"),
        _f("frequency", "Hz", 45, 65, "Grid frequency", "电表 电网频率"),
        base.tag("energy_kwh"),
        reactive,
        energy_total,
    ]
    points = [
        *[ModbusPoint(f"voltage_l{p}", "input", 2 * (p - 1), "float32") for p in (1, 2, 3)],
        *[ModbusPoint(f"current_l{p}", "input", 6 + 2 * (p - 1), "float32") for p in (1, 2, 3)],
        ModbusPoint("active_power", "input", 12, "float32"),
        ModbusPoint("power_factor", "input", 14, "int16", scale=0.001),
        ModbusPoint("frequency", "input", 15, "uint16", scale=0.01),
        ModbusPoint("energy_kwh", "input", 16, "uint32", scale=0.01),
        ModbusPoint("reactive_power", "input", 18, "int32", scale=0.001, word_order="big"),
        ModbusPoint("energy_total_kwh", "input", 100, "float64", word_order="big"),
    ]
    profile = ProfileSpec(
        "power_meter_modbus",
        "Three-phase four-wire energy meter read over Modbus TCP (float32 in CDAB word order)",
        tags,
        "三相四线电能表（Modbus TCP 采集，float32 低字在前 CDAB）",
    )
    return ReadyProfile(
        profile,
        "modbus",
        "Modbus TCP, input registers",
        unit_id=1,
        word_order="little",
        modbus=tuple(points),
        device_prefix="meter",
    )


def _ready_air_compressor() -> ReadyProfile:
    base = PROFILES["air_compressor"]
    tags = [
        base.tag("discharge_pressure"),
        base.tag("oil_temp"),
        base.tag("motor_current"),
        _flag(
            "loaded",
            "Loaded: inlet valve open, producing air",
            "空压机 加载中（进气阀打开，正在产气）",
        ),
        base.tag("alarm_active"),
        _f("load_hours", "h", 0, None, "Loaded running hours counter", "空压机 累计加载小时"),
        base.tag("power"),
        base.tag("vibration_rms"),
        _setpoint(
            "pressure_setpoint",
            "bar",
            5,
            10,
            "Discharge pressure setpoint (commands may change it within 5..10 bar)",
            "空压机 排气压力设定值（可下发指令，5-10 bar）",
        ),
        _flag("remote_enable", "Remote control enabled", "空压机 允许远程控制", writable=True),
        _flag(
            "running",
            "Running; writing false stops it",
            "空压机 运行中（写 false 停机）",
            writable=True,
        ),
        _flag("high_oil_temp", "Oil temperature above 100 °C", "空压机 油温过高（高于 100 °C）"),
        _flag(
            "pressure_high",
            "Discharge pressure above the setpoint + 0.5 bar",
            "空压机 排气压力过高（高于设定值 0.5 bar）",
        ),
    ]
    points = [
        ModbusPoint("discharge_pressure", "holding", 0, "uint16", scale=0.01),
        ModbusPoint("oil_temp", "holding", 1, "int16", scale=0.1),
        ModbusPoint("motor_current", "holding", 2, "uint16", scale=0.1),
        ModbusPoint("loaded", "holding", 3, "bits", bit=0),
        ModbusPoint("alarm_active", "holding", 3, "bits", bit=3),
        ModbusPoint("load_hours", "holding", 4, "uint32", scale=0.1),
        ModbusPoint("power", "holding", 6, "float32"),
        ModbusPoint("vibration_rms", "holding", 8, "float32", byte_order="little"),
        ModbusPoint("pressure_setpoint", "holding", 20, "uint16", scale=0.01),
        ModbusPoint("remote_enable", "holding", 21, "bits", bit=0),
        ModbusPoint("running", "coil", 0, "bool"),
        ModbusPoint("high_oil_temp", "discrete_input", 0, "bool"),
        ModbusPoint("pressure_high", "discrete_input", 1, "bool"),
    ]
    profile = ProfileSpec(
        "air_compressor_modbus",
        "Screw air compressor controller read over Modbus TCP (holding registers, coil, inputs)",
        tags,
        "螺杆空压机控制器（Modbus TCP 采集：保持寄存器、线圈、离散输入）",
    )
    return ReadyProfile(
        profile,
        "modbus",
        "Modbus TCP, holding registers",
        unit_id=2,
        modbus=tuple(points),
        device_prefix="compressor",
    )


_HEALTH_TEXTS: dict[str, tuple[str, str, str]] = {
    # tag: (unit, en, zh)
    "reads": (
        "",
        "Values read from the field devices since the gateway started",
        "网关 启动以来读取的现场数值个数",
    ),
    "errors": (
        "",
        "Failed or malformed requests to field devices",
        "网关 现场设备请求失败或应答异常次数",
    ),
    "reconnects": ("", "Field connections re-established", "网关 现场连接重连次数"),
    "sources_connected": ("", "Field connections up now", "网关 当前已连接的现场连接数"),
    "sources": ("", "Field connections configured", "网关 配置的现场连接数"),
    "uplink_connected": (
        "",
        "Uplink to the broker up (1) or down (0)",
        "网关 上行 MQTT 连接：1 已连接、0 断开",
    ),
    "uplink_reconnects": ("", "Uplink reconnections", "网关 上行连接重连次数"),
    "spool_bytes": (
        "B",
        "Size of the store-and-forward spool on disk",
        "网关 断点续传缓存占用磁盘字节数",
    ),
    "spool_pending": (
        "",
        "Messages in the spool not yet confirmed by the broker",
        "网关 缓存中尚未被代理确认的消息数",
    ),
    "spool_dropped": (
        "",
        "Messages dropped unsent because the spool was full",
        "网关 因缓存已满而丢弃的消息数",
    ),
    "commands": ("", "Commands received for field devices", "网关 收到的下行指令数"),
    "commands_failed": ("", "Commands refused or failed", "网关 被拒绝或执行失败的指令数"),
}


def _ready_edge_gateway() -> ReadyProfile:
    tags = [
        TagSpec(
            name,
            _HEALTH_TEXTS[name][0],
            "float",
            0,
            1 if name == "uplink_connected" else None,
            _HEALTH_TEXTS[name][1],
            _HEALTH_TEXTS[name][2],
        )
        for name in GATEWAY_HEALTH_TAGS
    ]
    profile = ProfileSpec(
        "edge_gateway",
        "ClusterBrain edge gateway: its own health telemetry",
        tags,
        "ClusterBrain 边缘网关：自身运行状态遥测",
    )
    return ReadyProfile(profile, "gateway", "ClusterBrain gateway health", device_prefix="gw")


def _all_ready_profiles() -> dict[str, ReadyProfile]:
    ready = [
        _ready_injection_moulding(),
        _ready_cnc(),
        _ready_power_meter(),
        _ready_air_compressor(),
        _ready_edge_gateway(),
    ]
    return {profile.name: profile for profile in ready}


READY_PROFILES: dict[str, ReadyProfile] = _all_ready_profiles()
"""Ready profiles of machines common in the cluster, with the gateway's map of each, by name."""
