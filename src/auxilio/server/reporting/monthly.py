"""The monthly report: one month's KPIs with their definitions, trends, distributions, the
per-team and per-policy-version tables and a comparison of two policy versions (a pilot that
ran in the month against the version that decided most of the rest, in the pilot's device
group; without a pilot, the two versions that decided the most tickets), as a PDF of several
pages or one tall PNG.

It is drawn from the same result objects the API answers with (``service.kpi_report``,
``kpi_trend``, ``distributions``, ``compare_versions``), gathered once by ``gather_month``:
a figure in the PDF is the figure ``GET /api/v1/reports/kpis`` gives for the same month.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.server.errors import ReportMonthInvalid
from auxilio.server.policies import pilots
from auxilio.server.policies.service import _label as policy_label  # what tickets are stamped
from auxilio.server.reporting import charts, service
from auxilio.server.reporting.definitions import DEFINITIONS, Unit
from auxilio.server.reporting.schemas import (
    Comparison,
    Distributions,
    KpiReport,
    KpiRow,
    Period,
    SliceBy,
    TrendPoint,
)

if TYPE_CHECKING:  # drawn only when a report is asked for (charts.py)
    from matplotlib.figure import Figure

_MONTH = re.compile(r"^(2\d{3})-(0[1-9]|1[0-2])$")
# The KPI table's columns on a page (the rest are in the export): what the seed asks for first.
TABLE_KPIS = ("tickets_resolved", "resolution_time_mean", "resolution_time_median", "csat",
              "first_contact_resolution", "repeat_incidents", "cost_per_ticket")  # fmt: skip
UNKNOWN = "unknown"


def month_period(month: str) -> Period:
    """``[first day, first day of the next month)`` in UTC for ``YYYY-MM``."""
    found = _MONTH.match(month or "")
    if found is None:
        raise ReportMonthInvalid(month=month[:20] if month else "")
    year, number = int(found[1]), int(found[2])
    start = datetime(year, number, 1, tzinfo=UTC)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=UTC)
    return Period(start=start, end=end)


@dataclass(frozen=True, slots=True)
class Month:
    """Everything the report shows, built once."""

    month: str
    report: KpiReport
    by_team: KpiReport
    by_version: KpiReport
    trend: list[TrendPoint]
    distributions: Distributions
    comparison: Comparison | None


def versions_to_compare(
    by_version: KpiReport, *, pilot: str | None = None
) -> tuple[str, str] | None:
    """The two policy versions to compare: the month's pilot version (``pilot``) against the
    other version that decided the most of the month's tickets; without a pilot, the two that
    decided the most (ties: the later name second). None when fewer than two known versions."""
    counts = sorted(((r.kpis["tickets_created"].n if "tickets_created" in r.kpis else 0, r.key)
                     for r in by_version.rows if r.key and r.key != UNKNOWN),
                    reverse=True)  # fmt: skip
    if pilot is not None:
        others = [key for _n, key in counts if key != pilot]
        return (others[0], pilot) if others else None
    ranked = counts[:2]
    if len(ranked) < 2:
        return None
    first, second = sorted(key for _n, key in ranked)
    return first, second


async def pilot_in(db: AsyncSession, *, organisation_id: uuid.UUID,
                   period: Period) -> tuple[str, str] | None:  # fmt: skip
    """(version label, device group) of the latest pilot that ran during ``period``."""
    for pilot, version in await pilots.list_pilots(db, organisation_id):
        end = pilots.effective_end(pilot)
        if pilot.starts_at < period.end and (end is None or end > period.start):
            return policy_label(version.number, version.sha256), pilot.device_group
    return None


async def gather_month(db: AsyncSession, *, organisation_id: uuid.UUID, month: str) -> Month:
    period = month_period(month)
    report = await service.kpi_report(db, organisation_id=organisation_id, period=period)
    by_team = await service.kpi_report(db, organisation_id=organisation_id, period=period,
                                       slice_by=SliceBy.TEAM)  # fmt: skip
    by_version = await service.kpi_report(db, organisation_id=organisation_id, period=period,
                                          slice_by=SliceBy.POLICY_VERSION)  # fmt: skip
    trend = await service.kpi_trend(db, organisation_id=organisation_id, period=period)
    spread = await service.distributions(db, organisation_id=organisation_id, period=period)
    piloted = await pilot_in(db, organisation_id=organisation_id, period=period)
    pair = versions_to_compare(by_version, pilot=piloted[0] if piloted else None)
    compared = None
    if pair is not None:
        compared = await service.compare_versions(
            db, organisation_id=organisation_id, a=pair[0], b=pair[1],
            device_group=piloted[1] if piloted else None,
        )  # fmt: skip
    return Month(month, report, by_team, by_version, trend, spread, compared)


# ---- words and numbers -----------------------------------------------------------------------


def shown(kpi: str, value: float | None) -> str:
    """A KPI's value as a page shows it: durations in hours and minutes, shares in percent,
    costs in currency units with cents."""
    if value is None:
        return "-"
    unit = DEFINITIONS[kpi].unit if kpi in DEFINITIONS else Unit.COUNT
    if unit is Unit.SECONDS:
        minutes = round(abs(value) / 60)
        sign = "-" if value < 0 and minutes else ""
        return f"{sign}{minutes // 60} h {minutes % 60:02d} min"
    if unit is Unit.PERCENT:
        return f"{value:.1f} %"
    if unit is Unit.CENTS:
        return f"{value / 100:.2f}"
    return f"{value:g}"


def _row_cells(row: KpiRow, kpis: tuple[str, ...]) -> list[str]:
    return [shown(k, row.kpis[k].value) if k in row.kpis else "-" for k in kpis]


# ---- pages -----------------------------------------------------------------------------------


def _table_page(title: str, header: list[str], rows: list[list[str]], note: str) -> Figure:
    height = min(11.0, 1.4 + 0.28 * (len(rows) + 1))
    from matplotlib.figure import Figure

    figure = Figure(figsize=(charts.WIDTH_IN + 1.3, height))
    axes = figure.add_axes((0.02, 0.02, 0.96, 0.86))
    axes.set_axis_off()
    figure.suptitle(title, x=0.02, ha="left", fontsize=11)
    figure.text(0.02, 0.9, note, fontsize=7, color=charts.GREY)
    if rows:
        table = axes.table(cellText=rows, colLabels=header, loc="upper left", cellLoc="left")
        table.auto_set_font_size(False)
        table.set_fontsize(7)
        table.auto_set_column_width(list(range(len(header))))
    return figure


def kpi_page(data: Month) -> Figure:
    period = data.report.period
    rows = [[DEFINITIONS[k].title if k in DEFINITIONS else k, shown(k, v.value), str(v.n),
             v.definition] for k, v in data.report.overall.kpis.items()]  # fmt: skip
    note = (f"{period.start:%Y-%m-%d} to {period.end:%Y-%m-%d} (UTC, end excluded). Every "
            "definition is written out in docs/kpis.md under its name and version.")  # fmt: skip
    return _table_page(f"KPIs for {data.month}", ["KPI", "Value", "n", "Definition"], rows, note)


def slice_page(report: KpiReport, title: str, key_label: str) -> Figure:
    header = [key_label] + [DEFINITIONS[k].title if k in DEFINITIONS else k for k in TABLE_KPIS]
    rows = [[r.label or r.key or UNKNOWN, *_row_cells(r, TABLE_KPIS)] for r in report.rows]
    refs = ", ".join(DEFINITIONS[k].ref for k in TABLE_KPIS if k in DEFINITIONS)
    return _table_page(title, header, rows, f"Definitions: {refs}")


def comparison_page(compared: Comparison) -> Figure:
    header = ["KPI", compared.a.policy_version, compared.b.policy_version, "Change (b - a)"]
    rows = []
    for kpi in TABLE_KPIS:
        a, b = compared.a.row.kpis.get(kpi), compared.b.row.kpis.get(kpi)
        delta = compared.deltas.get(kpi)
        rows.append([DEFINITIONS[kpi].title if kpi in DEFINITIONS else kpi,
                     shown(kpi, a.value if a else None), shown(kpi, b.value if b else None),
                     shown(kpi, delta) if delta is not None else "-"])  # fmt: skip
    group = f" in device group {compared.device_group}" if compared.device_group else ""
    return _table_page(f"Policy versions compared{group}", header, rows,
                       "Each version over its own tickets (docs/kpis.md).")  # fmt: skip


def pages(data: Month) -> list[Callable[[], Figure]]:
    """The report's pages in order, each a function making its figure."""
    spread = data.distributions
    built: list[Callable[[], Figure]] = [
        lambda: kpi_page(data),
        lambda: charts.resolution_trend(data.trend),
        lambda: charts.csat_trend(data.trend),
        lambda: charts.duration_histogram(spread.resolution_time, "Resolution time"),
        lambda: charts.duration_histogram(spread.first_response_time, "First response time"),
        lambda: charts.csat_scores(spread.csat_scores),
        lambda: slice_page(data.by_team, f"By team, {data.month}", "Team"),
        lambda: slice_page(data.by_version, f"By policy version, {data.month}", "Policy version"),
    ]
    if data.comparison is not None:
        compared = data.comparison
        built += [lambda: comparison_page(compared), lambda: charts.comparison(compared)]
    return built


def monthly_pdf(data: Month) -> bytes:
    return charts.pdf(pages(data), title=f"Auxilio KPIs {data.month}")


def monthly_png(data: Month) -> bytes:
    return charts.png(pages(data))
