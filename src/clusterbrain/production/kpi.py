"""Production KPIs of ISO 22400-2:2014 as pure functions over summed time elements.

Every KPI is computed from one :class:`TimeElements` record. Aggregation over machines, shifts or
days sums the elements first (``a + b``, :func:`sum_elements`) and computes each ratio once; a
ratio is never averaged. A ratio whose denominator is zero is ``None`` (undefined), never 0 and
never an exception. Nothing is clamped: a value outside the bounds the standard gives means wrong
input (see :meth:`TimeElements.consistency_issues`), and it is shown as it is.

Formulas, units, bounds and sources: ``docs/kpis.md``.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable
from dataclasses import dataclass, fields
from functools import reduce
from typing import Any

SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeElements:
    """ISO 22400-2 time elements and quantities of a work unit (or a sum of them) over a period.

    Times are seconds, quantities are units (pieces, kg, ...), energy is kWh. Every stored field is
    additive, so the elements of a line, a day or a month are the field-wise sums of its parts.

    Stored (ISO 22400-2 abbreviation in brackets):

    - planned_operation_time (POT): time the work unit can be used, from the shift calendar.
    - planned_down_time (PDOT): planned stops inside POT (breaks, planned maintenance).
    - actual_production_time (APT): time the unit was producing; value-adding functions only.
    - actual_unit_setup_time (AUST): setup (changeover) time for orders.
    - actual_unit_delay_time (ADET): unplanned interruptions while executing an order
      (malfunctions, minor stoppages, waiting).
    - actual_unit_down_time (ADOT): time the unit was available but executed no order.
    - actual_order_execution_time (AOET): start-to-end time of the production orders, including
      transport and queuing. Orders may overlap, so AOET is not part of the PBT partition.
    - time_to_restoration (TTR, summed over failures): down time caused by failures; a part of
      ADET + ADOT.
    - produced_quantity (PQ), good_quantity (GQ), scrap_quantity (SQ), rework_quantity (RQ).
    - planned_runtime_total: sum of PRU x PQ over products, seconds. PRU, the planned run time per
      unit (ideal cycle time), differs per machine and product; carrying the product keeps sums
      exact.
    - failure_events (FE): number of failures.
    - energy_kwh: energy consumed in the period.

    Derived: planned_busy_time (PBT), actual_unit_processing_time (AUPT),
    actual_unit_busy_time (AUBT), planned_runtime_per_unit (average PRU).

    >>> shift = TimeElements(planned_operation_time=480 * 60, planned_down_time=60 * 60)
    >>> (shift + shift).planned_busy_time / 60
    840.0
    """

    planned_operation_time: float = 0.0
    planned_down_time: float = 0.0
    actual_production_time: float = 0.0
    actual_unit_setup_time: float = 0.0
    actual_unit_delay_time: float = 0.0
    actual_unit_down_time: float = 0.0
    actual_order_execution_time: float = 0.0
    time_to_restoration: float = 0.0
    produced_quantity: float = 0.0
    good_quantity: float = 0.0
    scrap_quantity: float = 0.0
    rework_quantity: float = 0.0
    planned_runtime_total: float = 0.0
    failure_events: int = 0
    energy_kwh: float = 0.0

    def __post_init__(self) -> None:
        # A year of days of a cluster builds tens of thousands of these: no fields() per record.
        for name in _ELEMENT_NAMES:
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if not isinstance(self.failure_events, int):
            raise ValueError(f"failure_events must be a whole number, got {self.failure_events!r}")

    def __add__(self, other: object) -> TimeElements:
        if not isinstance(other, TimeElements):
            return NotImplemented
        summed: dict[str, Any] = {
            f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)
        }
        return TimeElements(**summed)

    @property
    def planned_busy_time(self) -> float:
        """PBT = POT - PDOT: the time planned for production orders, in seconds."""
        return self.planned_operation_time - self.planned_down_time

    @property
    def actual_unit_processing_time(self) -> float:
        """AUPT = APT + AUST: production plus setup time, in seconds."""
        return self.actual_production_time + self.actual_unit_setup_time

    @property
    def actual_unit_busy_time(self) -> float:
        """AUBT = AUPT + ADET: time the unit was occupied by orders, in seconds."""
        return self.actual_unit_processing_time + self.actual_unit_delay_time

    @property
    def planned_runtime_per_unit(self) -> float | None:
        """Average PRU = planned_runtime_total / PQ, in seconds per unit; None if PQ = 0."""
        return _ratio(self.planned_runtime_total, self.produced_quantity)

    def consistency_issues(self) -> tuple[str, ...]:
        """The relations of the time model these elements break; empty when consistent.

        Ratios the standard bounds to [0, 1] stay in bounds when this is empty.

        >>> TimeElements(planned_operation_time=60, actual_production_time=90).consistency_issues()
        ('APT + AUST + ADET + ADOT <= PBT',)
        """
        checks = (
            (self.planned_down_time, self.planned_operation_time, "PDOT <= POT"),
            (
                self.actual_unit_busy_time + self.actual_unit_down_time,
                self.planned_busy_time,
                "APT + AUST + ADET + ADOT <= PBT",
            ),
            (
                self.time_to_restoration,
                self.actual_unit_delay_time + self.actual_unit_down_time,
                "TTR <= ADET + ADOT",
            ),
            (self.planned_runtime_total, self.actual_production_time, "PRU x PQ <= APT"),
            (self.good_quantity + self.scrap_quantity, self.produced_quantity, "GQ + SQ <= PQ"),
            (self.scrap_quantity + self.rework_quantity, self.produced_quantity, "SQ + RQ <= PQ"),
        )
        return tuple(label for left, right, label in checks if _exceeds(left, right))


_ELEMENT_NAMES = tuple(f.name for f in fields(TimeElements))


def sum_elements(elements: Iterable[TimeElements]) -> TimeElements:
    """The field-wise sum of time elements; the empty sum is all zeros.

    >>> total = sum_elements([TimeElements(produced_quantity=2), TimeElements(produced_quantity=3)])
    >>> total.produced_quantity
    5.0
    """
    return reduce(operator.add, elements, TimeElements())


def _ratio(numerator: float, denominator: float) -> float | None:
    return None if denominator == 0 else numerator / denominator


def _exceeds(left: float, right: float) -> bool:
    # Sums of floats carry rounding; a relation broken by less than that is not broken.
    return left > right + 1e-9 * max(1.0, abs(right))


def availability(e: TimeElements) -> float | None:
    """Availability = APT / PBT; bounded [0, 1]; None if PBT = 0.

    >>> availability(TimeElements(planned_operation_time=480, actual_production_time=420))
    0.875
    """
    return _ratio(e.actual_production_time, e.planned_busy_time)


def effectiveness(e: TimeElements) -> float | None:
    """Effectiveness (performance) = PRU x PQ / APT; None if APT = 0.

    ISO 22400-2 rates it 0..100 % but notes that it exceeds 100 % when the planned cycle is
    longer than the actual one; a value above 1 means the planned run time per unit is wrong, and
    it is returned unclamped so that the error shows.

    >>> e = TimeElements(actual_production_time=420, planned_runtime_total=400, produced_quantity=400)
    >>> round(effectiveness(e), 3)
    0.952
    """
    return _ratio(e.planned_runtime_total, e.actual_production_time)


def quality_ratio(e: TimeElements) -> float | None:
    """Quality ratio = GQ / PQ; bounded [0, 1]; None if PQ = 0.

    >>> quality_ratio(TimeElements(produced_quantity=400, good_quantity=380))
    0.95
    """
    return _ratio(e.good_quantity, e.produced_quantity)


def fully_productive_time(e: TimeElements) -> float:
    """Planned run time of the good units = PRU x PQ x GQ / PQ, in seconds; 0 if PQ = 0.

    The time a perfect unit would have needed for the good output; OEE x PBT.

    >>> fully_productive_time(
    ...     TimeElements(planned_runtime_total=400, produced_quantity=400, good_quantity=380)
    ... )
    380.0
    """
    share_good = _ratio(e.good_quantity, e.produced_quantity)
    return 0.0 if share_good is None else e.planned_runtime_total * share_good


def oee(e: TimeElements) -> float | None:
    """OEE index = Availability x Effectiveness x Quality ratio = PRU x GQ / PBT.

    Computed as fully_productive_time / PBT, which equals A x E x Q whenever all three are
    defined, and is 0 (not None) when time was planned but nothing was produced. Bounded [0, 1]
    for consistent elements; None if PBT = 0.

    >>> e = TimeElements(
    ...     planned_operation_time=480, actual_production_time=420,
    ...     planned_runtime_total=400, produced_quantity=400, good_quantity=380,
    ... )
    >>> round(oee(e), 4)
    0.7917
    """
    return _ratio(fully_productive_time(e), e.planned_busy_time)


def nee(e: TimeElements) -> float | None:
    """NEE index (net equipment effectiveness) = AUPT / PBT x Effectiveness x Quality ratio.

    Like OEE but setup time counts as no loss. Bounded [0, 1] for consistent elements; None if
    PBT = 0 or APT = 0 with output; 0 when nothing was produced.

    >>> e = TimeElements(
    ...     planned_operation_time=480, actual_production_time=420, actual_unit_setup_time=30,
    ...     planned_runtime_total=400, produced_quantity=400, good_quantity=380,
    ... )
    >>> round(nee(e), 4)
    0.8482
    """
    if e.planned_busy_time == 0:
        return None
    if e.produced_quantity == 0:
        return 0.0
    performance = effectiveness(e)
    if performance is None:
        return None
    share_good = e.good_quantity / e.produced_quantity
    return e.actual_unit_processing_time / e.planned_busy_time * performance * share_good


def technical_efficiency(e: TimeElements) -> float | None:
    """Technical efficiency = APT / (APT + ADET); bounded [0, 1]; None if APT + ADET = 0.

    >>> technical_efficiency(TimeElements(actual_production_time=300, actual_unit_delay_time=100))
    0.75
    """
    return _ratio(e.actual_production_time, e.actual_production_time + e.actual_unit_delay_time)


def throughput_rate(e: TimeElements) -> float | None:
    """Throughput rate = PQ / AOET, in units per hour; >= 0, no upper bound; None if AOET = 0.

    >>> throughput_rate(TimeElements(produced_quantity=120, actual_order_execution_time=7200))
    60.0
    """
    rate = _ratio(e.produced_quantity, e.actual_order_execution_time)
    return None if rate is None else rate * SECONDS_PER_HOUR


def first_pass_yield(e: TimeElements) -> float | None:
    """First pass yield = GP / IP, read as (PQ - SQ - RQ) / PQ; bounded [0, 1]; None if PQ = 0.

    Every produced unit counts as inspected (IP = PQ), and a good part (GP) is one that was
    neither scrapped nor reworked; see docs/kpis.md.

    >>> first_pass_yield(TimeElements(produced_quantity=100, scrap_quantity=3, rework_quantity=2))
    0.95
    """
    first_pass_good = e.produced_quantity - e.scrap_quantity - e.rework_quantity
    return _ratio(first_pass_good, e.produced_quantity)


def scrap_ratio(e: TimeElements) -> float | None:
    """Scrap ratio = SQ / PQ; bounded [0, 1]; None if PQ = 0.

    >>> scrap_ratio(TimeElements(produced_quantity=200, scrap_quantity=5))
    0.025
    """
    return _ratio(e.scrap_quantity, e.produced_quantity)


def rework_ratio(e: TimeElements) -> float | None:
    """Rework ratio = RQ / PQ; bounded [0, 1]; None if PQ = 0.

    >>> rework_ratio(TimeElements(produced_quantity=200, rework_quantity=10))
    0.05
    """
    return _ratio(e.rework_quantity, e.produced_quantity)


def mtbf(e: TimeElements) -> float | None:
    """MTBF (mean operating time between failures) = sum(TBF) / (FE + 1) = AUPT / (FE + 1).

    Seconds. FE failures cut the operating time into FE + 1 intervals; operating time between
    failures (TBF) counts setup and production but no delays, so its sum is AUPT. None if AUPT = 0
    (the unit never operated).

    >>> mtbf(TimeElements(actual_production_time=7000, actual_unit_setup_time=200, failure_events=2))
    2400.0
    """
    operating = e.actual_unit_processing_time
    return None if operating == 0 else operating / (e.failure_events + 1)


def mttr(e: TimeElements) -> float | None:
    """MTTR (mean time to restoration) = sum(TTR) / FE, in seconds; None if FE = 0.

    >>> mttr(TimeElements(time_to_restoration=1800, actual_unit_delay_time=1800, failure_events=3))
    600.0
    """
    return _ratio(e.time_to_restoration, e.failure_events)


def allocation_ratio(e: TimeElements) -> float | None:
    """Allocation ratio = AUBT / AOET; >= 0 and may exceed 1 when operations overlap.

    None if AOET = 0.

    >>> allocation_ratio(TimeElements(actual_production_time=3000, actual_order_execution_time=6000))
    0.5
    """
    return _ratio(e.actual_unit_busy_time, e.actual_order_execution_time)


def setup_ratio(e: TimeElements) -> float | None:
    """Setup ratio (ISO "setup rate") = AUST / AUPT; bounded [0, 1]; None if AUPT = 0.

    >>> setup_ratio(TimeElements(actual_production_time=900, actual_unit_setup_time=100))
    0.1
    """
    return _ratio(e.actual_unit_setup_time, e.actual_unit_processing_time)


def energy_per_good_unit(e: TimeElements) -> float | None:
    """Energy per good unit = energy / GQ, in kWh per unit; >= 0; None if GQ = 0.

    >>> energy_per_good_unit(TimeElements(energy_kwh=50, produced_quantity=110, good_quantity=100))
    0.5
    """
    return _ratio(e.energy_kwh, e.good_quantity)


def comprehensive_energy_consumption(e: TimeElements) -> float | None:
    """Comprehensive energy consumption (ISO) = energy / PQ, in kWh per unit; None if PQ = 0.

    >>> comprehensive_energy_consumption(TimeElements(energy_kwh=55, produced_quantity=110))
    0.5
    """
    return _ratio(e.energy_kwh, e.produced_quantity)


@dataclass(frozen=True, slots=True)
class KpiSet:
    """Every KPI of one set of time elements; None where a denominator is zero.

    Ratios are fractions (0.875, not 87.5); times are seconds; throughput_rate is units per hour;
    the energy KPIs are kWh per unit.
    """

    availability: float | None
    effectiveness: float | None
    quality_ratio: float | None
    oee: float | None
    nee: float | None
    technical_efficiency: float | None
    throughput_rate: float | None
    first_pass_yield: float | None
    scrap_ratio: float | None
    rework_ratio: float | None
    mtbf: float | None
    mttr: float | None
    allocation_ratio: float | None
    setup_ratio: float | None
    energy_per_good_unit: float | None
    comprehensive_energy_consumption: float | None


def compute_kpis(e: TimeElements) -> KpiSet:
    """All KPIs of one set of time elements (sum the elements first to aggregate).

    >>> kpis = compute_kpis(TimeElements(planned_operation_time=480, actual_production_time=420))
    >>> kpis.availability, kpis.quality_ratio
    (0.875, None)
    """
    return KpiSet(
        availability=availability(e),
        effectiveness=effectiveness(e),
        quality_ratio=quality_ratio(e),
        oee=oee(e),
        nee=nee(e),
        technical_efficiency=technical_efficiency(e),
        throughput_rate=throughput_rate(e),
        first_pass_yield=first_pass_yield(e),
        scrap_ratio=scrap_ratio(e),
        rework_ratio=rework_ratio(e),
        mtbf=mtbf(e),
        mttr=mttr(e),
        allocation_ratio=allocation_ratio(e),
        setup_ratio=setup_ratio(e),
        energy_per_good_unit=energy_per_good_unit(e),
        comprehensive_energy_consumption=comprehensive_energy_consumption(e),
    )
