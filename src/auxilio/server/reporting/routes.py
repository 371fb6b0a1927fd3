"""The KPIs over REST, under /api/v1/reports (report:read), for the caller's organisation.

==================================================  ============================================
GET /reports/kpis?start=&end=&slice_by=&<filters>    the KPI report; ``format=csv``: a CSV file
GET /reports/kpis/trend?...&bucket=day|week          one KPI row per day or week
GET /reports/kpis/distributions?...                  resolution and response times, survey scores
GET /reports/kpis/compare?a=&b=&device_group=        two policy versions, each over its tickets
GET /reports/kpis/definitions                        every KPI's definition (docs/kpis.md)
GET /reports/monthly?month=YYYY-MM&format=pdf|png    the monthly report
==================================================  ============================================

A period is ``[start, end)``: ISO 8601 dates or times, UTC where no offset is given, at most
400 days. The filters are ``team``, ``technician_id``, ``category``, ``channel``, ``priority``,
``device_group`` and ``policy_version``; all given apply together. The console's KPI page
(``web/console_kpis.py``) reads its inputs with the same functions, so a bad input has the same
code on both.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

from auxilio.policy.roles import Permission
from auxilio.server.api.deps import DbSession, Identity, require
from auxilio.server.errors import (
    ReportBucketUnknown,
    ReportFilterInvalid,
    ReportFormatUnknown,
    ReportPeriodInvalid,
    ReportPeriodTooLong,
    ReportSliceUnknown,
)
from auxilio.server.reporting import charts, monthly, service
from auxilio.server.reporting.definitions import DEFINITIONS
from auxilio.server.reporting.schemas import (
    Comparison,
    Distributions,
    KpiFilters,
    KpiReport,
    Period,
    SliceBy,
    TrendPoint,
)
from auxilio.server.validation import forbidden_character

router = APIRouter(prefix="/reports", tags=["reports"])

ReadReports = Annotated[Identity, require(Permission.REPORT_READ)]
MAX_PERIOD_DAYS = 400
Bucket = Literal["day", "week"]

# Query parameters: strings read by the functions below, so that each bad value has its code.
Text = Annotated[str | None, Query(max_length=200)]
When = Annotated[str | None, Query(max_length=40, description="ISO 8601 date or time; UTC "
                                   "where no offset is given")]  # fmt: skip


# ---- inputs ----------------------------------------------------------------------------------


def parse_when(value: str, name: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ReportPeriodInvalid(parameter=name) from None
    if not 1 < parsed.year < 9999:  # a bucket or a UTC offset would leave the calendar (a 500)
        raise ReportPeriodInvalid(parameter=name)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def parse_period(start: str | None, end: str | None) -> Period:
    if not start or not end:
        raise ReportPeriodInvalid(parameter="start" if not start else "end")
    begin, finish = parse_when(start, "start"), parse_when(end, "end")
    if finish <= begin:
        raise ReportPeriodInvalid(parameter="end")
    if finish - begin > timedelta(days=MAX_PERIOD_DAYS):
        raise ReportPeriodTooLong(max_days=MAX_PERIOD_DAYS)
    return Period(start=begin, end=finish)


def parse_slice(value: str | None) -> SliceBy | None:
    if not value:
        return None
    try:
        return SliceBy(value)
    except ValueError:
        raise ReportSliceUnknown(slice_by=value[:40]) from None


def parse_bucket(value: str | None) -> Bucket:
    if value in (None, "", "day"):
        return "day"
    if value == "week":
        return "week"
    raise ReportBucketUnknown(bucket=value[:20])


def parse_filters(**given: str | None) -> KpiFilters:
    values = {name: value for name, value in given.items() if value not in (None, "")}
    try:
        return KpiFilters.model_validate(values)
    except ValidationError as exc:
        names = sorted({str(e["loc"][0]) for e in exc.errors() if e.get("loc")})
        raise ReportFilterInvalid(filters=names) from None


def check_version(value: str, name: str) -> str:
    if not value.strip() or len(value) > 100 or forbidden_character(value, multiline=False):
        raise ReportFilterInvalid(filters=[name])
    return value


def check_format(value: str | None, offered: tuple[str, ...]) -> str:
    chosen = value or offered[0]
    if chosen not in offered:
        raise ReportFormatUnknown(format=chosen[:20], offered=list(offered))
    return chosen


def _filters(team: Text = None, technician_id: Text = None, category: Text = None,
             channel: Text = None, priority: Text = None, device_group: Text = None,
             policy_version: Text = None) -> KpiFilters:  # fmt: skip
    return parse_filters(team=team, technician_id=technician_id, category=category,
                         channel=channel, priority=priority, device_group=device_group,
                         policy_version=policy_version)  # fmt: skip


# ---- routes ----------------------------------------------------------------------------------


@router.get("/kpis", response_model=KpiReport,
            responses={200: {"content": {"text/csv": {}}}})  # fmt: skip
async def get_kpis(
    caller: ReadReports, db: DbSession, start: When = None, end: When = None,
    slice_by: Annotated[str | None, Query(max_length=40)] = None,
    format: Annotated[str | None, Query(max_length=10)] = None,
    team: Text = None, technician_id: Text = None, category: Text = None, channel: Text = None,
    priority: Text = None, device_group: Text = None, policy_version: Text = None,
) -> KpiReport | Response:  # fmt: skip
    """The KPIs over the period, overall and per slice value; ``format=csv`` answers the same
    figures as a CSV attachment."""
    chosen = check_format(format, ("json", "csv"))
    period = parse_period(start, end)
    filters = _filters(team, technician_id, category, channel, priority, device_group,
                       policy_version)  # fmt: skip
    report = await service.kpi_report(
        db, organisation_id=caller.user.organisation_id, period=period, filters=filters,
        slice_by=parse_slice(slice_by),
    )  # fmt: skip
    if chosen == "csv":
        name = f"kpis-{period.start:%Y%m%d}-{period.end:%Y%m%d}.csv"
        disposition = {"content-disposition": f'attachment; filename="{name}"'}
        return Response(service.kpi_report_csv(report), media_type="text/csv; charset=utf-8",
                        headers=disposition)  # fmt: skip
    return report


@router.get("/kpis/trend", response_model=list[TrendPoint], description=(
    "The KPIs per day or week of the period, each bucket as its own period. The points carry "
    "tickets_created, tickets_resolved, the resolution and first response means and medians, "
    "csat, survey_response_rate and first_contact_resolution; backlog, sla_breaches, "
    "repeat_incidents and cost_per_ticket are left out (ask /kpis for a period)."))
async def get_trend(
    caller: ReadReports, db: DbSession, start: When = None, end: When = None,
    bucket: Annotated[str | None, Query(max_length=10)] = None,
    team: Text = None, technician_id: Text = None, category: Text = None, channel: Text = None,
    priority: Text = None, device_group: Text = None, policy_version: Text = None,
) -> list[TrendPoint]:  # fmt: skip
    chosen = parse_bucket(bucket)
    period = parse_period(start, end)
    filters = _filters(team, technician_id, category, channel, priority, device_group,
                       policy_version)  # fmt: skip
    return await service.kpi_trend(db, organisation_id=caller.user.organisation_id,
                                   period=period, filters=filters, bucket=chosen)  # fmt: skip


@router.get("/kpis/distributions", response_model=Distributions)
async def get_distributions(
    caller: ReadReports, db: DbSession, start: When = None, end: When = None,
    team: Text = None, technician_id: Text = None, category: Text = None, channel: Text = None,
    priority: Text = None, device_group: Text = None, policy_version: Text = None,
) -> Distributions:  # fmt: skip
    period = parse_period(start, end)
    filters = _filters(team, technician_id, category, channel, priority, device_group,
                       policy_version)  # fmt: skip
    return await service.distributions(db, organisation_id=caller.user.organisation_id,
                                       period=period, filters=filters)  # fmt: skip


@router.get("/kpis/compare", response_model=Comparison)
async def get_comparison(
    caller: ReadReports, db: DbSession,
    a: Annotated[str, Query(min_length=1, max_length=100)],
    b: Annotated[str, Query(min_length=1, max_length=100)],
    device_group: Text = None,
) -> Comparison:  # fmt: skip
    """The pilot question: the same KPIs for policy versions ``a`` and ``b``, each over its own
    tickets (in ``device_group`` only, where given); ``deltas`` are b - a."""
    group = parse_filters(device_group=device_group).device_group
    return await service.compare_versions(
        db, organisation_id=caller.user.organisation_id, a=check_version(a, "a"),
        b=check_version(b, "b"), device_group=group,
    )  # fmt: skip


class DefinitionOut(BaseModel):
    id: str
    version: int
    title: str
    unit: str
    summary: str
    ref: str  # what a KPI result's ``definition`` names; docs/kpis.md has it as a heading


@router.get("/kpis/definitions", response_model=list[DefinitionOut])
async def get_definitions(caller: ReadReports) -> list[DefinitionOut]:
    return [DefinitionOut(id=d.id, version=d.version, title=d.title, unit=str(d.unit),
                          summary=d.summary, ref=d.ref) for d in DEFINITIONS.values()]  # fmt: skip


MONTHLY_TYPES = {"pdf": "application/pdf", "png": "image/png"}


@router.get("/monthly", response_class=Response,
            responses={200: {"content": {"application/pdf": {}, "image/png": {}}}})  # fmt: skip
async def get_monthly(
    caller: ReadReports, db: DbSession,
    month: Annotated[str | None, Query(max_length=20, description="YYYY-MM")] = None,
    format: Annotated[str | None, Query(max_length=10)] = None,
) -> Response:  # fmt: skip
    """The month's report: a PDF of several pages, or the same pages as one tall PNG."""
    chosen = check_format(format, ("pdf", "png"))
    data = await monthly.gather_month(db, organisation_id=caller.user.organisation_id,
                                      month=month or "")  # fmt: skip
    draw = monthly.monthly_pdf if chosen == "pdf" else monthly.monthly_png
    body = await charts.render(lambda: draw(data))
    name = f"auxilio-kpis-{data.month}.{chosen}"
    return Response(body, media_type=MONTHLY_TYPES[chosen],
                    headers={"content-disposition": f'attachment; filename="{name}"'})  # fmt: skip
