"""All the reporting SQL: read-only SQLAlchemy Core over the tables, SQLite and PostgreSQL alike.

Each function makes one pass and returns raw figures per slice key (counts and sums, never
ratios; durations in seconds of wall time); ``service.py`` turns them into KPI values. The
passes (docs/kpis.md):

* ``ticket_pass``: one scan of the tickets opened before the period's end, joined to their
  active sessions, with conditional aggregates: opened, resolved, the sums behind the means,
  FCR, the cost's sessions, backlog, SLA; on PostgreSQL the medians too (percentile_disc).
* ``median_pass``: on SQLite, a window (ROW_NUMBER and COUNT over the slice) per duration;
  ``median_at`` for the overall median (a bounded sort at the counted position).
* ``time_cost_pass``: time entries' seconds per technician, times the technician's rate.
* ``repeat_pass``: the openings with an EXISTS probe for an earlier resolution of the same
  requester and category (ix_tickets_org_requester_category_resolved).
* ``survey_pass``: CSAT and response rate.
* ``trend_pass``: the trend's KPIs per day or week bucket, one grouped query per source.

The tables come from ``Base.metadata`` by name: reporting reads other domains' tables and never
imports their models. A slice key comes back raw (a UUID, a string, None); the service names
None "unknown".
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Float,
    FromClause,
    Integer,
    Select,
    Table,
    and_,
    case,
    cast,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from auxilio.server.db.base import UTCDateTime

# The complete metadata (every domain's tables registered), not one domain's models.
from auxilio.server.db.models import Base
from auxilio.server.reporting import definitions
from auxilio.server.reporting.schemas import KpiFilters, KpiSettings, Period, SliceBy

# ------------------------------------------------------------------------------ durations


class seconds_between(FunctionElement[float]):
    """``later - earlier`` in seconds, as a float, to the microsecond on both databases."""

    type = Float()
    inherit_cache = True
    name = "seconds_between"


@compiles(seconds_between, "sqlite")
def _seconds_sqlite(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    """SQLite keeps a UTCDateTime as text, ``YYYY-MM-DD HH:MM:SS.ffffff`` (SQLAlchemy's storage
    format): the minutes' difference from strftime('%s') of the first 16 characters plus the
    difference of the seconds with their fraction (the text from the 18th character). Exact to
    the microsecond, where julianday (and strftime of the whole text) rounds to milliseconds,
    and about 2x cheaper than julianday on a million rows.
    """
    later, earlier = (compiler.process(c, **kw) for c in element.clauses)
    return (
        f"((CAST(strftime('%s', substr({later}, 1, 16)) AS INTEGER)"
        f" - CAST(strftime('%s', substr({earlier}, 1, 16)) AS INTEGER))"
        f" + (CAST(substr({later}, 18) AS REAL) - CAST(substr({earlier}, 18) AS REAL)))"
    )


@compiles(seconds_between, "postgresql")
def _seconds_postgres(element: seconds_between, compiler: SQLCompiler, **kw: Any) -> str:
    later, earlier = list(element.clauses)
    # date_part gives double precision (EXTRACT gives numeric, slower to sum on a million rows).
    return (
        f"date_part('epoch', {compiler.process(later, **kw)} - "
        f"{compiler.process(earlier, **kw)})"
    )


# ------------------------------------------------------------------------------ tables


def _table(name: str) -> Table:
    return Base.metadata.tables[name]


def _tickets() -> Table:
    return _table("tickets")


# ------------------------------------------------------------------------------ scopes


@dataclass
class _Scope:
    """What a pass selects from: the base table with the joins a slice or filter needs, the
    slice key expression (None: one overall row) and the filter conditions."""

    source: FromClause
    key: ColumnElement[Any] | None
    where: list[ColumnElement[bool]] = field(default_factory=list)

    def select(self, *columns: Any) -> Select[Any]:
        key = self.key if self.key is not None else null()
        query = select(key.label("key"), *columns).select_from(self.source)
        if self.where:
            query = query.where(and_(*self.where))
        if self.key is not None:
            query = query.group_by(self.key)
        return query


def _ticket_scope(t: FromClause, filters: KpiFilters, slice_by: SliceBy | None) -> _Scope:
    """Slices and filters of a ticket pass: technician is the assignee, team the assignee's
    team, device group the ticket's device's group."""
    users, devices = _table("users"), _table("devices")
    source: FromClause = t
    need_team = slice_by is SliceBy.TEAM or filters.team is not None
    need_device = slice_by is SliceBy.DEVICE_GROUP or filters.device_group is not None
    assignee = users.alias("assignee")
    device = devices.alias("device")
    if need_team:
        source = source.outerjoin(assignee, assignee.c.id == t.c.assignee_id)
    if need_device:
        source = source.outerjoin(device, device.c.id == t.c.device_id)
    columns = {
        SliceBy.TEAM: assignee.c.team,
        SliceBy.TECHNICIAN: t.c.assignee_id,
        SliceBy.CATEGORY: t.c.category,
        SliceBy.CHANNEL: t.c.channel,
        SliceBy.PRIORITY: t.c.priority,
        SliceBy.DEVICE_GROUP: device.c.device_group,
        SliceBy.POLICY_VERSION: t.c.policy_version,
    }
    where = _filter_conditions(filters, columns)
    return _Scope(source, columns[slice_by] if slice_by is not None else None, where)


def _survey_scope(s: Table, filters: KpiFilters, slice_by: SliceBy | None) -> _Scope:
    """Slices and filters of the survey pass: technician, team and policy version are the
    survey's own (who helped, under which policy); the others its ticket's."""
    users, devices, tickets = _table("users"), _table("devices"), _tickets()
    source: FromClause = s
    technician = users.alias("technician")
    device = devices.alias("device")
    ticket = tickets.alias("ticket")
    need_team = slice_by is SliceBy.TEAM or filters.team is not None
    ticket_slices = {SliceBy.CATEGORY, SliceBy.CHANNEL, SliceBy.PRIORITY, SliceBy.DEVICE_GROUP}
    need_device = slice_by is SliceBy.DEVICE_GROUP or filters.device_group is not None
    need_ticket = (
        slice_by in ticket_slices or need_device
        or any(v is not None for v in (filters.category, filters.channel, filters.priority))
    )
    if need_team:
        source = source.outerjoin(technician, technician.c.id == s.c.technician_id)
    if need_ticket:
        source = source.join(ticket, ticket.c.id == s.c.ticket_id)
    if need_device:
        source = source.outerjoin(device, device.c.id == ticket.c.device_id)
    columns = {
        SliceBy.TEAM: technician.c.team,
        SliceBy.TECHNICIAN: s.c.technician_id,
        SliceBy.CATEGORY: ticket.c.category,
        SliceBy.CHANNEL: ticket.c.channel,
        SliceBy.PRIORITY: ticket.c.priority,
        SliceBy.DEVICE_GROUP: device.c.device_group,
        SliceBy.POLICY_VERSION: s.c.policy_version,
    }
    where = _filter_conditions(filters, columns)
    return _Scope(source, columns[slice_by] if slice_by is not None else None, where)


def _filter_conditions(
    filters: KpiFilters, columns: Mapping[SliceBy, ColumnElement[Any]]
) -> list[ColumnElement[bool]]:
    wanted: list[tuple[SliceBy, Any]] = [
        (SliceBy.TEAM, filters.team),
        (SliceBy.TECHNICIAN, filters.technician_id),
        (SliceBy.CATEGORY, filters.category),
        (SliceBy.CHANNEL, filters.channel),
        (SliceBy.PRIORITY, filters.priority),
        (SliceBy.DEVICE_GROUP, filters.device_group),
        (SliceBy.POLICY_VERSION, filters.policy_version),
    ]
    return [columns[s] == value for s, value in wanted if value is not None]


def _int_sum(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.sum(case((condition, 1), else_=0))


def _in(column: ColumnElement[datetime], period: Period) -> ColumnElement[bool]:
    return and_(column >= period.start, column < period.end)


# ------------------------------------------------------------------------------ ticket pass


@dataclass
class TicketFigures:
    created: int = 0
    resolved: int = 0
    resolution_seconds: float = 0.0
    responded: int = 0  # opened in the period with a first response
    response_seconds: float = 0.0
    fcr: int = 0  # resolved at first contact
    sessions: int = 0  # active support sessions of the tickets resolved in the period
    backlog: int = 0
    sla_evaluated: int = 0  # opened in the period with a target for their priority
    sla_breaches: int = 0
    # PostgreSQL only (percentile_disc in this pass); SQLite has median_pass.
    resolution_median: float | None = None
    response_median: float | None = None


# The key of the overall row where ticket_pass gives it beside the slices' rows.
OVERALL = "\x00overall"


def medians_in_ticket_pass(db: AsyncSession) -> bool:
    """PostgreSQL takes the medians in the ticket pass (percentile_disc, an ordered-set
    aggregate: no second scan); SQLite has no such aggregate and uses median_pass's window."""
    return db.get_bind().dialect.name == "postgresql"


async def ticket_pass(
    db: AsyncSession, *, organisation_id: uuid.UUID, period: Period, filters: KpiFilters,
    slice_by: SliceBy | None, end: datetime, settings: KpiSettings,
) -> dict[Any, TicketFigures]:
    """``end``: the backlog's and SLA's "now", min(period end, now).

    The tickets' active sessions come in as one aggregate per ticket (a hash join), so the FCR
    limit on sessions and the cost's sessions need no pass of their own.
    """
    t, ss = _tickets(), _table("support_sessions")
    active = (
        select(ss.c.ticket_id, func.count().label("n"))
        .where(ss.c.organisation_id == organisation_id, ss.c.activated_at.is_not(None))
        .group_by(ss.c.ticket_id)
        .subquery("active_sessions")
    )
    scope = _ticket_scope(t, filters, slice_by)
    scope.source = scope.source.outerjoin(active, active.c.ticket_id == t.c.id)
    scope.where += [t.c.organisation_id == organisation_id, t.c.created_at < period.end]
    sessions = func.coalesce(active.c.n, 0)
    opened = t.c.created_at >= period.start  # created_at < period.end is the WHERE
    resolved = _in(t.c.resolved_at, period)
    responded = and_(opened, t.c.first_response_at.is_not(None))
    fcr = and_(resolved, t.c.reopen_count == 0,
               t.c.contact_count <= definitions.FCR_MAX_CONTACTS,
               sessions <= definitions.FCR_MAX_SESSIONS)
    backlog = and_(t.c.created_at < end, or_(t.c.resolved_at.is_(None), t.c.resolved_at >= end))
    sla_on, breach = _sla_conditions(t, settings, end)
    resolution = seconds_between(t.c.resolved_at, t.c.created_at)
    response = seconds_between(t.c.first_response_at, t.c.created_at)
    columns: list[Any] = [
        _int_sum(opened).label("created"),
        _int_sum(resolved).label("resolved"),
        func.sum(case((resolved, resolution))).label("rs"),
        _int_sum(responded).label("responded"),
        func.sum(case((responded, response))).label("fs"),
        _int_sum(fcr).label("fcr"),
        func.sum(case((resolved, sessions), else_=0)).label("sessions"),
        _int_sum(backlog).label("backlog"),
        _int_sum(and_(opened, sla_on)).label("sla_n"),
        _int_sum(and_(opened, breach)).label("sla_b"),
    ]
    with_medians = medians_in_ticket_pass(db)
    if with_medians:
        # percentile_disc(0.5) is the first value whose cumulative share reaches one half: the
        # lower middle value for an even count, as the definitions want.
        columns += [
            func.percentile_disc(0.5).within_group(resolution).filter(resolved).label("rm"),
            func.percentile_disc(0.5).within_group(response).filter(responded).label("fm"),
        ]
    query = scope.select(*columns)
    if with_medians and scope.key is not None:
        # The overall row in the same scan (its medians cannot be had from the slices').
        query = query.group_by(None).group_by(func.grouping_sets(scope.key, tuple_()))
        query = query.add_columns(func.grouping(scope.key).label("overall"))
    out: dict[Any, TicketFigures] = {}
    for row in (await db.execute(query)).all():
        key = OVERALL if getattr(row, "overall", 0) else row.key
        out[key] = TicketFigures(
            created=int(row.created or 0), resolved=int(row.resolved or 0),
            resolution_seconds=float(row.rs or 0), responded=int(row.responded or 0),
            response_seconds=float(row.fs or 0), fcr=int(row.fcr or 0),
            sessions=int(row.sessions or 0), backlog=int(row.backlog or 0),
            sla_evaluated=int(row.sla_n or 0), sla_breaches=int(row.sla_b or 0),
            resolution_median=_float(row.rm) if with_medians else None,
            response_median=_float(row.fm) if with_medians else None,
        )
    return out


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _sla_conditions(
    t: FromClause, settings: KpiSettings, end: datetime
) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """(has a target, breached). A target breaches when its deadline passed before ``end`` and
    the response (resolution) had not come by the deadline."""
    has_target: list[ColumnElement[bool]] = []
    breaches: list[ColumnElement[bool]] = []
    for priority, target in sorted(settings.sla.items()):
        parts: list[ColumnElement[bool]] = []
        for seconds, column in ((target.first_response_seconds, t.c.first_response_at),
                                (target.resolution_seconds, t.c.resolved_at)):
            if seconds is None:
                continue
            parts.append(and_(
                t.c.created_at < end - timedelta(seconds=seconds),
                or_(column.is_(None), seconds_between(column, t.c.created_at) > seconds),
            ))
        if parts:
            has_target.append(t.c.priority == priority)
            breaches.append(and_(t.c.priority == priority, or_(*parts)))
    if not has_target:
        false = literal(1) == 0
        return false, false
    return or_(*has_target), or_(*breaches)


# ------------------------------------------------------------------------------ medians


async def median_pass(
    db: AsyncSession, *, organisation_id: uuid.UUID, period: Period, filters: KpiFilters,
    slice_by: SliceBy | None, which: str,
) -> dict[Any, float]:
    """The lower median per slice key of the resolution times (``which="resolution"``, tickets
    resolved in the period) or first response times (``"first_response"``, tickets opened in
    the period with a response)."""
    t = _tickets()
    scope = _ticket_scope(t, filters, slice_by)
    duration, chosen = _duration(t, period, which)
    partition = [scope.key] if scope.key is not None else None
    key = scope.key if scope.key is not None else null()
    inner = (
        select(
            key.label("key"), duration.label("d"),
            func.row_number().over(partition_by=partition, order_by=duration).label("rn"),
            func.count().over(partition_by=partition).label("cnt"),
        )
        .select_from(scope.source)
        .where(t.c.organisation_id == organisation_id, chosen, *scope.where)
        .subquery()
    )
    query = select(inner.c.key, inner.c.d).where(inner.c.rn == (inner.c.cnt + 1) // 2)
    return {row.key: float(row.d) for row in (await db.execute(query)).all()}


async def median_at(
    db: AsyncSession, *, organisation_id: uuid.UUID, period: Period, filters: KpiFilters,
    which: str, count: int,
) -> float | None:
    """The overall lower median on SQLite, given how many durations there are (the ticket
    pass counted them): the value at (count - 1) // 2 in order, which SQLite finds with a
    bounded sort, about twice as fast as the window of ``median_pass``."""
    if count == 0:
        return None
    t = _tickets()
    scope = _ticket_scope(t, filters, None)
    duration, chosen = _duration(t, period, which)
    query = (
        select(duration.label("d")).select_from(scope.source)
        .where(t.c.organisation_id == organisation_id, chosen, *scope.where)
        .order_by(duration).limit(1).offset((count - 1) // 2)
    )
    value = (await db.execute(query)).scalar_one_or_none()
    return None if value is None else float(value)


def _duration(
    t: FromClause, period: Period, which: str
) -> tuple[ColumnElement[float], ColumnElement[bool]]:
    """(duration, which tickets) of the resolution or first response KPIs."""
    if which == "resolution":
        return seconds_between(t.c.resolved_at, t.c.created_at), _in(t.c.resolved_at, period)
    return (seconds_between(t.c.first_response_at, t.c.created_at),
            and_(_in(t.c.created_at, period), t.c.first_response_at.is_not(None)))


# ------------------------------------------------------------------------------ cost


async def time_cost_pass(
    db: AsyncSession, *, organisation_id: uuid.UUID, period: Period, filters: KpiFilters,
    slice_by: SliceBy | None, settings: KpiSettings,
) -> dict[Any, int]:
    """Sum of seconds x cents per hour over the time entries of the tickets resolved in the
    period (divide by 3600 for cents). The rate: the technician's own, else their role's in
    the organisation's settings, else 0.

    The seconds are summed per technician in SQL and multiplied by the rates here: a handful
    of technicians instead of a user lookup for every time entry.
    """
    te, t, users = _table("ticket_time_entries"), _tickets(), _table("users")
    scope = _ticket_scope(t, filters, slice_by)
    scope.source = scope.source.join(te, te.c.ticket_id == t.c.id)
    scope.where += [t.c.organisation_id == organisation_id, _in(t.c.resolved_at, period)]
    query = scope.select(te.c.technician_id, func.sum(te.c.seconds).label("s"))
    query = query.group_by(te.c.technician_id)
    seconds = (await db.execute(query)).all()
    ids = sorted({row.technician_id for row in seconds})
    rates: dict[uuid.UUID, int] = {}
    if ids:
        found = await db.execute(select(users.c.id, users.c.hourly_cost_cents, users.c.role)
                                 .where(users.c.id.in_(ids)))
        for user in found.all():
            own = user.hourly_cost_cents
            rates[user.id] = own if own is not None else settings.cost_per_hour_by_role.get(
                user.role, 0)
    out: dict[Any, int] = {}
    for row in seconds:
        out[row.key] = out.get(row.key, 0) + int(row.s or 0) * rates.get(row.technician_id, 0)
    return out


# ------------------------------------------------------------------------------ repeats


class days_before(FunctionElement[datetime]):
    """``moment - days`` days, in the column's own representation (comparable with it)."""

    type = UTCDateTime()
    inherit_cache = True
    name = "days_before"


@compiles(days_before, "sqlite")
def _days_before_sqlite(element: days_before, compiler: SQLCompiler, **kw: Any) -> str:
    # datetime() drops the fraction; the moment's own fraction (the text from the 20th
    # character) put back gives the same text format as the stored column, so text order is
    # time order.
    moment, days = list(element.clauses)
    text = compiler.process(moment, **kw)
    return f"(datetime({text}, '-{int(days.value)} days') || substr({text}, 20))"


@compiles(days_before, "postgresql")
def _days_before_postgres(element: days_before, compiler: SQLCompiler, **kw: Any) -> str:
    moment, days = list(element.clauses)
    return f"({compiler.process(moment, **kw)} - interval '{int(days.value)} days')"


async def repeat_pass(
    db: AsyncSession, *, organisation_id: uuid.UUID, period: Period, filters: KpiFilters,
    slice_by: SliceBy | None,
) -> dict[Any, int]:
    """Tickets opened in the period whose requester had another ticket of the same category
    resolved in [opened - REPEAT_WINDOW_DAYS, opened).

    One probe per opening into ix_tickets_org_requester_category_resolved (an EXISTS on
    organisation, requester, category and a range of resolved_at): no sort of the tickets.
    The other ticket is any of the organisation's, outside the filters; the opening itself
    cannot match (it is resolved at or after its opening).
    """
    t, other = _tickets(), _tickets().alias("other")
    scope = _ticket_scope(t, filters, slice_by)
    earlier = (
        select(literal_column("1")).select_from(other)
        .where(other.c.organisation_id == organisation_id,
               other.c.requester_id == t.c.requester_id, other.c.category == t.c.category,
               other.c.resolved_at >= days_before(t.c.created_at,
                                                  literal(definitions.REPEAT_WINDOW_DAYS)),
               other.c.resolved_at < t.c.created_at)
        .exists()
    )
    scope.where += [t.c.organisation_id == organisation_id, _in(t.c.created_at, period), earlier]
    query = scope.select(func.count().label("n"))
    return {row.key: int(row.n) for row in (await db.execute(query)).all()}


# ------------------------------------------------------------------------------ surveys


@dataclass
class SurveyFigures:
    answered: int = 0  # answered in the period with a score
    satisfied: int = 0
    sent: int = 0  # sent in the period
    sent_answered: int = 0  # of those, answered (at any time)


async def survey_pass(
    db: AsyncSession, *, organisation_id: uuid.UUID, period: Period, filters: KpiFilters,
    slice_by: SliceBy | None,
) -> dict[Any, SurveyFigures]:
    s = _table("surveys")
    scope = _survey_scope(s, filters, slice_by)
    answered = and_(s.c.state == "answered", s.c.score.is_not(None))
    answered_in = and_(answered, _in(s.c.answered_at, period))
    num, den = definitions.CSAT_SATISFIED_FRACTION
    satisfied = (s.c.score - s.c.scale_min) * den >= (s.c.scale_max - s.c.scale_min) * num
    sent_in = _in(s.c.sent_at, period)
    scope.where += [
        s.c.organisation_id == organisation_id,
        or_(answered_in, sent_in),
    ]
    query = scope.select(
        _int_sum(answered_in).label("a"),
        _int_sum(and_(answered_in, satisfied)).label("s"),
        _int_sum(sent_in).label("n"),
        _int_sum(and_(sent_in, answered)).label("na"),
    )
    return {
        row.key: SurveyFigures(int(row.a or 0), int(row.s or 0), int(row.n or 0),
                               int(row.na or 0))
        for row in (await db.execute(query)).all()
    }


async def score_counts(
    db: AsyncSession, *, organisation_id: uuid.UUID, period: Period, filters: KpiFilters,
) -> dict[int, int]:
    """Answers per score, over the surveys answered in the period."""
    s = _table("surveys")
    scope = _survey_scope(s, filters, None)
    query = (
        select(s.c.score, func.count().label("n"))
        .select_from(scope.source)
        .where(s.c.organisation_id == organisation_id, s.c.state == "answered",
               s.c.score.is_not(None), _in(s.c.answered_at, period), *scope.where)
        .group_by(s.c.score)
    )
    return {int(row.score): int(row.n) for row in (await db.execute(query)).all()}


# ------------------------------------------------------------------------------ histograms


async def duration_histogram(
    db: AsyncSession, *, organisation_id: uuid.UUID, period: Period, filters: KpiFilters,
    which: str, edges: Sequence[float],
) -> tuple[list[int], float | None]:
    """Counts per bin ``[edges[i], edges[i+1])`` (the last bin open-ended) and the largest
    duration, for the same tickets as ``median_pass``."""
    t = _tickets()
    scope = _ticket_scope(t, filters, None)
    duration, chosen = _duration(t, period, which)
    inner = (
        select(duration.label("d"))
        .select_from(scope.source)
        .where(t.c.organisation_id == organisation_id, chosen, *scope.where)
        .subquery()
    )
    bins = case(*[(inner.c.d < edge, i) for i, edge in enumerate(edges[1:])],
                else_=len(edges) - 1)
    query = select(bins.label("b"), func.count().label("n"), func.max(inner.c.d).label("m"))
    query = query.group_by(bins)
    counts = [0] * len(edges)
    largest: float | None = None
    for row in (await db.execute(query)).all():
        counts[int(row.b)] += int(row.n)
        largest = float(row.m) if largest is None else max(largest, float(row.m))
    return counts, largest


# ------------------------------------------------------------------------------ lookups


async def display_names(db: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
    if not ids:
        return {}
    users = _table("users")
    query = select(users.c.id, users.c.display_name).where(users.c.id.in_(list(ids)))
    return {row.id: row.display_name for row in (await db.execute(query)).all()}


async def organisation_settings(db: AsyncSession, organisation_id: uuid.UUID) -> dict[str, Any]:
    organisations = _table("organisations")
    value = (await db.execute(
        select(organisations.c.kpi_settings).where(organisations.c.id == organisation_id)
    )).scalar_one_or_none()
    return dict(value or {})


async def version_span(
    db: AsyncSession, *, organisation_id: uuid.UUID, policy_version: str,
    device_group: str | None,
) -> tuple[datetime | None, datetime | None]:
    """(first opening, last event) of the tickets of one policy version (in one device group):
    the last event is the latest of their openings, resolutions and answered surveys."""
    t, s, devices = _tickets(), _table("surveys"), _table("devices")
    source: FromClause = t
    where: list[ColumnElement[bool]] = [t.c.organisation_id == organisation_id,
                                        t.c.policy_version == policy_version]
    if device_group is not None:
        source = source.join(devices, devices.c.id == t.c.device_id)
        where.append(devices.c.device_group == device_group)
    row = (await db.execute(
        select(func.min(t.c.created_at).label("first"), func.max(t.c.created_at).label("c"),
               func.max(t.c.resolved_at).label("r")).select_from(source).where(*where)
    )).one()
    if row.first is None:
        return None, None
    answered = (await db.execute(
        select(func.max(s.c.answered_at)).select_from(source.join(s, s.c.ticket_id == t.c.id))
        .where(*where, s.c.policy_version == policy_version)
    )).scalar_one_or_none()
    last = max(v for v in (row.c, row.r, answered) if v is not None)
    return row.first, last


async def policy_versions_seen(db: AsyncSession, organisation_id: uuid.UUID) -> list[str]:
    t, s = _tickets(), _table("surveys")
    query = union_all(
        select(t.c.policy_version.label("v")).where(
            t.c.organisation_id == organisation_id, t.c.policy_version.is_not(None)).distinct(),
        select(s.c.policy_version).where(
            s.c.organisation_id == organisation_id, s.c.policy_version.is_not(None)).distinct(),
    )
    return sorted({row[0] for row in (await db.execute(query)).all()})



# ------------------------------------------------------------------------------ trend


@dataclass
class TrendFigures:
    """One trend bucket's raw figures, each from the pass of its own source and moment."""

    tickets: TicketFigures = field(default_factory=TicketFigures)
    surveys: SurveyFigures = field(default_factory=SurveyFigures)


def _bucket_of(
    db: AsyncSession, column: ColumnElement[datetime], period: Period, step: timedelta
) -> ColumnElement[int]:
    """floor((column - period.start) / step), in SQL. The passes keep column >= period.start,
    so SQLite's CAST (which truncates) is the floor; PostgreSQL's CAST rounds: floor() first."""
    start = literal(period.start, UTCDateTime())
    ratio = seconds_between(column, start) / literal(step.total_seconds(), Float())
    if db.get_bind().dialect.name == "postgresql":
        return cast(func.floor(ratio), Integer)
    return cast(ratio, Integer)


async def _bucket_medians(
    db: AsyncSession, source: FromClause, where: list[ColumnElement[bool]],
    bucket: ColumnElement[int], duration: ColumnElement[float],
) -> dict[int, float]:
    """SQLite's lower median per bucket: the window of ``median_pass`` partitioned by bucket."""
    inner = (
        select(
            bucket.label("b"), duration.label("d"),
            func.row_number().over(partition_by=bucket, order_by=duration).label("rn"),
            func.count().over(partition_by=bucket).label("cnt"),
        )
        .select_from(source).where(and_(*where)).subquery()
    )
    query = select(inner.c.b, inner.c.d).where(inner.c.rn == (inner.c.cnt + 1) // 2)
    return {int(row.b): float(row.d) for row in (await db.execute(query)).all()}


async def trend_pass(
    db: AsyncSession, *, organisation_id: uuid.UUID, period: Period, filters: KpiFilters,
    step: timedelta,
) -> dict[int, TrendFigures]:
    """The trend's figures per bucket index, floor((moment - period.start) / step), with the
    same filters and definitions as ``ticket_pass`` and ``survey_pass``: the tickets resolved
    per bucket of resolved_at (count, the resolution sum and median, FCR), the tickets opened
    per bucket of created_at (count, the first response sum and median), the surveys answered
    per bucket of answered_at (CSAT) and sent per bucket of sent_at (response rate). One
    grouped query per source (on SQLite one more per median)."""
    out: dict[int, TrendFigures] = {}

    def at(index: Any) -> TrendFigures:
        return out.setdefault(int(index), TrendFigures())

    pg = medians_in_ticket_pass(db)
    t, ss = _tickets(), _table("support_sessions")

    # Tickets resolved, per bucket of resolved_at. The active sessions per ticket: on
    # PostgreSQL a probe into ix_support_sessions_ticket_id per ticket (the join to all the
    # organisation's sessions grouped by ticket was planned as a nested loop on fresh
    # statistics: seconds for a month); on SQLite that join (the probe was 40x slower there).
    scope = _ticket_scope(t, filters, None)
    source = scope.source
    where = [*scope.where, t.c.organisation_id == organisation_id, _in(t.c.resolved_at, period)]
    active_of = (ss.c.organisation_id == organisation_id, ss.c.activated_at.is_not(None))
    sessions: ColumnElement[Any]
    if pg:
        sessions = (select(func.count()).select_from(ss)
                    .where(ss.c.ticket_id == t.c.id, *active_of).scalar_subquery())
    else:
        active = (select(ss.c.ticket_id, func.count().label("n")).where(*active_of)
                  .group_by(ss.c.ticket_id).subquery("active_sessions"))
        source = source.outerjoin(active, active.c.ticket_id == t.c.id)
        sessions = func.coalesce(active.c.n, 0)
    fcr = and_(t.c.reopen_count == 0, t.c.contact_count <= definitions.FCR_MAX_CONTACTS,
               sessions <= definitions.FCR_MAX_SESSIONS)
    resolution = seconds_between(t.c.resolved_at, t.c.created_at)
    bucket = _bucket_of(db, t.c.resolved_at, period, step)
    columns: list[Any] = [bucket.label("b"), func.count().label("n"),
                          func.sum(resolution).label("rs"), _int_sum(fcr).label("fcr")]
    if pg:
        columns.append(func.percentile_disc(0.5).within_group(resolution).label("rm"))
    query = select(*columns).select_from(source).where(and_(*where)).group_by(bucket)
    for row in (await db.execute(query)).all():
        f = at(row.b).tickets
        f.resolved, f.resolution_seconds, f.fcr = int(row.n), float(row.rs or 0), int(row.fcr)
        f.resolution_median = _float(row.rm) if pg else None
    if not pg:
        for index, m in (await _bucket_medians(db, scope.source, where, bucket,
                                               resolution)).items():
            at(index).tickets.resolution_median = m

    # Tickets opened, per bucket of created_at.
    scope = _ticket_scope(t, filters, None)
    where = [*scope.where, t.c.organisation_id == organisation_id, _in(t.c.created_at, period)]
    responded = t.c.first_response_at.is_not(None)
    response = seconds_between(t.c.first_response_at, t.c.created_at)
    bucket = _bucket_of(db, t.c.created_at, period, step)
    columns = [bucket.label("b"), func.count().label("n"), _int_sum(responded).label("r"),
               func.sum(case((responded, response))).label("fs")]
    if pg:
        columns.append(
            func.percentile_disc(0.5).within_group(response).filter(responded).label("fm"))
    query = select(*columns).select_from(scope.source).where(and_(*where)).group_by(bucket)
    for row in (await db.execute(query)).all():
        f = at(row.b).tickets
        f.created, f.responded, f.response_seconds = int(row.n), int(row.r), float(row.fs or 0)
        f.response_median = _float(row.fm) if pg else None
    if not pg:
        for index, m in (await _bucket_medians(db, scope.source, [*where, responded], bucket,
                                               response)).items():
            at(index).tickets.response_median = m

    # Surveys answered (with a score), per bucket of answered_at.
    s = _table("surveys")
    scope = _survey_scope(s, filters, None)
    num, den = definitions.CSAT_SATISFIED_FRACTION
    satisfied = (s.c.score - s.c.scale_min) * den >= (s.c.scale_max - s.c.scale_min) * num
    bucket = _bucket_of(db, s.c.answered_at, period, step)
    query = (
        select(bucket.label("b"), func.count().label("a"), _int_sum(satisfied).label("s"))
        .select_from(scope.source)
        .where(*scope.where, s.c.organisation_id == organisation_id, s.c.state == "answered",
               s.c.score.is_not(None), _in(s.c.answered_at, period))
        .group_by(bucket)
    )
    for row in (await db.execute(query)).all():
        v = at(row.b).surveys
        v.answered, v.satisfied = int(row.a), int(row.s)

    # Surveys sent, per bucket of sent_at.
    scope = _survey_scope(s, filters, None)
    answered = and_(s.c.state == "answered", s.c.score.is_not(None))
    bucket = _bucket_of(db, s.c.sent_at, period, step)
    query = (
        select(bucket.label("b"), func.count().label("n"), _int_sum(answered).label("na"))
        .select_from(scope.source)
        .where(*scope.where, s.c.organisation_id == organisation_id, _in(s.c.sent_at, period))
        .group_by(bucket)
    )
    for row in (await db.execute(query)).all():
        v = at(row.b).surveys
        v.sent, v.sent_answered = int(row.n), int(row.na)
    return out
