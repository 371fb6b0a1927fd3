"""An independent computation of every KPI in plain Python, from the raw rows.

It reads the tables with a plain ``SELECT *`` and follows docs/kpis.md literally, ticket by
ticket, with none of queries.py's tricks (no conditional aggregates, no windows): a second
reading of the definitions to check the SQL against.
"""

from __future__ import annotations

import bisect
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.server.db.models import Base
from auxilio.server.reporting import definitions
from auxilio.server.reporting.schemas import KpiFilters, KpiSettings, Period, SliceBy

Row = dict[str, Any]
Figures = dict[str, tuple[float | None, int]]  # kpi -> (value, n)


@dataclass
class Raw:
    tickets: list[Row]
    sessions: list[Row]
    surveys: list[Row]
    time_entries: list[Row]
    users: dict[uuid.UUID, Row]
    devices: dict[uuid.UUID, Row]
    settings: KpiSettings


async def load(db: AsyncSession, organisation_id: uuid.UUID) -> Raw:
    async def rows(name: str) -> list[Row]:
        table = Base.metadata.tables[name]
        result = await db.execute(select(table).where(table.c.organisation_id == organisation_id))
        return [dict(r._mapping) for r in result]

    organisations = Base.metadata.tables["organisations"]
    settings = (await db.execute(select(organisations.c.kpi_settings).where(
        organisations.c.id == organisation_id))).scalar_one()
    return Raw(
        tickets=await rows("tickets"), sessions=await rows("support_sessions"),
        surveys=await rows("surveys"), time_entries=await rows("ticket_time_entries"),
        users={u["id"]: u for u in await rows("users")},
        devices={d["id"]: d for d in await rows("devices")},
        settings=KpiSettings.model_validate(settings or {}),
    )


def _name(value: Any) -> str:
    return "unknown" if value is None else str(value)


def _team(raw: Raw, user_id: uuid.UUID | None) -> str | None:
    return None if user_id is None else raw.users[user_id]["team"]


def _group(raw: Raw, device_id: uuid.UUID | None) -> str | None:
    return None if device_id is None else raw.devices[device_id]["device_group"]


def ticket_attributes(raw: Raw, t: Row) -> dict[SliceBy, Any]:
    return {
        SliceBy.TEAM: _team(raw, t["assignee_id"]),
        SliceBy.TECHNICIAN: t["assignee_id"],
        SliceBy.CATEGORY: t["category"],
        SliceBy.CHANNEL: t["channel"],
        SliceBy.PRIORITY: t["priority"],
        SliceBy.DEVICE_GROUP: _group(raw, t["device_id"]),
        SliceBy.POLICY_VERSION: t["policy_version"],
    }


def survey_attributes(raw: Raw, s: Row, tickets: dict[uuid.UUID, Row]) -> dict[SliceBy, Any]:
    t = tickets[s["ticket_id"]]
    return {
        SliceBy.TEAM: _team(raw, s["technician_id"]),
        SliceBy.TECHNICIAN: s["technician_id"],
        SliceBy.CATEGORY: t["category"],
        SliceBy.CHANNEL: t["channel"],
        SliceBy.PRIORITY: t["priority"],
        SliceBy.DEVICE_GROUP: _group(raw, t["device_id"]),
        SliceBy.POLICY_VERSION: s["policy_version"],
    }


def _wanted(filters: KpiFilters) -> dict[SliceBy, Any]:
    given = {
        SliceBy.TEAM: filters.team, SliceBy.TECHNICIAN: filters.technician_id,
        SliceBy.CATEGORY: filters.category, SliceBy.CHANNEL: filters.channel,
        SliceBy.PRIORITY: filters.priority, SliceBy.DEVICE_GROUP: filters.device_group,
        SliceBy.POLICY_VERSION: filters.policy_version,
    }
    return {k: v for k, v in given.items() if v is not None}


def _passes(attributes: dict[SliceBy, Any], wanted: dict[SliceBy, Any]) -> bool:
    return all(attributes[k] == v for k, v in wanted.items())


def _inside(when: datetime | None, period: Period) -> bool:
    return when is not None and period.start <= when < period.end


def _seconds(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds()


def _lower_median(values: list[float]) -> float | None:
    if not values:
        return None
    return sorted(values)[(len(values) - 1) // 2]


def _pct(part: int, whole: int) -> float | None:
    return None if whole == 0 else 100.0 * part / whole


def compute(
    raw: Raw, *, period: Period, filters: KpiFilters, slice_by: SliceBy | None,
    now: datetime,
) -> dict[str | None, Figures]:
    """KPI figures per slice key ("unknown" for a missing attribute), and None: overall."""
    end = min(period.end, now)
    wanted = _wanted(filters)
    by_id = {t["id"]: t for t in raw.tickets}
    active = defaultdict(int)
    for s in raw.sessions:
        if s["activated_at"] is not None:
            active[s["ticket_id"]] += 1
    entries = defaultdict(list)
    for e in raw.time_entries:
        entries[e["ticket_id"]].append(e)
    resolutions: dict[tuple[Any, str], list[datetime]] = defaultdict(list)
    for t in raw.tickets:
        if t["resolved_at"] is not None:
            resolutions[(t["requester_id"], t["category"])].append(t["resolved_at"])
    for times in resolutions.values():
        times.sort()

    groups: dict[str | None, list[Row]] = defaultdict(list)
    survey_groups: dict[str | None, list[Row]] = defaultdict(list)
    for t in raw.tickets:
        attributes = ticket_attributes(raw, t)
        if _passes(attributes, wanted):
            groups[None].append(t)
            if slice_by is not None:
                groups[_name(attributes[slice_by])].append(t)
    for s in raw.surveys:
        attributes = survey_attributes(raw, s, by_id)
        if _passes(attributes, wanted):
            survey_groups[None].append(s)
            if slice_by is not None:
                survey_groups[_name(attributes[slice_by])].append(s)

    out: dict[str | None, Figures] = {}
    for key in set(groups) | set(survey_groups):
        figures = _ticket_figures(raw, groups.get(key, []), period, end, active, entries,
                                  resolutions)
        figures.update(_survey_figures(survey_groups.get(key, []), period))
        # A key only the unrelated rows name (a ticket opened after the period) is no row.
        if key is None or any(n for _, n in figures.values()):
            out[key] = figures
    out.setdefault(None, _ticket_figures(raw, [], period, end, active, entries, resolutions)
                   | _survey_figures([], period))
    return out


def _ticket_figures(
    raw: Raw, tickets: list[Row], period: Period, end: datetime, active: dict[Any, int],
    entries: dict[Any, list[Row]], resolutions: dict[tuple[Any, str], list[datetime]],
) -> Figures:
    opened = [t for t in tickets if _inside(t["created_at"], period)]
    resolved = [t for t in tickets if _inside(t["resolved_at"], period)]
    resolution = [_seconds(t["resolved_at"], t["created_at"]) for t in resolved]
    response = [_seconds(t["first_response_at"], t["created_at"]) for t in opened
                if t["first_response_at"] is not None]
    fcr = [t for t in resolved if t["reopen_count"] == 0
           and t["contact_count"] <= definitions.FCR_MAX_CONTACTS
           and active[t["id"]] <= definitions.FCR_MAX_SESSIONS]
    window = timedelta(days=definitions.REPEAT_WINDOW_DAYS)
    repeats = 0
    for t in opened:
        times = resolutions[(t["requester_id"], t["category"])]
        i = bisect.bisect_left(times, t["created_at"] - window)
        if i < len(times) and times[i] < t["created_at"]:
            repeats += 1
    cost = 0.0
    for t in resolved:
        for e in entries[t["id"]]:
            cost += e["seconds"] * _rate(raw, e["technician_id"]) / 3600
        cost += active[t["id"]] * raw.settings.cost_per_session_cents
    backlog = sum(1 for t in tickets if t["created_at"] < end
                  and (t["resolved_at"] is None or t["resolved_at"] >= end))
    figures: Figures = {
        "tickets_created": (len(opened), len(opened)),
        "tickets_resolved": (len(resolved), len(resolved)),
        "resolution_time_mean": (sum(resolution) / len(resolution) if resolution else None,
                                 len(resolution)),
        "resolution_time_median": (_lower_median(resolution), len(resolution)),
        "first_response_time_mean": (sum(response) / len(response) if response else None,
                                     len(response)),
        "first_response_time_median": (_lower_median(response), len(response)),
        "first_contact_resolution": (_pct(len(fcr), len(resolved)), len(resolved)),
        "repeat_incidents": (_pct(repeats, len(opened)), len(opened)),
        "cost_per_ticket": (cost / len(resolved) if resolved else None, len(resolved)),
        "backlog": (backlog, backlog),
    }
    figures["sla_breaches"] = _sla(raw.settings, opened, end)
    return figures


def _rate(raw: Raw, user_id: uuid.UUID) -> int:
    user = raw.users.get(user_id)
    if user is None:
        return 0
    if user["hourly_cost_cents"] is not None:
        return int(user["hourly_cost_cents"])
    return raw.settings.cost_per_hour_by_role.get(user["role"], 0)


def _sla(settings: KpiSettings, opened: list[Row], end: datetime) -> tuple[float | None, int]:
    targets = {p: t for p, t in settings.sla.items()
               if t.first_response_seconds is not None or t.resolution_seconds is not None}
    if not targets:
        return None, 0
    evaluated = breaches = 0
    for t in opened:
        target = targets.get(t["priority"])
        if target is None:
            continue
        evaluated += 1
        late = False
        for seconds, came in ((target.first_response_seconds, t["first_response_at"]),
                              (target.resolution_seconds, t["resolved_at"])):
            if seconds is None:
                continue
            deadline = t["created_at"] + timedelta(seconds=seconds)
            if deadline < end and (came is None or came > deadline):
                late = True
        breaches += late
    return breaches, evaluated


def _survey_figures(surveys: list[Row], period: Period) -> Figures:
    def answered(s: Row) -> bool:
        return s["state"] == "answered" and s["score"] is not None

    num, den = definitions.CSAT_SATISFIED_FRACTION
    scored = [s for s in surveys if answered(s) and _inside(s["answered_at"], period)]
    satisfied = [s for s in scored
                 if (s["score"] - s["scale_min"]) * den >= (s["scale_max"] - s["scale_min"]) * num]
    sent = [s for s in surveys if _inside(s["sent_at"], period)]
    return {
        "csat": (_pct(len(satisfied), len(scored)), len(scored)),
        "survey_response_rate": (_pct(sum(1 for s in sent if answered(s)), len(sent)),
                                 len(sent)),
    }
