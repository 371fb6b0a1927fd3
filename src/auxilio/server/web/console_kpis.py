"""The console's KPI pages: the service's KPIs with their definitions, charts and exports.

==============================================  ===========  ===================================
page                                            permission   what
==============================================  ===========  ===================================
GET /console/kpis?month=|from=&to=&slice_by=&…  report:read  the KPI table, the slice's table,
                                                             trend and distribution charts
GET /console/kpis/charts/{name}.svg?…           report:read  one chart (image/svg+xml)
GET /console/kpis/export.{csv,json}?…           report:read  the same report as the API's
GET /console/kpis/monthly.{pdf,png}?month=      report:read  the monthly report
GET /console/kpis/compare?a=&b=&device_group=   report:read  two policy versions side by side
GET /console/kpis/definitions                   report:read  every definition, with its version
==============================================  ===========  ===================================

The charts are drawn on the server (reporting/charts.py, ADR 0014) and shown as ``<img>``:
no script, nothing inline, so the pages work under the app's CSP. The exports are page routes
(the browser's session cookie), computed by the same service calls as /api/v1/reports; the API
itself wants a bearer token or a CSRF header that a link cannot send.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from auxilio.policy.roles import Permission
from auxilio.server.api.deps import DbSession
from auxilio.server.context import Actor
from auxilio.server.db.base import utcnow
from auxilio.server.errors import DomainError, NotFound, ReportPeriodInvalid
from auxilio.server.reporting import charts, monthly, service
from auxilio.server.reporting import routes as api
from auxilio.server.reporting.definitions import DEFINITIONS, Unit
from auxilio.server.reporting.schemas import Comparison, KpiFilters, Period, SliceBy
from auxilio.server.web.pages import N_, register_pages, render, translator, web_require

router = APIRouter(prefix="/console/kpis", include_in_schema=False)

Reports = Annotated[Actor, web_require(Permission.REPORT_READ)]
Text = Annotated[str | None, Query(max_length=200)]
FILTERS = ("team", "category", "channel", "priority", "device_group", "policy_version")
# Words of the pickers and charts, in the person's language when shown.
SLICE_LABELS: dict[str, str] = {
    "team": N_("Team"), "technician": N_("Technician"), "category": N_("Category"),
    "channel": N_("Channel"), "priority": N_("Priority"), "device_group": N_("Device group"),
    "policy_version": N_("Policy version"),
}  # fmt: skip
CHARTS: dict[str, str] = {
    "resolution-trend": N_("Resolution time per day: mean and median, in hours"),
    "csat-trend": N_("Customer satisfaction and survey response rate per day, in percent"),
    "resolution-histogram": N_("How long resolved tickets took"),
    "response-histogram": N_("How long the first response took"),
    "csat-scores": N_("Survey answers by score"),
}


def _org(actor: Actor) -> Any:
    assert actor.organisation_id is not None  # noqa: S101 -- staff belong to an organisation
    return actor.organisation_id


# ---- what the page was asked ----------------------------------------------------------------


@dataclass
class Inputs:
    """The picker's values as given (shown back in the form) and what they mean."""

    month: str = ""
    day_from: str = ""
    day_to: str = ""
    slice_by: str = ""
    filters: dict[str, str] = field(default_factory=dict)
    period: Period | None = None
    slice: SliceBy | None = None
    kpi_filters: KpiFilters = field(default_factory=KpiFilters)

    def query(self, **extra: str) -> str:
        """The query string that asks the same (for chart images and export links)."""
        values = {"month": self.month, "from": self.day_from, "to": self.day_to,
                  "slice_by": self.slice_by, **self.filters, **extra}  # fmt: skip
        return urlencode({k: v for k, v in values.items() if v})


def _asked(
    month: Annotated[str | None, Query(max_length=20)] = None,
    day_from: Annotated[str | None, Query(alias="from", max_length=40)] = None,
    day_to: Annotated[str | None, Query(alias="to", max_length=40)] = None,
    slice_by: Annotated[str | None, Query(max_length=40)] = None,
    team: Text = None, category: Text = None, channel: Text = None, priority: Text = None,
    device_group: Text = None, policy_version: Text = None,
) -> Inputs:  # fmt: skip
    """The picker's query, as given: one reading for the page, its charts and its exports."""
    filters = {"team": team, "category": category, "channel": channel, "priority": priority,
               "device_group": device_group, "policy_version": policy_version}  # fmt: skip
    return Inputs(month=month or "", day_from=day_from or "", day_to=day_to or "",
                  slice_by=slice_by or "", filters={k: v for k, v in filters.items() if v})


Asked = Annotated[Inputs, Depends(_asked)]


def read_inputs(asked: Inputs) -> Inputs:
    """What the picker's values mean; a bad one raises the API's error for it (same code)."""
    given = replace(asked, filters=dict(asked.filters))
    if given.day_from or given.day_to:
        # The picker's "to" day is included: the period ends at the next midnight.
        start = api.parse_when(given.day_from, "from") if given.day_from else None
        end = api.parse_when(given.day_to, "to") if given.day_to else None
        if start is None or end is None:
            raise ReportPeriodInvalid(parameter="from" if start is None else "to")
        if len(given.day_to.strip()) == 10:
            end += timedelta(days=1)
        given.period = api.parse_period(start.isoformat(), end.isoformat())
    else:
        if not given.month:
            given.month = f"{utcnow():%Y-%m}"
        given.period = monthly.month_period(given.month)
    given.slice = api.parse_slice(given.slice_by)
    given.kpi_filters = api.parse_filters(**given.filters)
    return given


def kpi_cell(kpi: str, value: float | None) -> str:
    """A value as the tables show it ("-": nothing to measure, or not configured)."""
    return monthly.shown(kpi, value)


def _unit_words(_: Callable[..., str]) -> dict[str, str]:
    return {Unit.SECONDS: _("duration"), Unit.PERCENT: _("percent"), Unit.COUNT: _("count"),
            Unit.CENTS: _("currency")}  # fmt: skip


# ---- the page --------------------------------------------------------------------------------


@router.get("", response_class=HTMLResponse)
async def kpis_page(request: Request, actor: Reports, db: DbSession, asked: Asked) -> HTMLResponse:
    _ = translator(request)
    common: dict[str, Any] = {
        "slice_labels": SLICE_LABELS, "filter_names": FILTERS, "definitions": DEFINITIONS,
        "table_kpis": monthly.TABLE_KPIS, "charts": CHARTS, "shown": kpi_cell,
        "unit_words": _unit_words(_), "plain": _,
    }  # fmt: skip
    try:
        got = read_inputs(asked)
    except DomainError as exc:
        return render(request, "web/console/kpis.html", status_code=exc.status, error=exc,
                      inputs=replace(asked, filters={}), report=None, **common)  # fmt: skip
    assert got.period is not None  # noqa: S101 -- read_inputs sets it
    org = _org(actor)
    report = await service.kpi_report(db, organisation_id=org, period=got.period,
                                      filters=got.kpi_filters, slice_by=got.slice)  # fmt: skip
    trend = await service.kpi_trend(db, organisation_id=org, period=got.period,
                                    filters=got.kpi_filters)  # fmt: skip
    spread = await service.distributions(db, organisation_id=org, period=got.period,
                                         filters=got.kpi_filters)  # fmt: skip
    return render(request, "web/console/kpis.html", error=None, inputs=got, report=report,
                  trend=trend, spread=spread, **common)  # fmt: skip


@router.get("/definitions", response_class=HTMLResponse)
async def definitions_page(request: Request, actor: Reports) -> HTMLResponse:
    _ = translator(request)
    return render(request, "web/console/kpis_definitions.html", definitions=DEFINITIONS,
                  unit_words=_unit_words(_), plain=_)  # fmt: skip


# ---- charts and exports ----------------------------------------------------------------------

SVG_HEADERS = {"cache-control": "private, no-store"}


@router.get("/charts/{name}.svg")
async def chart(
    request: Request, name: str, actor: Reports, db: DbSession, asked: Asked,
    a: Annotated[str | None, Query(max_length=100)] = None,
    b: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:  # fmt: skip
    _ = translator(request)
    org = _org(actor)
    if name == "comparison":
        compared = await _compare(db, org, a, b, asked.filters.get("device_group"))
        if compared is None:
            raise NotFound(chart=name)
        title = _("Policy %(a)s against %(b)s", a=compared.a.policy_version,
                  b=compared.b.policy_version)  # fmt: skip
        body = await charts.render(lambda: charts.svg(lambda: charts.comparison(compared, _),
                                                      title))  # fmt: skip
        return Response(body, media_type="image/svg+xml", headers=SVG_HEADERS)
    if name not in CHARTS:
        raise NotFound(chart=name[:40])
    got = read_inputs(asked)
    assert got.period is not None  # noqa: S101 -- read_inputs sets it
    build: Callable[[], Any]
    if name.endswith("-trend"):
        points = await service.kpi_trend(db, organisation_id=org, period=got.period,
                                         filters=got.kpi_filters)  # fmt: skip
        draw = charts.resolution_trend if name == "resolution-trend" else charts.csat_trend
        build = lambda: draw(points, _)  # noqa: E731 -- one line each, read together
    else:
        spread = await service.distributions(db, organisation_id=org, period=got.period,
                                             filters=got.kpi_filters)  # fmt: skip
        if name == "resolution-histogram":
            build = lambda: charts.duration_histogram(  # noqa: E731
                spread.resolution_time, _("Resolution time"), _)
        elif name == "response-histogram":
            build = lambda: charts.duration_histogram(  # noqa: E731
                spread.first_response_time, _("First response time"), _)
        else:
            build = lambda: charts.csat_scores(spread.csat_scores, _)  # noqa: E731
    body = await charts.render(lambda: charts.svg(build, _(CHARTS[name])))
    return Response(body, media_type="image/svg+xml", headers=SVG_HEADERS)


@router.get("/export.{kind}")
async def export(
    request: Request, kind: str, actor: Reports, db: DbSession, asked: Asked
) -> Response:
    chosen = api.check_format(kind, ("csv", "json"))
    got = read_inputs(asked)
    assert got.period is not None  # noqa: S101 -- read_inputs sets it
    report = await service.kpi_report(db, organisation_id=_org(actor), period=got.period,
                                      filters=got.kpi_filters, slice_by=got.slice)  # fmt: skip
    name = f"kpis-{got.period.start:%Y%m%d}-{got.period.end:%Y%m%d}.{chosen}"
    headers = {"content-disposition": f'attachment; filename="{name}"'}
    if chosen == "csv":
        return Response(service.kpi_report_csv(report), media_type="text/csv; charset=utf-8",
                        headers=headers)  # fmt: skip
    return Response(report.model_dump_json(), media_type="application/json", headers=headers)


@router.get("/monthly.{kind}")
async def monthly_report(
    request: Request, kind: str, actor: Reports, db: DbSession,
    month: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    chosen = api.check_format(kind, ("pdf", "png"))
    data = await monthly.gather_month(db, organisation_id=_org(actor),
                                      month=month or f"{utcnow():%Y-%m}")  # fmt: skip
    draw = monthly.monthly_pdf if chosen == "pdf" else monthly.monthly_png
    body = await charts.render(lambda: draw(data))
    name = f"auxilio-kpis-{data.month}.{chosen}"
    return Response(body, media_type=api.MONTHLY_TYPES[chosen],
                    headers={"content-disposition": f'attachment; filename="{name}"'})  # fmt: skip


# ---- comparing two policy versions -----------------------------------------------------------


async def _compare(db: Any, org: Any, a: str | None, b: str | None,
                   device_group: str | None) -> Comparison | None:  # fmt: skip
    if not a or not b:
        return None
    group = api.parse_filters(device_group=device_group).device_group
    return await service.compare_versions(
        db, organisation_id=org, a=api.check_version(a, "a"), b=api.check_version(b, "b"),
        device_group=group,
    )  # fmt: skip


@router.get("/compare", response_class=HTMLResponse)
async def compare_page(
    request: Request, actor: Reports, db: DbSession,
    a: Annotated[str | None, Query(max_length=100)] = None,
    b: Annotated[str | None, Query(max_length=100)] = None,
    device_group: Text = None,
) -> HTMLResponse:  # fmt: skip
    org = _org(actor)
    versions = await service.policy_versions_seen(db, organisation_id=org)
    if not a and not b and len(versions) >= 2:
        a, b = versions[-2], versions[-1]
    error: DomainError | None = None
    compared = None
    try:
        compared = await _compare(db, org, a, b, device_group)
    except DomainError as exc:
        error = exc
    query = urlencode({k: v for k, v in {"a": a, "b": b, "device_group": device_group}.items()
                       if v})  # fmt: skip
    return render(request, "web/console/kpis_compare.html",
                  status_code=error.status if error else 200, versions=versions, a=a or "",
                  b=b or "", device_group=device_group or "", compared=compared, error=error,
                  query=query, table_kpis=monthly.TABLE_KPIS, definitions=DEFINITIONS,
                  shown=kpi_cell, plain=translator(request))  # fmt: skip


register_pages(router)
