"""API schemas of downtime reasons and production orders."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator

from clusterbrain.production.reasons import CATEGORIES

CODE_PATTERN = r"^[A-Z0-9][A-Z0-9_.-]{0,63}$"


class ReasonIn(BaseModel):
    code: str = Field(pattern=CODE_PATTERN)
    parent_id: int | None = None
    name_en: str = Field(min_length=1, max_length=200)
    name_zh: str = Field(min_length=1, max_length=200)
    category: str = Field(pattern="^(" + "|".join(CATEGORIES) + ")$")


class ReasonPatch(BaseModel):
    name_en: str | None = Field(default=None, min_length=1, max_length=200)
    name_zh: str | None = Field(default=None, min_length=1, max_length=200)
    active: bool | None = None


class ReasonOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    enterprise_id: int
    code: str
    parent_id: int | None
    name_en: str
    name_zh: str
    category: str
    active: bool


class OrderIn(BaseModel):
    machine_id: int
    order_number: str = Field(min_length=1, max_length=100)
    product: str = Field(min_length=1, max_length=200)
    ideal_cycle_time_s: float = Field(gt=0, le=86_400)
    units_per_cycle: int = Field(default=1, ge=1, le=10_000)
    planned_quantity: int = Field(ge=1)
    planned_start: datetime
    planned_end: datetime

    @model_validator(mode="after")
    def _ordered(self) -> OrderIn:
        if self.planned_start.tzinfo is None or self.planned_end.tzinfo is None:
            raise ValueError("planned_start and planned_end need a time zone")
        if self.planned_end <= self.planned_start:
            raise ValueError("planned_end must be after planned_start")
        self.planned_start = self.planned_start.astimezone(UTC)
        self.planned_end = self.planned_end.astimezone(UTC)
        return self


class OrderOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    enterprise_id: int
    machine_id: int
    order_number: str
    product: str
    ideal_cycle_time_s: float
    units_per_cycle: int
    planned_quantity: int
    planned_start: datetime
    planned_end: datetime
    status: str


class ElementsOut(BaseModel):
    """ISO 22400-2 time elements (seconds) and quantities."""

    model_config = ConfigDict(from_attributes=True)

    planned_operation_time: float
    planned_down_time: float
    planned_busy_time: float
    actual_production_time: float
    actual_unit_setup_time: float
    actual_unit_delay_time: float
    actual_unit_down_time: float
    actual_order_execution_time: float
    time_to_restoration: float
    produced_quantity: float
    good_quantity: float
    scrap_quantity: float
    rework_quantity: float
    planned_runtime_total: float
    failure_events: int
    energy_kwh: float


class KpisOut(BaseModel):
    """Ratios as fractions; MTBF/MTTR in seconds; throughput in units per hour; kWh per unit."""

    model_config = ConfigDict(from_attributes=True)

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


class LossOut(BaseModel):
    name: str
    seconds_lost: float
    remaining_after: float


class IntervalOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    state: str
    start: datetime
    end: datetime


class KpiReport(BaseModel):
    start: datetime
    end: datetime
    elements: ElementsOut
    kpis: KpisOut
    losses: list[LossOut]
    intervals: list[IntervalOut] = Field(default_factory=list)


class MachineKpiRow(BaseModel):
    machine_id: int
    elements: ElementsOut
    kpis: KpisOut


class PeriodKpiRow(BaseModel):
    start: datetime
    end: datetime
    elements: ElementsOut
    kpis: KpisOut


class GroupKpiReport(KpiReport):
    machines: list[MachineKpiRow]


class MachineSettingsIn(BaseModel):
    state_rules: dict[str, object] | None = Field(
        default=None, description="See docs/production-states.md; default: the 'state' tag."
    )
    ideal_cycle_time_s: float | None = Field(default=None, gt=0, le=86_400)
    good_count_tag: str = "good_count"
    scrap_count_tag: str = "scrap_count"
    energy_tag: str = ""
    device_id: str | None = None


class MachineSettingsOut(MachineSettingsIn):
    model_config = ConfigDict(from_attributes=True)

    machine_id: int


class StopOut(BaseModel):
    machine_id: int
    state: str
    start: datetime
    end: datetime
    seconds: float
    awaiting_reason: bool
    reason_id: int | None = None
    comment: str = ""


class AssignReasonIn(BaseModel):
    start: datetime = Field(description="Start of the stop, as listed by the stops route.")
    reason_id: int
    comment: str = Field(default="", max_length=500)


class ParetoRowOut(BaseModel):
    reason: str
    seconds: float
    stops: int
    share: float
    cumulative_share: float


class SubscriptionIn(BaseModel):
    site_id: int
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)
    period: str = Field(pattern="^(shift|day)$")
    language: str = Field(default="zh-CN", pattern="^(zh-CN|en)$")


class SubscriptionOut(SubscriptionIn):
    model_config = ConfigDict(from_attributes=True)

    id: int
    enterprise_id: int
    last_period_end: datetime | None
    last_error: str
