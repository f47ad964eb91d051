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
