"""Automatic assignment: which technician should take a ticket right now?

A pure function of the candidates and ``now``; it never reads the clock or the database, so the
service gathers the facts and the tests can pin any instant and any time zone.

Eligible: has the skill the category names (only ``other`` needs no particular skill: any
technician may take it) and is inside one of their working-hour windows at ``now`` in their own
IANA time zone. Among the eligible the least loaded wins (fewest tickets in new/open/pending);
ties go to whoever waited longest since their last assignment (never assigned counts as
longest), then to the smallest id so the choice is deterministic. Nobody eligible: the ticket
waits in the queue (docs/tickets.md, "Assignment"); it is never handed to someone
without the skill. ``route`` also says why, for the audit.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

GENERALIST_CATEGORIES = frozenset({"other"})
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Candidate:
    user_id: uuid.UUID
    timezone: str
    working_hours: Mapping[str, Sequence[str]]
    skills: frozenset[str] = field(default_factory=frozenset)
    open_tickets: int = 0
    last_assigned_at: datetime | None = None


def has_skill(candidate: Candidate, category: str) -> bool:
    return category in GENERALIST_CATEGORIES or category in candidate.skills


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def is_working(candidate: Candidate, now: datetime) -> bool:
    """Whether ``now`` falls in one of the candidate's windows, read on their own wall clock.

    Windows are ``HH:MM-HH:MM`` with the start included and the end excluded (``24:00`` ends
    at midnight). A zone or window that does not parse makes the candidate ineligible rather
    than failing the whole assignment: profiles are validated on write, this is the backstop.
    """
    if now.tzinfo is None:
        raise ValueError("routing needs an aware datetime")
    try:
        local = now.astimezone(ZoneInfo(candidate.timezone))
    except (ZoneInfoNotFoundError, ValueError):
        return False
    minute = local.hour * 60 + local.minute
    for window in candidate.working_hours.get(_DAYS[local.weekday()], ()):
        try:
            start, end = (_minutes(part) for part in window.split("-"))
        except ValueError:
            continue
        if start <= minute < end:
            return True
    return False


def eligible(candidates: Iterable[Candidate], *, category: str, now: datetime) -> list[Candidate]:
    return [c for c in candidates if has_skill(c, category) and is_working(c, now)]


def _rank(candidate: Candidate) -> tuple[int, datetime, str]:
    waited_since = candidate.last_assigned_at or _EPOCH
    return (candidate.open_tickets, waited_since, str(candidate.user_id))


@dataclass(frozen=True, slots=True)
class Routing:
    """The choice and its reason: what the audit keeps of every automatic assignment."""

    chosen: Candidate | None
    category: str
    candidates: int
    skilled: int
    skilled_in_hours: int
    tie_break: str | None = None

    def reason(self) -> dict[str, object]:
        why: dict[str, object] = {
            "category": self.category,
            "skill_required": self.category not in GENERALIST_CATEGORIES,
            "technicians": self.candidates,
            "with_skill": self.skilled,
            "with_skill_in_hours": self.skilled_in_hours,
        }
        if self.chosen is None:
            why["waiting_because"] = (
                "no technician has the skill" if self.skilled == 0
                else "no technician with the skill is in working hours"
            )  # fmt: skip
            return why
        why["open_tickets"] = self.chosen.open_tickets
        why["last_assigned_at"] = (
            self.chosen.last_assigned_at.isoformat() if self.chosen.last_assigned_at else None
        )
        if self.tie_break:
            why["tie_break"] = self.tie_break
        return why


def route(candidates: Iterable[Candidate], *, category: str, now: datetime) -> Routing:
    """Who should take a ticket of ``category`` at ``now``, and why (or why nobody)."""
    everyone = list(candidates)
    skilled = [c for c in everyone if has_skill(c, category)]
    pool = [c for c in skilled if is_working(c, now)]
    chosen: Candidate | None = None
    tie_break: str | None = None
    if pool:
        ranked = sorted(pool, key=_rank)
        chosen = ranked[0]
        level = [c for c in ranked if c.open_tickets == chosen.open_tickets]
        if len(level) > 1:
            same_wait = [c for c in level if c.last_assigned_at == chosen.last_assigned_at]
            tie_break = "lowest id" if len(same_wait) > 1 else "waited longest since an assignment"
    return Routing(
        chosen=chosen,
        category=category,
        candidates=len(everyone),
        skilled=len(skilled),
        skilled_in_hours=len(pool),
        tie_break=tie_break,
    )


def choose_technician(
    candidates: Iterable[Candidate], *, category: str, now: datetime
) -> Candidate | None:
    """The technician who should take a ticket of ``category`` at ``now``, or None."""
    return route(candidates, category=category, now=now).chosen

