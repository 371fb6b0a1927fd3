"""The KPIs as the console, the REST API, the exports and the monthly report read them.

Read-only: every figure comes from ``queries.py``; this module only combines the raw sums and
counts into KPI values, each naming the definition (docs/kpis.md) that made it.
"""

from __future__ import annotations

import csv
import io
import math
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.server.db.base import utcnow
from auxilio.server.errors import ReportFilterInvalid
from auxilio.server.reporting import queries
from auxilio.server.reporting.definitions import DEFINITIONS
from auxilio.server.reporting.schemas import (
    Comparison,
    Distributions,
    Histogram,
    KpiFilters,
    KpiReport,
    KpiRow,
    KpiSettings,
    KpiValue,
    Period,
    SliceBy,
    TrendPoint,
    VersionSide,
)

UNKNOWN = "unknown"
NOT_CONFIGURED = "not_configured"
# Histogram bin edges in seconds: 15 min, 1 h, 4 h, 8 h, 1 day, 3 days, 7 days, 30 days; the
# last bin ends at the largest value seen (at least 60 days).
DURATION_EDGES: tuple[float, ...] = (
    0, 900, 3600, 4 * 3600, 8 * 3600, 86400, 3 * 86400, 7 * 86400, 30 * 86400)
CSV_COLUMNS = ("key", "label", "kpi", "definition", "unit", "value", "n", "note")


class _Figures:
    """Every raw figure of one slice key, from all the passes."""

    def __init__(self) -> None:
        self.tickets = queries.TicketFigures()
        self.time_cost = 0  # seconds x cents per hour
        self.repeats = 0
        self.surveys = queries.SurveyFigures()
        self.resolution_median: float | None = None
        self.response_median: float | None = None

    def add(self, other: _Figures) -> None:
        """Sum the additive figures (medians are not: the overall row queries its own)."""
        for mine, theirs in ((self.tickets, other.tickets), (self.surveys, other.surveys)):
            for name, value in vars(mine).items():
                if isinstance(value, int | float) and not name.endswith("_median"):
                    setattr(mine, name, value + getattr(theirs, name))
        self.time_cost += other.time_cost
        self.repeats += other.repeats


async def _figures(
    db: AsyncSession, *, organisation_id: uuid.UUID, period: Period, filters: KpiFilters,
    slice_by: SliceBy | None, end: datetime, settings: KpiSettings,
) -> dict[Any, _Figures]:
    common: dict[str, Any] = {"organisation_id": organisation_id, "period": period,
                              "filters": filters, "slice_by": slice_by}
    out: dict[Any, _Figures] = {}

    def at(key: Any) -> _Figures:
        return out.setdefault(key, _Figures())

    for key, t in (await queries.ticket_pass(db, end=end, settings=settings, **common)).items():
        at(key).tickets = t
        at(key).resolution_median = t.resolution_median
        at(key).response_median = t.response_median
    for key, c in (await queries.time_cost_pass(db, settings=settings, **common)).items():
        at(key).time_cost = c
    for key, r in (await queries.repeat_pass(db, **common)).items():
        at(key).repeats = r
    for key, v in (await queries.survey_pass(db, **common)).items():
        at(key).surveys = v
    if queries.medians_in_ticket_pass(db):
        return out
    if slice_by is None:
        overall = at(None)
        overall.resolution_median, overall.response_median = await _overall_medians(
            db, organisation_id=organisation_id, period=period, filters=filters,
            figures=overall.tickets)
        return out
    for key, m in (await queries.median_pass(db, which="resolution", **common)).items():
        at(key).resolution_median = m
    for key, m in (await queries.median_pass(db, which="first_response", **common)).items():
        at(key).response_median = m
    return out


def _value(kpi: str, value: float | None, n: int, note: str | None = None) -> KpiValue:
    d = DEFINITIONS[kpi]
    return KpiValue(kpi=kpi, definition=d.ref, unit=str(d.unit), value=value, n=n, note=note)


def _ratio(part: float, whole: int, scale: float = 1.0) -> float | None:
    return None if whole == 0 else part * scale / whole


def _kpis(f: _Figures, settings: KpiSettings) -> dict[str, KpiValue]:
    t, v = f.tickets, f.surveys
    cost_cents = f.time_cost / 3600 + t.sessions * settings.cost_per_session_cents
    sla_configured = any(target.first_response_seconds is not None
                         or target.resolution_seconds is not None
                         for target in settings.sla.values())
    values = [
        _value("tickets_created", t.created, t.created),
        _value("tickets_resolved", t.resolved, t.resolved),
        _value("resolution_time_mean", _ratio(t.resolution_seconds, t.resolved), t.resolved),
        _value("resolution_time_median",
               f.resolution_median if t.resolved else None, t.resolved),
        _value("first_response_time_mean", _ratio(t.response_seconds, t.responded),
               t.responded),
        _value("first_response_time_median",
               f.response_median if t.responded else None, t.responded),
        _value("csat", _ratio(v.satisfied, v.answered, 100), v.answered),
        _value("survey_response_rate", _ratio(v.sent_answered, v.sent, 100), v.sent),
        _value("first_contact_resolution",
               _ratio(t.fcr, t.resolved, 100), t.resolved),
        _value("repeat_incidents", _ratio(f.repeats, t.created, 100), t.created),
        _value("cost_per_ticket", _ratio(cost_cents, t.resolved), t.resolved),
        _value("backlog", t.backlog, t.backlog),
        _value("sla_breaches", t.sla_breaches, t.sla_evaluated) if sla_configured
        else _value("sla_breaches", None, 0, NOT_CONFIGURED),
    ]
    return {value.kpi: value for value in values}


def _key(raw: Any) -> str:
    return UNKNOWN if raw is None else str(raw)


def _settings(raw: dict[str, Any]) -> KpiSettings:
    return KpiSettings.model_validate(raw)


async def kpi_report(
    db: AsyncSession, *, organisation_id: uuid.UUID, period: Period,
    filters: KpiFilters = KpiFilters(), slice_by: SliceBy | None = None,  # noqa: B008 -- frozen
    now: datetime | None = None,
) -> KpiReport:
    """Every KPI over the period for the organisation, overall and per slice value."""
    now = now or utcnow()
    settings = _settings(await queries.organisation_settings(db, organisation_id))
    end = min(period.end, now)
    common: dict[str, Any] = {"organisation_id": organisation_id, "period": period,
                              "filters": filters, "end": end, "settings": settings}
    rows: list[KpiRow] = []
    if slice_by is None:
        overall = (await _figures(db, slice_by=None, **common)).get(None, _Figures())
    else:
        sliced = await _figures(db, slice_by=slice_by, **common)
        in_pass = sliced.pop(queries.OVERALL, None)
        overall = _Figures()
        for figures in sliced.values():
            overall.add(figures)
        if in_pass is not None:
            overall.resolution_median = in_pass.resolution_median
            overall.response_median = in_pass.response_median
        else:
            overall.resolution_median, overall.response_median = await _overall_medians(
                db, organisation_id=organisation_id, period=period, filters=filters,
                figures=overall.tickets)
        labels: dict[uuid.UUID, str] = {}
        if slice_by is SliceBy.TECHNICIAN:
            labels = await queries.display_names(
                db, [k for k in sliced if isinstance(k, uuid.UUID)])
        by_key: dict[str, KpiRow] = {}
        for raw, figures in sliced.items():
            kpis = _kpis(figures, settings)
            if not any(value.n for value in kpis.values()):
                # Only tickets the period does not count (opened and resolved before it).
                continue
            key = _key(raw)
            by_key[key] = KpiRow(key=key, label=labels.get(raw) if labels else None,
                                 kpis=kpis)
        rows = [by_key[k] for k in sorted(by_key)]
    return KpiReport(
        organisation_id=organisation_id, period=period, filters=filters, slice_by=slice_by,
        generated_at=now, overall=KpiRow(key=None, kpis=_kpis(overall, settings)), rows=rows,
    )


async def _overall_medians(
    db: AsyncSession, *, organisation_id: uuid.UUID, period: Period, filters: KpiFilters,
    figures: queries.TicketFigures,
) -> tuple[float | None, float | None]:
    """SQLite's overall medians, from the ticket pass's counts of the durations."""
    common: dict[str, Any] = {"organisation_id": organisation_id, "period": period,
                              "filters": filters}
    resolution = await queries.median_at(db, which="resolution", count=figures.resolved,
                                         **common)
    response = await queries.median_at(db, which="first_response", count=figures.responded,
                                       **common)
    return resolution, response


def buckets(period: Period, bucket: Literal["day", "week"]) -> list[Period]:
    """Consecutive buckets of one day (week) from the period's start, the last one cut at the
    period's end."""
    if bucket not in ("day", "week"):
        raise ValueError(bucket)
    step = timedelta(days=1 if bucket == "day" else 7)
    out: list[Period] = []
    start = period.start
    while start < period.end:
        out.append(Period(start=start, end=min(start + step, period.end)))
        start += step
    return out


# The KPIs a trend point carries: those one grouped query per source can bucket. Backlog, SLA
# breaches (each depends on the bucket's own "now"), repeat incidents (a probe per opening) and
# cost per ticket (time entries and rates) are left out; kpi_report gives them per period.
TREND_KPIS = (
    "tickets_created", "tickets_resolved", "resolution_time_mean", "resolution_time_median",
    "first_response_time_mean", "first_response_time_median", "csat", "survey_response_rate",
    "first_contact_resolution",
)


async def kpi_trend(
    db: AsyncSession, *, organisation_id: uuid.UUID, period: Period,
    filters: KpiFilters = KpiFilters(),  # noqa: B008 -- frozen
    bucket: Literal["day", "week"] = "day", now: datetime | None = None,
) -> list[TrendPoint]:
    """The KPIs per day (week) of the period, from one bucketed pass per source
    (``queries.trend_pass``), each bucket's values as ``kpi_report`` gives them for the bucket
    as its own period.

    Only the KPIs of ``TREND_KPIS``: backlog, SLA breaches, repeat incidents and cost per
    ticket are not in the points. A bucket with nothing in it is still a point (values None,
    n 0). ``now`` is accepted for the callers and unused: none of these KPIs depends on it.
    """
    parts = buckets(period, bucket)
    step = timedelta(days=1 if bucket == "day" else 7)
    figures = await queries.trend_pass(db, organisation_id=organisation_id, period=period,
                                       filters=filters, step=step)
    settings = KpiSettings()
    points: list[TrendPoint] = []
    for index, part in enumerate(parts):
        f = _Figures()
        got = figures.get(index)
        if got is not None:
            f.tickets, f.surveys = got.tickets, got.surveys
            f.resolution_median = got.tickets.resolution_median
            f.response_median = got.tickets.response_median
        kpis = _kpis(f, settings)
        points.append(TrendPoint(bucket_start=part.start,
                                 kpis={k: kpis[k] for k in TREND_KPIS}))
    return points


async def distributions(
    db: AsyncSession, *, organisation_id: uuid.UUID, period: Period,
    filters: KpiFilters = KpiFilters(),  # noqa: B008 -- frozen
) -> Distributions:
    """Histograms of the resolution and first response times (the tickets the means count)
    and the answers per CSAT score."""
    hist: dict[str, Histogram] = {}
    for which, kpi in (("resolution", "resolution_time_mean"),
                       ("first_response", "first_response_time_mean")):
        counts, largest = await queries.duration_histogram(
            db, organisation_id=organisation_id, period=period, filters=filters, which=which,
            edges=DURATION_EDGES)
        last = max(2 * DURATION_EDGES[-1], math.ceil(largest or 0))
        hist[which] = Histogram(kpi=kpi, definition=DEFINITIONS[kpi].ref,
                                edges=[*map(float, DURATION_EDGES), float(last)], counts=counts)
    scores = await queries.score_counts(db, organisation_id=organisation_id, period=period,
                                        filters=filters)
    return Distributions(resolution_time=hist["resolution"],
                         first_response_time=hist["first_response"],
                         csat_scores={str(k): scores[k] for k in sorted(scores)})


def _check_version(name: str, value: str) -> None:
    if not 1 <= len(value) <= 100 or any(ord(c) < 32 for c in value):
        raise ReportFilterInvalid(field=name)


async def compare_versions(
    db: AsyncSession, *, organisation_id: uuid.UUID, a: str, b: str,
    device_group: str | None = None, now: datetime | None = None,
) -> Comparison:
    """The pilot question: the KPIs of the tickets of version ``a`` and of version ``b`` (in
    ``device_group`` where given), each over its own period, and ``b - a``.

    A side's period starts at its first ticket's opening and ends one second after its last
    event: the latest opening, resolution or survey answer of its tickets. Ending it at the
    last opening would leave out the resolutions and answers of its last tickets.
    """
    _check_version("a", a)
    _check_version("b", b)
    if device_group is not None:
        _check_version("device_group", device_group)
    sides: list[VersionSide] = []
    for version in (a, b):
        first, last = await queries.version_span(
            db, organisation_id=organisation_id, policy_version=version,
            device_group=device_group)
        filters = KpiFilters(policy_version=version, device_group=device_group)
        if first is None or last is None:
            empty = {k: v for k, v in _kpis(_Figures(), KpiSettings()).items()}
            sides.append(VersionSide(policy_version=version, period=None,
                                     row=KpiRow(key=version, kpis=empty)))
            continue
        period = Period(start=first, end=last + timedelta(seconds=1))
        report = await kpi_report(db, organisation_id=organisation_id, period=period,
                                  filters=filters, now=now)
        sides.append(VersionSide(policy_version=version, period=period,
                                 row=KpiRow(key=version, kpis=report.overall.kpis)))
    deltas: dict[str, float] = {}
    for kpi, left in sides[0].row.kpis.items():
        right = sides[1].row.kpis.get(kpi)
        if right is not None and left.value is not None and right.value is not None:
            deltas[kpi] = right.value - left.value
    return Comparison(device_group=device_group, a=sides[0], b=sides[1], deltas=deltas)


async def policy_versions_seen(db: AsyncSession, *, organisation_id: uuid.UUID) -> list[str]:
    """Every policy version a ticket or survey of the organisation names, sorted."""
    return await queries.policy_versions_seen(db, organisation_id)


# ------------------------------------------------------------------------------ CSV


def _cell(value: float | int | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


# A text cell a spreadsheet would read as a formula (OWASP "CSV injection"): written with a
# leading apostrophe, which spreadsheets show as text and kpi_report_from_csv takes off again.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")


def _text_cell(value: str | None) -> str:
    text = _cell(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _from_text_cell(text: str) -> str:
    return text[1:] if text.startswith("'") else text


def kpi_report_csv(report: KpiReport) -> str:
    """One line per (slice key, KPI): key, label, kpi, definition, unit, value, n, note.

    The overall row has an empty key; an empty value or note is None. Floats are written with
    ``repr`` so that ``kpi_report_from_csv`` gives back exactly the same numbers; a text cell
    that starts like a formula (= + - @, a tab, a carriage return, an apostrophe) gets a leading
    apostrophe.
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in (report.overall, *report.rows):
        for value in row.kpis.values():
            writer.writerow([_text_cell(row.key), _text_cell(row.label), value.kpi,
                             value.definition, value.unit, _cell(value.value), value.n,
                             _text_cell(value.note)])
    return out.getvalue()


def kpi_report_from_csv(text: str) -> tuple[KpiRow, list[KpiRow]]:
    """(overall, rows) as ``kpi_report_csv`` wrote them: the same KpiRow values as the report
    (counts come back as floats, equal to the report's)."""
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != CSV_COLUMNS:
        raise ValueError("not a KPI export: the header must be " + ",".join(CSV_COLUMNS))
    rows: dict[str, KpiRow] = {}
    for line in reader:
        key, label = _from_text_cell(line["key"]), _from_text_cell(line["label"])
        row = rows.setdefault(key, KpiRow(key=key or None, label=label or None, kpis={}))
        row.kpis[line["kpi"]] = KpiValue(
            kpi=line["kpi"], definition=line["definition"], unit=line["unit"],
            value=float(line["value"]) if line["value"] else None, n=int(line["n"]),
            note=_from_text_cell(line["note"]) or None,
        )
    overall = rows.pop("", None)
    if overall is None:
        raise ValueError("not a KPI export: the overall row (empty key) is missing")
    return overall, _in_order(rows.values())


def _in_order(rows: Iterable[KpiRow]) -> list[KpiRow]:
    return sorted(rows, key=lambda r: r.key or "")
