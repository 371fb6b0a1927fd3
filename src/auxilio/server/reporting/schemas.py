"""What the reporting answers: the inputs (period, filters, slice) and the results, which the
console, the CSV and JSON export, the REST API and the monthly report all show the same."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, model_validator

from auxilio.server.validation import Name, QueryText


class SliceBy(StrEnum):
    TEAM = "team"
    TECHNICIAN = "technician"
    CATEGORY = "category"
    CHANNEL = "channel"
    PRIORITY = "priority"
    DEVICE_GROUP = "device_group"
    POLICY_VERSION = "policy_version"


class Period(BaseModel):
    """``[start, end)`` in UTC."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    start: AwareDatetime
    end: AwareDatetime

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        if self.end <= self.start:
            raise ValueError("the period's end must come after its start")
        return self


class KpiFilters(BaseModel):
    """Narrow every KPI to one value of a slice (all given filters apply together)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    team: Name | None = None
    technician_id: uuid.UUID | None = None
    category: Name | None = None
    channel: Name | None = None
    priority: Name | None = None
    device_group: Name | None = None
    # QueryText: no control characters (PostgreSQL refuses NUL in a parameter: was a 500).
    policy_version: Annotated[QueryText, Field(min_length=1, max_length=100)] | None = None


class KpiValue(BaseModel):
    kpi: str
    definition: str  # "<id>@v<version>", docs/kpis.md
    unit: str
    value: float | None  # None: nothing to measure (n == 0) or not configured
    n: int  # how many tickets, surveys... the value is computed over
    note: str | None = None  # e.g. "not_configured" for SLA breaches without targets


class KpiRow(BaseModel):
    key: str | None  # the slice's value ("unknown" where a ticket has none); None: all
    label: str | None = None  # a person's name for the technician slice
    kpis: dict[str, KpiValue]


class KpiReport(BaseModel):
    organisation_id: uuid.UUID
    period: Period
    filters: KpiFilters
    slice_by: SliceBy | None
    generated_at: datetime
    overall: KpiRow
    rows: list[KpiRow]  # one per slice value, sorted by key; empty without slice_by


class TrendPoint(BaseModel):
    bucket_start: datetime
    kpis: dict[str, KpiValue]


class Histogram(BaseModel):
    kpi: str
    definition: str
    edges: list[float]  # len(counts) + 1 bin edges, in the KPI's unit
    counts: list[int]


class Distributions(BaseModel):
    resolution_time: Histogram
    first_response_time: Histogram
    csat_scores: dict[str, int]  # "1".."5" (or the survey's scale) -> answers


class VersionSide(BaseModel):
    policy_version: str
    period: Period | None  # when its tickets were opened (None: it has none)
    row: KpiRow


class Comparison(BaseModel):
    """The pilot question: the same KPIs for two policy versions, each over its own tickets,
    within one device group where given (a pilot's group)."""

    device_group: str | None
    a: VersionSide
    b: VersionSide
    # b - a for each KPI present on both sides with a value.
    deltas: dict[str, float]


# ------------------------------------------------------------------------------ settings


# At most a year: a target is a number of seconds a database column holds.
TargetSeconds = Annotated[StrictInt, Field(ge=1, le=365 * 86400)]


class SlaTarget(BaseModel):
    model_config = ConfigDict(extra="forbid")
    first_response_seconds: TargetSeconds | None = None
    resolution_seconds: TargetSeconds | None = None


class KpiSettings(BaseModel):
    """The organisation's ``kpi_settings``: costs in cents, SLA targets by ticket priority."""

    model_config = ConfigDict(extra="forbid")
    cost_per_hour_by_role: dict[Name, Annotated[StrictInt, Field(ge=0, le=10_000_000)]] = {}
    cost_per_session_cents: StrictInt = Field(default=0, ge=0, le=10_000_000)
    sla: dict[Name, SlaTarget] = {}
