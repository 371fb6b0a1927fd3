"""Support hours across DST changes, checked against an independent minute-by-minute walk.

The brute force does not use zoneinfo: it takes each zone's UTC offsets from a fixed table of the
real transitions (IANA tzdb), adds the offset to the UTC minute to get the wall clock, and checks
the wall clock against the schedule as plain data.  The engine goes through zoneinfo and the
parsed policy.  If the two agree on every minute around each transition, DST is handled.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from auxilio.policy import compile_policy, parse_policy

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# zone -> [(valid from UTC, offset)], from the tz database; sorted.
OFFSETS: dict[str, list[tuple[datetime, timedelta]]] = {
    "Europe/Madrid": [
        (_utc(2024, 10, 27, 1), timedelta(hours=1)),
        (_utc(2025, 3, 30, 1), timedelta(hours=2)),
        (_utc(2025, 10, 26, 1), timedelta(hours=1)),
    ],
    "America/New_York": [
        (_utc(2024, 11, 3, 6), timedelta(hours=-5)),
        (_utc(2025, 3, 9, 7), timedelta(hours=-4)),
        (_utc(2025, 11, 2, 6), timedelta(hours=-5)),
    ],
    # Mexico observed DST for the last time in 2022 and abolished it in October of that year.
    "America/Mexico_City": [
        (_utc(2021, 10, 31, 7), timedelta(hours=-6)),
        (_utc(2022, 4, 3, 8), timedelta(hours=-5)),
        (_utc(2022, 10, 30, 7), timedelta(hours=-6)),
    ],
}
# Transitions to walk around: (zone, instant)
TRANSITIONS = [(zone, start) for zone, table in OFFSETS.items() for start, _ in table[1:]]
# Also one date in 2025 where Mexico City would have changed had DST survived: it must not.
TRANSITIONS.append(("America/Mexico_City", _utc(2025, 4, 6, 8)))


def offset_at(zone: str, instant: datetime) -> timedelta:
    current = OFFSETS[zone][0][1]
    for start, offset in OFFSETS[zone]:
        if instant >= start:
            current = offset
    return current


def brute_open(
    zone: str, schedule: dict[int, list[tuple[int, int]]], holidays: set[date], instant: datetime
) -> bool:
    wall = instant.replace(tzinfo=None) + offset_at(zone, instant)
    if wall.date() in holidays:
        return False
    minute = wall.hour * 60 + wall.minute
    return any(start <= minute < end for start, end in schedule.get(wall.weekday(), []))


def hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


# Windows with boundaries on quarter hours, biased to the small hours where DST changes happen.
windows = (
    st.tuples(st.integers(0, 95), st.integers(1, 96))
    .filter(lambda w: w[0] < w[1])
    .map(lambda w: (w[0] * 15, w[1] * 15))
)
schedules = st.dictionaries(
    st.integers(0, 6), st.lists(windows, min_size=1, max_size=3), min_size=1
)


@pytest.mark.parametrize(
    ("zone", "transition"), TRANSITIONS, ids=[f"{z}@{t:%Y-%m-%d}" for z, t in TRANSITIONS]
)
@settings(max_examples=6, deadline=None)
@given(schedule=schedules, holiday_shift=st.integers(-2, 2) | st.none())
def test_support_hours_agree_with_a_minute_by_minute_walk(
    zone: str,
    transition: datetime,
    schedule: dict[int, list[tuple[int, int]]],
    holiday_shift: int | None,
) -> None:
    holidays = (
        set() if holiday_shift is None else {transition.date() + timedelta(days=holiday_shift)}
    )
    document = {
        "version": 1,
        "name": "dst",
        "capabilities": {},
        "sessions": {"max_duration": "1h"},
        "support_hours": {
            "timezone": zone,
            "weekly": {
                DAYS[day]: [f"{hhmm(s)}-{hhmm(e)}" for s, e in ws] for day, ws in schedule.items()
            },
            "holidays": [d.isoformat() for d in holidays],
        },
    }
    compiled = compile_policy(parse_policy(yaml.safe_dump(document)))
    assert compiled.schedule is not None
    start = transition - timedelta(hours=24)
    for minute in range(48 * 60):
        instant = start + timedelta(minutes=minute)
        expected = brute_open(zone, schedule, holidays, instant)
        assert compiled.schedule.check(instant).open is expected, (instant, zone)


def test_the_offset_table_matches_the_transitions_it_claims() -> None:
    # Guards the table itself: one minute before each listed change the old offset applies.
    for zone, table in OFFSETS.items():
        for (start, offset), (_, previous) in zip(table[1:], table, strict=False):
            assert offset_at(zone, start) == offset
            assert offset_at(zone, start - timedelta(minutes=1)) == previous


def test_a_window_on_the_skipped_hour_is_never_open_on_spring_forward() -> None:
    document = {
        "version": 1,
        "name": "x",
        "capabilities": {},
        "sessions": {"max_duration": "1h"},
        "support_hours": {"timezone": "Europe/Madrid", "weekly": {"sun": ["02:00-03:00"]}},
    }
    schedule = compile_policy(parse_policy(yaml.safe_dump(document))).schedule
    assert schedule is not None
    day = _utc(2025, 3, 29, 23)  # 00:00 local on the change day
    assert not any(schedule.check(day + timedelta(minutes=m)).open for m in range(24 * 60))


def test_the_repeated_hour_counts_twice_on_fall_back() -> None:
    document = {
        "version": 1,
        "name": "x",
        "capabilities": {},
        "sessions": {"max_duration": "1h"},
        "support_hours": {"timezone": "America/New_York", "weekly": {"sun": ["01:00-02:00"]}},
    }
    schedule = compile_policy(parse_policy(yaml.safe_dump(document))).schedule
    assert schedule is not None
    start = _utc(2025, 11, 2, 4)  # 00:00 EDT
    open_minutes = sum(schedule.check(start + timedelta(minutes=m)).open for m in range(25 * 60))
    assert open_minutes == 120
