"""The pure routing function: skills, working hours in each technician's own zone, load."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from auxilio.server.tickets.routing import Candidate, choose_technician, is_working, route

WEEKDAYS = {d: ["09:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")}
# Wednesday 2024-06-12 16:30 UTC: 18:30 in Madrid (CEST, UTC+2), 10:30 in Mexico City (UTC-6).
WED_1630_UTC = datetime(2024, 6, 12, 16, 30, tzinfo=UTC)


def tech(n: int, **kwargs: object) -> Candidate:
    defaults: dict[str, object] = {"timezone": "UTC", "working_hours": WEEKDAYS,
                                   "skills": frozenset({"hardware"})}
    defaults.update(kwargs)
    return Candidate(user_id=uuid.UUID(int=n), **defaults)  # type: ignore[arg-type]


def test_it_picks_the_technician_whose_local_day_is_still_running() -> None:
    madrid = tech(1, timezone="Europe/Madrid")
    mexico = tech(2, timezone="America/Mexico_City")
    chosen = choose_technician([madrid, mexico], category="hardware", now=WED_1630_UTC)
    assert chosen is mexico


def test_it_picks_madrid_in_the_european_morning() -> None:
    madrid = tech(1, timezone="Europe/Madrid")
    mexico = tech(2, timezone="America/Mexico_City")
    # 08:00 UTC: 10:00 in Madrid, 02:00 in Mexico City.
    now = datetime(2024, 6, 12, 8, 0, tzinfo=UTC)
    assert choose_technician([madrid, mexico], category="hardware", now=now) is madrid


def test_it_reads_the_weekday_in_the_technicians_zone() -> None:
    # Saturday 02:00 UTC is still Friday 20:00 in Mexico City.
    evening = tech(1, timezone="America/Mexico_City", working_hours={"fri": ["18:00-22:00"]})
    now = datetime(2024, 6, 15, 2, 0, tzinfo=UTC)
    assert is_working(evening, now)
    assert not is_working(tech(2, working_hours={"fri": ["18:00-22:00"]}), now)


def test_it_follows_daylight_saving_time() -> None:
    madrid = tech(1, timezone="Europe/Madrid")
    # 08:30 UTC is 09:30 in summer (CEST) but 08:30 in winter (CET), before the window opens.
    assert is_working(madrid, datetime(2024, 6, 12, 8, 30, tzinfo=UTC))
    assert not is_working(madrid, datetime(2024, 1, 10, 7, 30, tzinfo=UTC))
    assert is_working(madrid, datetime(2024, 1, 10, 8, 30, tzinfo=UTC))


def test_it_treats_the_window_end_as_exclusive() -> None:
    person = tech(1)
    assert is_working(person, datetime(2024, 6, 12, 9, 0, tzinfo=UTC))
    assert not is_working(person, datetime(2024, 6, 12, 17, 0, tzinfo=UTC))


def test_it_requires_the_skill_named_by_the_category() -> None:
    network = tech(1, skills=frozenset({"network"}))
    now = datetime(2024, 6, 12, 12, 0, tzinfo=UTC)
    assert choose_technician([network], category="hardware", now=now) is None
    assert choose_technician([network], category="network", now=now) is network


def test_it_lets_any_technician_take_an_other_ticket() -> None:
    nobody_special = tech(1, skills=frozenset())
    now = datetime(2024, 6, 12, 10, 0, tzinfo=UTC)
    assert choose_technician([nobody_special], category="other", now=now) is nobody_special


def test_an_account_ticket_waits_rather_than_go_to_someone_without_the_skill() -> None:
    # Observed: an account ticket went to a technician without the skill while the only skilled
    # one was outside hours, and no reason was kept.
    unskilled = tech(1, skills=frozenset({"hardware"}))
    skilled_off_duty = tech(2, skills=frozenset({"account"}), working_hours={})
    now = datetime(2024, 6, 12, 10, 0, tzinfo=UTC)
    routing = route([unskilled, skilled_off_duty], category="account", now=now)
    assert routing.chosen is None
    assert routing.reason() == {
        "category": "account", "skill_required": True, "technicians": 2, "with_skill": 1,
        "with_skill_in_hours": 0,
        "waiting_because": "no technician with the skill is in working hours",
    }  # fmt: skip
    assert route([unskilled], category="account", now=now).reason()["waiting_because"] == (
        "no technician has the skill"
    )


def test_the_reason_names_the_load_and_the_tie_break() -> None:
    now = datetime(2024, 6, 12, 10, 0, tzinfo=UTC)
    waited = tech(1, last_assigned_at=now - timedelta(hours=5))
    recent = tech(2, last_assigned_at=now - timedelta(minutes=5))
    busy = tech(3, open_tickets=4)
    reason = route([waited, recent, busy], category="hardware", now=now).reason()
    assert reason["open_tickets"] == 0
    assert reason["tie_break"] == "waited longest since an assignment"
    assert reason["last_assigned_at"] == (now - timedelta(hours=5)).isoformat()
    assert "tie_break" not in route([busy, recent], category="hardware", now=now).reason()
    assert route([tech(9), tech(8)], category="hardware", now=now).reason()["tie_break"] == (
        "lowest id"
    )


def test_it_prefers_the_least_loaded() -> None:
    busy, idle = tech(1, open_tickets=3), tech(2, open_tickets=1)
    now = datetime(2024, 6, 12, 10, 0, tzinfo=UTC)
    assert choose_technician([busy, idle], category="hardware", now=now) is idle


def test_it_breaks_ties_by_longest_wait_then_by_id() -> None:
    now = datetime(2024, 6, 12, 10, 0, tzinfo=UTC)
    recent = tech(1, last_assigned_at=now - timedelta(minutes=5))
    earlier = tech(2, last_assigned_at=now - timedelta(hours=5))
    never = tech(3)
    assert choose_technician([recent, earlier], category="hardware", now=now) is earlier
    assert choose_technician([recent, earlier, never], category="hardware", now=now) is never
    twin_a, twin_b = tech(9), tech(8)
    assert choose_technician([twin_a, twin_b], category="hardware", now=now) is twin_b


def test_it_returns_none_when_nobody_is_on_duty() -> None:
    sunday = datetime(2024, 6, 16, 12, 0, tzinfo=UTC)
    assert choose_technician([tech(1), tech(2)], category="hardware", now=sunday) is None


def test_it_skips_a_profile_with_an_unknown_zone() -> None:
    broken = tech(1, timezone="Mars/Olympus_Mons")
    assert not is_working(broken, datetime(2024, 6, 12, 10, 0, tzinfo=UTC))


def test_it_refuses_a_naive_instant() -> None:
    with pytest.raises(ValueError, match="aware"):
        is_working(tech(1), datetime(2024, 6, 12, 10, 0))  # noqa: DTZ001 -- the point of the test
