"""Machine signal models with fault injection: pure and deterministic given a numpy Generator.

Each model owns separate random streams (spawned from the one it is given) for its per-machine
parameters, its state changes, its measurement noise, its scrap draws and its shift resets, and
every step draws the same amount of noise whatever happens. So a run with a fault and a run without
one, from the same seed, differ only in the tags the fault touches: the ground truth is exact, which
is what detectors are evaluated against.

All dynamics are written in closed form for any step length (exponential relaxation, exact
Ornstein-Uhlenbeck steps, exponential dwell-time hazards), so a one-minute backfill step has the
same statistics as sixty one-second steps.

Time is UTC epoch seconds. Shifts change at 08:00 and 20:00 China Standard Time (UTC+8), the usual
two-shift day of the cluster's workshops.
"""

from __future__ import annotations

import bisect
import enum
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from clusterbrain.sim.profiles import PROFILES, ProfileSpec

Value = float | int | bool | str
Sample = dict[str, Value]
StateMeans = Mapping[str, Mapping[str, float]]

LOCAL_UTC_OFFSET_S = 8 * 3600
SHIFT_LENGTH_S = 12 * 3600
FIRST_SHIFT_LOCAL_S = 8 * 3600
BREAKS_LOCAL_H: tuple[tuple[float, float], ...] = ((12.0, 13.0), (0.0, 0.5))
"""Meal breaks (local hours) when operators stop the producing machines: the day shift's lunch and
the night shift's midnight meal, as in the demo's shift calendar."""
SHIFT_RESET_PROBABILITY = 0.35
"""Chance that the operator zeroes the shift counters on the HMI at a shift change."""


class FaultKind(enum.StrEnum):
    HEATER_DRIFT = "heater_drift"
    BEARING_WEAR = "bearing_wear"
    STUCK_SENSOR = "stuck_sensor"
    UNPLANNED_STOP = "unplanned_stop"


FAULT_DURATION_S: dict[FaultKind, tuple[float, float]] = {
    FaultKind.HEATER_DRIFT: (15 * 60, 60 * 60),
    FaultKind.BEARING_WEAR: (60 * 60, 6 * 3600),
    FaultKind.STUCK_SENSOR: (5 * 60, 60 * 60),
    FaultKind.UNPLANNED_STOP: (5 * 60, 60 * 60),
}
"""Range of planned durations: wear develops over hours, a stop lasts as long as a repair."""


@dataclass(frozen=True, slots=True)
class FaultEvent:
    """One planned fault on one machine; ``tag`` is the faulted tag where the fault picks one."""

    machine_id: str
    fault: FaultKind
    start: float
    duration: float
    tag: str | None = None

    @property
    def end(self) -> float:
        return self.start + self.duration


@dataclass(slots=True)
class _ActiveFault:
    fault: FaultKind
    start: float
    end: float
    tag: str | None
    magnitude: float
    frozen: Value | None = None

    def active(self, now: float) -> bool:
        return self.start <= now < self.end

    def progress(self, now: float) -> float:
        """0 at the start, 1 at the planned end."""
        return min(1.0, max(0.0, (now - self.start) / max(self.end - self.start, 1e-9)))


def ou_step(x: float, dt: float, tau: float, sigma: float, z: float) -> float:
    """Exact Ornstein-Uhlenbeck step: x·a + σ·√(1−a²)·z with a = e^(−dt/τ).

    Exact rather than Euler so that the stationary spread σ does not depend on the step length.

    >>> ou_step(1.0, 0.0, 10.0, 2.0, 5.0)
    1.0
    """
    a = math.exp(-dt / tau)
    return x * a + sigma * math.sqrt(max(0.0, 1.0 - a * a)) * z


def relax(x: float, target: float, dt: float, tau: float) -> float:
    """First-order lag towards ``target``: thermal inertia of barrels, oil, moulds.

    >>> round(relax(20.0, 220.0, 60.0, 60.0), 1)
    146.4
    """
    return target + (x - target) * math.exp(-dt / tau)


def shift_index(now: float) -> int:
    """Number of the 12-hour shift containing ``now`` (shifts start 08:00 and 20:00 UTC+8).

    >>> shift_index(0.0) == shift_index(43199.0), shift_index(43200.0) - shift_index(0.0)
    (True, 1)
    """
    return math.floor((now + LOCAL_UTC_OFFSET_S - FIRST_SHIFT_LOCAL_S) / SHIFT_LENGTH_S)


def local_hour(now: float) -> float:
    """Hour of day in China Standard Time, as a fraction (13.5 is 13:30)."""
    return ((now + LOCAL_UTC_OFFSET_S) % 86400) / 3600


def in_break(now: float) -> bool:
    """Whether ``now`` falls in one of the shifts' meal breaks.

    >>> in_break(4 * 3600 + 30 * 60), in_break(5 * 3600 + 1)  # 12:30 and 13:00:01 local
    (True, False)
    """
    hour = local_hour(now)
    return any(start <= hour < end for start, end in BREAKS_LOCAL_H)


def local_weekday(now: float) -> int:
    """Day of the week in China Standard Time, Monday = 0 (1970-01-01 was a Thursday)."""
    return (math.floor((now + LOCAL_UTC_OFFSET_S) / 86400) + 3) % 7


class StateMachine:
    """Machine states with exponential dwell times; one pair of uniforms per step, always.

    ``means[a][b]`` is the mean time (s) before leaving state ``a`` for ``b``; the hazard of each
    exit is its reciprocal, so dwell times are exponential and a step of any length is exact.
    """

    def __init__(self, rng: np.random.Generator, means: StateMeans, now: float = 0.0) -> None:
        self._rng = rng
        self._means = means
        self.state = "running"
        self.previous = "running"
        self.entered_at = now

    def advance(self, now: float, dt: float, forced: str | None = None) -> str:
        leave_u, pick_u = self._rng.random(2).tolist()
        if forced is not None:
            self.enter(forced, now)
            return self.state
        exits = self._means.get(self.state, {})
        rates = [(target, 1.0 / mean) for target, mean in exits.items()]
        total = sum(rate for _, rate in rates)
        if total <= 0.0 or leave_u >= -math.expm1(-dt * total):
            return self.state
        threshold = pick_u * total
        for target, rate in rates:
            threshold -= rate
            if threshold <= 0.0:
                self.enter(target, now)
                break
        return self.state

    def enter(self, state: str, now: float) -> None:
        if state != self.state:
            self.previous, self.state, self.entered_at = self.state, state, now

    def time_in_state(self, now: float) -> float:
        return now - self.entered_at


class MachineModel(ABC):
    """One simulated machine; subclasses define the physics of one kind."""

    kind: ClassVar[str]
    faults: ClassVar[frozenset[FaultKind]]
    noise_dim: ClassVar[int]

    def __init__(self, rng: np.random.Generator) -> None:
        params, states, noise, scrap, shifts, faults = rng.spawn(6)
        self._noise_rng = noise
        self._scrap_rng = scrap
        self._shift_rng = shifts
        self._fault_rng = faults
        self._state_rng = states
        self._faults: list[_ActiveFault] = []
        self._last: Sample = {}
        self._configure(params)

    @property
    def profile(self) -> ProfileSpec:
        return PROFILES[self.kind]

    @property
    def ideal_seconds_per_part(self) -> float | None:
        """The design cycle time per part (ISO 22400 PRU), for machines that make parts."""
        return None

    @abstractmethod
    def _configure(self, rng: np.random.Generator) -> None:
        """Draw this machine's own parameters (size, setpoints, program) once."""

    @abstractmethod
    def _advance(self, now: float, dt: float, z: list[float]) -> Sample:
        """Move the physics on by ``dt`` seconds to ``now`` and return the readings."""

    def step(self, now: float, dt: float) -> Sample:
        """The readings at ``now``, ``dt`` seconds after the previous step."""
        if dt < 0:
            raise ValueError("time must not go backwards")
        self._end_faults(now)
        z = self._noise_rng.standard_normal(self.noise_dim).tolist()
        values = self._advance(now, dt, z)
        self._freeze_stuck(now, values)
        self._last = values
        return values

    def inject(
        self, fault: FaultKind, start: float, duration: float, tag: str | None = None
    ) -> tuple[str, ...]:
        """Schedule a fault; returns the tags it changes, the faulted tag first."""
        fault = FaultKind(fault)
        if fault not in self.faults:
            raise ValueError(f"{self.kind} cannot have fault {fault}")
        if duration <= 0:
            raise ValueError("a fault needs a positive duration")
        candidates = fault_targets(self.kind, fault)
        if tag is None and candidates:
            tag = str(self._fault_rng.choice(candidates))
        if tag is not None and tag not in candidates:
            raise ValueError(f"{fault} cannot target tag {tag!r} of {self.kind}")
        magnitude = float(self._fault_rng.uniform(0.0, 1.0))
        self._faults.append(_ActiveFault(fault, start, start + duration, tag, magnitude))
        return affected_tags(self.kind, fault, tag)

    def _active(self, now: float, fault: FaultKind) -> list[_ActiveFault]:
        return [f for f in self._faults if f.fault is fault and f.active(now)]

    def _end_faults(self, now: float) -> None:
        """Drop faults that are over; a machine repaired after a stop starts running again."""
        ended = [f for f in self._faults if now >= f.end]
        for fault in ended:
            self._faults.remove(fault)
            self._on_fault_end(fault, now)

    def _on_fault_end(self, fault: _ActiveFault, now: float) -> None:
        """Subclasses with a state machine restart after an unplanned stop."""
        return None

    def _freeze_stuck(self, now: float, values: Sample) -> None:
        for fault in self._active(now, FaultKind.STUCK_SENSOR):
            assert fault.tag is not None
            if fault.frozen is None:
                fault.frozen = self._last.get(fault.tag, values[fault.tag])
            values[fault.tag] = fault.frozen

    def _stopped_by_fault(self, now: float) -> bool:
        return bool(self._active(now, FaultKind.UNPLANNED_STOP))

    def _wear(self, now: float) -> float:
        """Bearing wear severity, growing with the square of the fault's progress (0 when none)."""
        return sum(f.progress(now) ** 2 for f in self._active(now, FaultKind.BEARING_WEAR))


class _ProducingMachine(MachineModel):
    """A machine with a running/idle/down/setup state machine and shift counters."""

    state_means: ClassVar[StateMeans]

    def __init__(self, rng: np.random.Generator) -> None:
        super().__init__(rng)
        self._states = StateMachine(self._state_rng, self.state_means)
        self._shift: int | None = None

    def _next_state(self, now: float, dt: float) -> str:
        forced = "down" if self._stopped_by_fault(now) else None
        if forced is None and in_break(now):
            forced = "idle"  # the operator stops the machine for the meal break
        return self._states.advance(now, dt, forced)

    def _on_fault_end(self, fault: _ActiveFault, now: float) -> None:
        if fault.fault is FaultKind.UNPLANNED_STOP and not self._stopped_by_fault(now):
            self._states.enter("running", now)

    def _shift_reset(self, now: float) -> bool:
        """True when a shift began since the last step and the operator zeroed the counters."""
        shift = shift_index(now)
        changed = self._shift is not None and shift != self._shift
        self._shift = shift
        return changed and bool(self._shift_rng.random() < SHIFT_RESET_PROBABILITY)


_MATERIALS: dict[str, tuple[tuple[float, float, float, float], float, float]] = {
    # barrel setpoints feed→nozzle (°C), mould temperature (°C), extra injection pressure (bar)
    "PP": ((190.0, 205.0, 215.0, 220.0), 40.0, 0.0),
    "ABS": ((200.0, 220.0, 230.0, 235.0), 60.0, 150.0),
    "PC": ((265.0, 280.0, 290.0, 295.0), 90.0, 350.0),
}


class InjectionMouldingModel(_ProducingMachine):
    """Servo-hydraulic injection moulding machine making lamp housings or appliance shells.

    Power follows the cycle (injection and plasticising draw most), scrap rises after a mould
    change and when the barrel is off its setpoints, and injection pressure rises when the melt
    is colder because viscosity does.
    """

    @property
    def ideal_seconds_per_part(self) -> float | None:
        return self._ideal_per_part

    kind = "injection_moulding"
    faults = frozenset({FaultKind.HEATER_DRIFT, FaultKind.STUCK_SENSOR, FaultKind.UNPLANNED_STOP})
    noise_dim = 9
    state_means: ClassVar[StateMeans] = {
        "running": {"idle": 50 * 60, "down": 10 * 3600, "setup": 8 * 3600},
        "idle": {"running": 8 * 60, "setup": 6 * 3600},
        "down": {"running": 25 * 60},
        "setup": {"running": 45 * 60},
    }
    BARREL_TAU_S = 150.0
    MOULD_TAU_S = 400.0
    SHEAR_HEATING_C = (0.0, 1.0, 2.0, 1.5)

    def _configure(self, rng: np.random.Generator) -> None:
        tonnage = float(rng.choice([90, 120, 160, 200, 250, 320]))
        material = str(rng.choice(list(_MATERIALS), p=[0.4, 0.35, 0.25]))
        setpoints, mould, extra_pressure = _MATERIALS[material]
        offset = float(rng.normal(0.0, 3.0))
        self._setpoints = [s + offset for s in setpoints]
        self._mould_setpoint = mould + float(rng.normal(0.0, 2.0))
        self._cavities = int(rng.choice([1, 2, 4, 8], p=[0.3, 0.35, 0.25, 0.1]))
        base_cycle = (10.0 + 0.08 * tonnage) * float(rng.lognormal(0.0, 0.15))
        self._nominal_cycle = min(90.0, max(8.0, base_cycle))
        # The setter's best cycle is a little faster than what the machine usually achieves.
        self._ideal_per_part = 0.95 * self._nominal_cycle / self._cavities
        self._nominal_pressure = float(rng.uniform(700.0, 1250.0)) + extra_pressure
        self._motor_kw = 0.08 * tonnage
        self._heater_kw = 0.06 * tonnage
        self._zones = list(self._setpoints)
        self._zone_noise = [0.0] * 4
        self._mould = self._mould_setpoint
        self._mould_noise = 0.0
        self._phase = 0.0
        self._cycle_time = self._nominal_cycle
        self._pressure = self._nominal_pressure
        self._energy = 0.0
        self._good = 0
        self._scrap = 0

    def _advance(self, now: float, dt: float, z: list[float]) -> Sample:
        state = self._next_state(now, dt)
        zones = self._heat_barrel(now, dt, z, state)
        mould = self._heat_mould(dt, z, state)
        self._produce(now, dt, z, state, zones)
        power = self._power(state, z[8])
        self._energy += power * dt / 3600.0
        return {
            "state": state,
            "alarm_active": state == "down",
            "cycle_time": round(self._cycle_time, 2),
            **{f"barrel_zone{i + 1}_temp": round(t, 1) for i, t in enumerate(zones)},
            "mould_temp": round(mould, 1),
            "injection_pressure": round(self._pressure, 1),
            "power": round(power, 3),
            "energy": round(self._energy, 3),
            "good_count": self._good,
            "scrap_count": self._scrap,
        }

    def _zone_drift(self, now: float) -> list[float]:
        """Offset of each zone from its setpoint caused by heater drift faults."""
        drift = [0.0] * 4
        for fault in self._active(now, FaultKind.HEATER_DRIFT):
            assert fault.tag is not None
            zone = int(fault.tag.removeprefix("barrel_zone").removesuffix("_temp")) - 1
            sign = 1.0 if fault.magnitude >= 0.5 else -1.0
            rate_c_per_min = 0.5 + 2.0 * abs(fault.magnitude - 0.5)
            drift[zone] += sign * min(45.0, rate_c_per_min * (now - fault.start) / 60.0)
        return drift

    def _heat_barrel(self, now: float, dt: float, z: list[float], state: str) -> list[float]:
        """Heaters stay on in every state; screw shear adds heat only while cycling."""
        drift = self._zone_drift(now)
        shear = self.SHEAR_HEATING_C if state == "running" else (0.0,) * 4
        readings = []
        for i in range(4):
            target = self._setpoints[i] + drift[i] + shear[i]
            self._zones[i] = relax(self._zones[i], target, dt, self.BARREL_TAU_S)
            self._zone_noise[i] = ou_step(self._zone_noise[i], dt, 40.0, 0.6, z[i])
            readings.append(self._zones[i] + self._zone_noise[i])
        return readings

    def _heat_mould(self, dt: float, z: list[float], state: str) -> float:
        target = self._mould_setpoint + (2.0 if state == "running" else -3.0)
        self._mould = relax(self._mould, target, dt, self.MOULD_TAU_S)
        self._mould_noise = ou_step(self._mould_noise, dt, 60.0, 0.5, z[4])
        return self._mould + self._mould_noise

    def _produce(
        self, now: float, dt: float, z: list[float], state: str, zones: list[float]
    ) -> None:
        """Complete whole cycles; each gives one shot of parts, some of them scrap."""
        if self._shift_reset(now):
            self._good = self._scrap = 0
        if state != "running":
            return
        self._phase += dt / self._cycle_time
        cycles = int(self._phase)
        if cycles == 0:
            return
        self._phase -= cycles
        self._cycle_time = self._nominal_cycle * (1.0 + 0.01 * z[5])
        melt_offset = sum(t - s for t, s in zip(zones, self._setpoints, strict=True)) / 4
        viscosity = 1.0 - 0.006 * melt_offset
        self._pressure = self._nominal_pressure * viscosity * (1.0 + 0.015 * z[6])
        parts = cycles * self._cavities
        scrap = int(self._scrap_rng.binomial(parts, self._scrap_probability(now, zones)))
        self._good += parts - scrap
        self._scrap += scrap

    def _scrap_probability(self, now: float, zones: list[float]) -> float:
        """Base 1.5 %, start-up scrap after a mould change, more when the melt is off setpoint."""
        p = 0.015
        if self._states.previous == "setup" and self._states.time_in_state(now) < 600:
            p += 0.12
        worst = max(abs(t - s) for t, s in zip(zones, self._setpoints, strict=True))
        p += 0.01 * max(0.0, worst - 5.0)
        return min(p, 0.8)

    def _power(self, state: str, z: float) -> float:
        """Pump power per state (shaped by the cycle when running) plus heater holding power."""
        if state == "running":
            shape = 1.6 if self._phase < 0.3 else 0.55
            motor = self._motor_kw * shape
            heater = 0.45
        elif state == "idle":
            motor, heater = 0.12 * self._motor_kw, 0.35
        elif state == "setup":
            motor, heater = 0.3 * self._motor_kw, 0.4
        else:
            motor, heater = 0.0, 0.3
        return max(0.0, 0.5 + motor * (1.0 + 0.05 * z) + heater * self._heater_kw)


@dataclass(frozen=True, slots=True)
class _Operation:
    """One block of the part program: spindle speed, feed, load and duration."""

    rpm: float
    feed: float
    load: float
    seconds: float


class CncModel(_ProducingMachine):
    """Vertical machining centre running one part program over and over.

    The spindle load grows with tool wear and drops back at each tool change; bearing wear raises
    the spindle vibration progressively, and the friction raises load and power slightly.
    """

    @property
    def ideal_seconds_per_part(self) -> float | None:
        return self._ideal_per_part

    kind = "cnc"
    faults = frozenset({FaultKind.BEARING_WEAR, FaultKind.STUCK_SENSOR, FaultKind.UNPLANNED_STOP})
    noise_dim = 6
    state_means: ClassVar[StateMeans] = {
        "running": {"idle": 40 * 60, "down": 12 * 3600, "setup": 6 * 3600},
        "idle": {"running": 10 * 60, "setup": 8 * 3600},
        "down": {"running": 30 * 60},
        "setup": {"running": 60 * 60},
    }
    TOOL_LIFE_PARTS = 120

    def _configure(self, rng: np.random.Generator) -> None:
        self._max_rpm = float(rng.choice([8000, 10000, 12000]))
        self._rated_kw = float(rng.choice([7.5, 11.0, 15.0]))
        self._base_vibration = float(rng.uniform(0.45, 0.8))
        self._program = self._make_program(rng)
        self._starts = [0.0]
        for op in self._program:
            self._starts.append(self._starts[-1] + op.seconds)
        self._cycle_s = self._starts[-1]
        self._ideal_per_part = 0.95 * self._cycle_s
        self._position = 0.0
        self._parts = 0
        self._parts_on_tool = int(rng.integers(0, self.TOOL_LIFE_PARTS))
        self._vibration_noise = 0.0

    def _make_program(self, rng: np.random.Generator) -> list[_Operation]:
        """Load/unload, then cutting blocks separated by tool changes."""
        program = [_Operation(0.0, 0.0, 0.0, float(rng.uniform(20.0, 60.0)))]
        for _ in range(int(rng.integers(3, 7))):
            program.append(_Operation(0.0, 0.0, 0.0, 4.0))
            program.append(
                _Operation(
                    rpm=self._max_rpm * float(rng.uniform(0.3, 0.9)),
                    feed=float(rng.uniform(800.0, 6000.0)),
                    load=float(rng.uniform(15.0, 65.0)),
                    seconds=float(rng.uniform(20.0, 120.0)),
                )
            )
        return program

    def _advance(self, now: float, dt: float, z: list[float]) -> Sample:
        state = self._next_state(now, dt)
        if self._shift_reset(now):
            self._parts = 0
        op = self._run_program(dt) if state == "running" else _Operation(0.0, 0.0, 0.0, 0.0)
        wear = self._wear(now)
        tool = 1.0 + 0.15 * self._parts_on_tool / self.TOOL_LIFE_PARTS
        cutting = op.rpm > 0.0
        load = op.load * tool * (1.0 + 0.08 * z[1]) + 8.0 * wear if cutting else 0.0
        load = max(0.0, load)
        vibration = self._vibration(dt, op, load, wear, z)
        return {
            "state": state,
            "alarm_active": state == "down",
            "spindle_speed": round(op.rpm * (1.0 + 0.002 * z[0]), 1) if cutting else 0.0,
            "spindle_load": round(load, 2),
            "feed_rate": round(op.feed * (1.0 + 0.003 * z[2]), 1) if cutting else 0.0,
            "vibration_rms": round(vibration, 3),
            "power": round(self._power(state, cutting, load, z[3]), 3),
            "part_count": self._parts,
        }

    def _run_program(self, dt: float) -> _Operation:
        """Advance through the program; each pass through its end is one finished part."""
        self._position += dt
        finished = int(self._position // self._cycle_s)
        if finished:
            self._position -= finished * self._cycle_s
            self._parts += finished
            self._parts_on_tool = (self._parts_on_tool + finished) % self.TOOL_LIFE_PARTS
        index = bisect.bisect_right(self._starts, self._position) - 1
        return self._program[min(index, len(self._program) - 1)]

    def _vibration(
        self, dt: float, op: _Operation, load: float, wear: float, z: list[float]
    ) -> float:
        """ISO 10816 class I velocity: about 0.5-1.5 mm/s healthy, above 4.5 mm/s with wear."""
        self._vibration_noise = ou_step(self._vibration_noise, dt, 5.0, 0.06, z[4])
        if op.rpm <= 0.0:
            return max(0.0, 0.08 + 0.5 * self._vibration_noise)
        speed = 0.6 + 0.4 * op.rpm / self._max_rpm
        healthy = self._base_vibration * speed * (1.0 + load / 200.0)
        return max(0.0, healthy * (1.0 + 5.0 * wear) + self._vibration_noise + 0.03 * z[5])

    def _power(self, state: str, cutting: bool, load: float, z: float) -> float:
        base = {"running": 1.2, "idle": 1.2, "setup": 1.5, "down": 0.6}[state]
        coolant = 0.75 if state == "running" else 0.0
        spindle = 1.1 * self._rated_kw * load / 100.0 if cutting else 0.0
        return max(0.0, base + coolant + spindle * (1.0 + 0.03 * z))


class AirCompressorModel(_ProducingMachine):
    """Oil-injected screw compressor with load/unload control feeding the workshop's air network.

    The network pressure saw-tooths between the load and unload setpoints; while the compressor is
    down the workshop keeps drawing air, so the pressure falls towards zero.
    """

    kind = "air_compressor"
    faults = frozenset({FaultKind.BEARING_WEAR, FaultKind.STUCK_SENSOR, FaultKind.UNPLANNED_STOP})
    noise_dim = 6
    state_means: ClassVar[StateMeans] = {
        "running": {"idle": 3 * 3600, "down": 3 * 86400},
        "idle": {"running": 15 * 60},
        "down": {"running": 40 * 60},
    }
    SUBSTEP_S = 1.0
    MAX_SUBSTEPS = 300
    VOLTAGE = 380.0

    def _configure(self, rng: np.random.Generator) -> None:
        rated_kw = float(rng.choice([22.0, 30.0, 37.0, 45.0, 55.0]))
        self._full_load_a = rated_kw * 1000.0 / (math.sqrt(3) * self.VOLTAGE * 0.88 * 0.93)
        self._load_bar, self._unload_bar = [(6.5, 7.5), (7.0, 8.0), (7.5, 8.5)][
            int(rng.integers(0, 3))
        ]
        self._fill_bar_per_s = float(rng.uniform(0.04, 0.08))
        self._demand_mean = float(rng.uniform(0.45, 0.8))
        self._base_vibration = float(rng.uniform(1.0, 1.8))
        self._demand_noise = 0.0
        self._pressure = (self._load_bar + self._unload_bar) / 2
        self._loaded = True
        self._oil = 80.0
        self._vibration_noise = 0.0

    def _next_state(self, now: float, dt: float) -> str:
        """Not stopped for the meal breaks: the air network needs air through them, and a stop
        forced each step against the standby's own restart made the state flip every step."""
        forced = "down" if self._stopped_by_fault(now) else None
        return self._states.advance(now, dt, forced)

    def _advance(self, now: float, dt: float, z: list[float]) -> Sample:
        state = self._next_state(now, dt)
        if state == "idle" and self._pressure <= self._load_bar:
            # Standby ends by itself when the network needs air again.
            self._states.enter("running", now)
            state = "running"
        self._demand_noise = ou_step(self._demand_noise, dt, 600.0, 0.12, z[0])
        loaded_share = self._pump(dt, state)
        wear = self._wear(now)
        current = self._current(state, wear, z[1])
        pf = 0.87 if self._loaded else 0.55
        power = math.sqrt(3) * self.VOLTAGE * current * pf / 1000.0
        oil = self._heat_oil(dt, state, loaded_share, wear, z[2])
        return {
            "state": state,
            "alarm_active": state == "down",
            "discharge_pressure": round(max(0.0, self._pressure + 0.01 * z[3]), 3),
            "motor_current": round(current, 2),
            "oil_temp": round(oil, 1),
            "vibration_rms": round(self._vibration(dt, state, wear, z), 3),
            "power": round(power, 3),
        }

    def _demand(self, state: str) -> float:
        """Share of the compressor's free air delivery that the workshop draws now."""
        demand = min(1.1, max(0.05, self._demand_mean + self._demand_noise))
        # Idle means standby at a quiet time: only leaks draw air.
        return 0.08 if state == "idle" else demand

    def _pump(self, dt: float, state: str) -> float:
        """Integrate network pressure with load/unload hysteresis; returns the loaded share."""
        steps = max(1, min(self.MAX_SUBSTEPS, math.ceil(dt / self.SUBSTEP_S)))
        h = dt / steps
        demand = self._demand(state)
        loaded_time = 0.0
        for _ in range(steps):
            if state != "running" or self._pressure >= self._unload_bar:
                self._loaded = False
            elif self._pressure <= self._load_bar:
                self._loaded = True
            supply = 1.0 if self._loaded else 0.0
            self._pressure += self._fill_bar_per_s * (supply - demand) * h
            self._pressure = max(0.0, self._pressure)
            loaded_time += h * supply
        return loaded_time / dt if dt > 0 else (1.0 if self._loaded else 0.0)

    def _current(self, state: str, wear: float, z: float) -> float:
        if state != "running":
            return 0.0
        if self._loaded:
            span = self._unload_bar - self._load_bar
            share = 0.88 + 0.05 * (self._pressure - self._load_bar) / span
        else:
            share = 0.38
        return max(0.0, self._full_load_a * share * (1.0 + 0.04 * wear) * (1.0 + 0.01 * z))

    def _heat_oil(self, dt: float, state: str, loaded: float, wear: float, z: float) -> float:
        """The thermostatic valve holds ~80 °C loaded; a stopped airend cools to the room."""
        if state == "running":
            self._oil = relax(self._oil, 70.0 + 14.0 * loaded + 6.0 * wear, dt, 400.0)
        else:
            self._oil = relax(self._oil, 32.0, dt, 1500.0)
        return self._oil + 0.3 * z

    def _vibration(self, dt: float, state: str, wear: float, z: list[float]) -> float:
        """ISO 10816-3 rigid group 2: healthy below 2.8 mm/s, wear heads past 4.5 mm/s."""
        self._vibration_noise = ou_step(self._vibration_noise, dt, 5.0, 0.08, z[4])
        if state != "running":
            return max(0.0, 0.06 + 0.3 * self._vibration_noise)
        healthy = self._base_vibration * (1.0 if self._loaded else 0.8)
        return max(0.0, healthy * (1.0 + 3.5 * wear) + self._vibration_noise + 0.03 * z[5])


_DAY_SHAPE: tuple[float, ...] = (
    *(0.08, 0.08, 0.08, 0.08, 0.08, 0.08, 0.1, 0.35),  # 00-07: night, then the day shift arrives
    *(0.95, 0.95, 0.95, 0.95, 0.35, 0.6, 0.95, 0.95),  # 08-15: lunch break 12:00-13:30
    *(0.95, 0.95, 0.5, 0.7, 0.7, 0.7, 0.3, 0.1),  # 16-23: dinner, evening overtime
)
"""Share of production load by local hour: a day shift with a long lunch break, then overtime."""


def production_share(now: float) -> float:
    """Share of the workshop's production load in use at ``now`` (Sundays are quiet).

    >>> production_share(2 * 3600)  # 10:00 in Zhongshan on Thursday 1970-01-01
    0.95
    """
    hour = local_hour(now)
    lo = int(hour) % 24
    hi = (lo + 1) % 24
    frac = hour - int(hour)
    share = _DAY_SHAPE[lo] + (_DAY_SHAPE[hi] - _DAY_SHAPE[lo]) * frac
    return share * (0.25 if local_weekday(now) == 6 else 1.0)


class PowerMeterModel(MachineModel):
    """Three-phase meter on a workshop feeder: a base load plus production following the day."""

    kind = "power_meter"
    faults = frozenset({FaultKind.STUCK_SENSOR})
    noise_dim = 9

    def _configure(self, rng: np.random.Generator) -> None:
        self._base_kw = float(rng.uniform(8.0, 25.0))
        self._production_kw = float(rng.uniform(60.0, 220.0))
        self._nominal_v = float(rng.uniform(222.0, 232.0))
        self._phase_offset_v = [float(v) for v in rng.normal(0.0, 1.5, 3)]
        self._phase_share = [1.0 + float(w) for w in rng.normal(0.0, 0.04, 3)]
        self._pf_full = float(rng.uniform(0.88, 0.96))
        self._load_noise = 0.0
        self._voltage_noise = 0.0
        self._energy = 0.0

    def _advance(self, now: float, dt: float, z: list[float]) -> Sample:
        self._load_noise = ou_step(self._load_noise, dt, 300.0, 0.08, z[0])
        self._voltage_noise = ou_step(self._voltage_noise, dt, 120.0, 1.2, z[1])
        production = self._production_kw * production_share(now) * (1.0 + self._load_noise)
        power = max(0.5, self._base_kw * (1.0 + 0.02 * z[2]) + max(0.0, production))
        utilisation = min(1.0, power / (self._base_kw + self._production_kw))
        pf = min(0.99, max(0.5, self._pf_full - 0.12 * (1.0 - utilisation) + 0.003 * z[3]))
        self._energy += power * dt / 3600.0
        values: Sample = {}
        share_sum = sum(self._phase_share)
        for p in range(3):
            sag = 6.0 * utilisation
            volts = self._nominal_v - sag + self._phase_offset_v[p] + self._voltage_noise
            volts += 0.2 * z[4 + p]
            amps = power * 1000.0 * self._phase_share[p] / share_sum / (volts * pf)
            values[f"voltage_l{p + 1}"] = round(volts, 2)
            values[f"current_l{p + 1}"] = round(amps * (1.0 + 0.005 * z[7]), 2)
        values["active_power"] = round(power, 3)
        values["power_factor"] = round(pf, 3)
        values["energy_kwh"] = round(self._energy, 3)
        return values


MODEL_CLASSES: dict[str, type[MachineModel]] = {
    cls.kind: cls for cls in (InjectionMouldingModel, CncModel, AirCompressorModel, PowerMeterModel)
}


def make_model(kind: str, rng: np.random.Generator) -> MachineModel:
    """A model of the machine kind ``kind`` (a key of ``PROFILES``)."""
    try:
        return MODEL_CLASSES[kind](rng)
    except KeyError:
        raise ValueError(f"unknown machine kind {kind!r}") from None


def fault_targets(kind: str, fault: FaultKind) -> list[str]:
    """Tags a fault of this kind can hit; empty when the fault is not about one tag.

    >>> fault_targets("cnc", FaultKind.HEATER_DRIFT)
    []
    """
    profile = PROFILES[kind]
    if fault is FaultKind.HEATER_DRIFT and kind == "injection_moulding":
        return [t.name for t in profile.tags if t.name.startswith("barrel_zone")]
    if fault is FaultKind.STUCK_SENSOR:
        # Measured analogue values; a frozen energy register would look just like a stop.
        return [t.name for t in profile.tags if t.data_type == "float" and t.max_value is not None]
    return []


_SECONDARY_TAGS: dict[tuple[str, FaultKind], tuple[str, ...]] = {
    ("injection_moulding", FaultKind.HEATER_DRIFT): (
        "injection_pressure",
        "good_count",
        "scrap_count",
    ),
    ("cnc", FaultKind.BEARING_WEAR): ("vibration_rms", "spindle_load", "power"),
    ("air_compressor", FaultKind.BEARING_WEAR): (
        "vibration_rms",
        "motor_current",
        "power",
        "oil_temp",
    ),
}


def affected_tags(kind: str, fault: FaultKind, tag: str | None = None) -> tuple[str, ...]:
    """Every tag whose values a fault changes, the faulted tag first: the ground-truth label.

    >>> affected_tags("injection_moulding", FaultKind.HEATER_DRIFT, "barrel_zone2_temp")[:2]
    ('barrel_zone2_temp', 'injection_pressure')
    """
    if fault is FaultKind.UNPLANNED_STOP:
        # A stopped machine changes everything it reports, down to the shear heat in the barrel.
        return tuple(PROFILES[kind].tag_names)
    primary = (tag,) if tag is not None else ()
    return primary + _SECONDARY_TAGS.get((kind, fault), ())


def plan_faults(
    rng: np.random.Generator,
    machines: Mapping[str, str],
    horizon_s: float,
    rate_per_hour: float,
    *,
    start: float = 0.0,
) -> list[FaultEvent]:
    """Faults for each machine (id → kind) over ``[start, start + horizon_s)``, by start time.

    Faults of one machine arrive as a Poisson process of ``rate_per_hour`` and never overlap, so
    each ground-truth window has one cause.
    """
    events: list[FaultEvent] = []
    if rate_per_hour <= 0 or horizon_s <= 0:
        return events
    for machine_id, kind in sorted(machines.items()):
        events.extend(_plan_machine(rng, machine_id, kind, horizon_s, rate_per_hour, start))
    return sorted(events, key=lambda e: (e.start, e.machine_id))


def _plan_machine(
    rng: np.random.Generator,
    machine_id: str,
    kind: str,
    horizon_s: float,
    rate_per_hour: float,
    start: float,
) -> list[FaultEvent]:
    kinds = sorted(MODEL_CLASSES[kind].faults)
    events: list[FaultEvent] = []
    t = start
    while True:
        t += float(rng.exponential(3600.0 / rate_per_hour))
        if t >= start + horizon_s:
            return events
        fault = FaultKind(str(rng.choice(kinds)))
        lo, hi = FAULT_DURATION_S[fault]
        duration = float(rng.uniform(lo, hi))
        targets = fault_targets(kind, fault)
        tag = str(rng.choice(targets)) if targets else None
        events.append(FaultEvent(machine_id, fault, t, duration, tag))
        t += duration


def simulate(
    model: MachineModel, start: float, steps: int, dt: float
) -> list[tuple[float, Sample]]:
    """Run ``steps`` steps from ``start``; handy for tests and notebooks."""
    return [(start + i * dt, model.step(start + i * dt, dt)) for i in range(steps)]
