"""Every KPI the reporting computes, with the version of its definition.

docs/kpis.md writes each definition out in full under a heading ``<id> (v<version>)``; a test
checks that both agree. A change to what a KPI counts is a new version here and in the doc, so
that a figure read next year still says which rule made it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Unit(StrEnum):
    SECONDS = "seconds"
    PERCENT = "percent"
    COUNT = "count"
    CENTS = "cents"


@dataclass(frozen=True, slots=True)
class Definition:
    id: str
    version: int
    title: str
    unit: Unit
    summary: str

    @property
    def ref(self) -> str:
        """What a KPI result names: ``resolution_time_mean@v1``."""
        return f"{self.id}@v{self.version}"


# Fixed parameters of the version-1 definitions (a change is a new version).
REPEAT_WINDOW_DAYS = 30
# FCR: the opening plus at most one more contact (docs/kpis.md, first_contact_resolution v1).
FCR_MAX_CONTACTS = 2
FCR_MAX_SESSIONS = 1
# CSAT: a score in the top 40 % of the survey's scale is "satisfied" (4 and 5 on 1-5).
CSAT_SATISFIED_FRACTION = (3, 5)  # (score - min) * 5 >= (max - min) * 3
SURVEY_LINK_DAYS = 14

_D = Definition
DEFINITIONS: dict[str, Definition] = {d.id: d for d in (
    _D("tickets_created", 1, "Tickets opened", Unit.COUNT,
       "Tickets whose created_at falls in the period."),
    _D("tickets_resolved", 1, "Tickets resolved", Unit.COUNT,
       "Tickets whose latest resolution (resolved_at) falls in the period."),
    _D("resolution_time_mean", 1, "Mean resolution time", Unit.SECONDS,
       "Mean of resolved_at - created_at over the tickets resolved in the period, wall time."),
    _D("resolution_time_median", 1, "Median resolution time", Unit.SECONDS,
       "Median of the same durations (the lower middle value for an even count)."),
    _D("first_response_time_mean", 1, "Mean first response time", Unit.SECONDS,
       "Mean of first_response_at - created_at over the tickets opened in the period that have "
       "a first response, wall time."),
    _D("first_response_time_median", 1, "Median first response time", Unit.SECONDS,
       "Median of the same durations (the lower middle value for an even count)."),
    _D("csat", 1, "Customer satisfaction (CSAT)", Unit.PERCENT,
       "Share of the surveys answered in the period whose score lies in the top 40 % of the "
       "survey's scale; declined and unanswered surveys are not counted."),
    _D("survey_response_rate", 1, "Survey response rate", Unit.PERCENT,
       "Answered surveys over surveys sent, for the surveys sent in the period."),
    _D("first_contact_resolution", 1, "First-contact resolution", Unit.PERCENT,
       "Share of the tickets resolved in the period never reopened, with at most two contacts "
       "(the opening and one reply) and at most one support session."),
    _D("repeat_incidents", 1, "Repeat incidents", Unit.PERCENT,
       "Share of the tickets opened in the period whose requester had another ticket of the "
       "same category resolved in the 30 days before it was opened."),
    _D("cost_per_ticket", 1, "Cost per ticket", Unit.CENTS,
       "For the tickets resolved in the period: their time entries times the technician's "
       "hourly cost (their own, else their role's), plus the organisation's cost per support "
       "session for each of their sessions that became active, divided by their number."),
    _D("backlog", 1, "Backlog at the end of the period", Unit.COUNT,
       "Tickets opened before the end of the period and not resolved before it (by their "
       "latest resolution)."),
    _D("sla_breaches", 1, "SLA breaches", Unit.COUNT,
       "Tickets opened in the period whose first response or resolution came later than the "
       "organisation's target for their priority, or had not come by the end of the period "
       "when the target had passed; no value where no target is set."),
)}
