"""Support hours: is this UTC instant inside the organisation's agreed local hours?

Windows are local wall-clock times in the policy's IANA zone.  The instant is converted with
zoneinfo, so across a DST change a window means what a person in that office reads on the wall:
on the spring-forward day the skipped hour simply never happens, and on the fall-back day the
repeated hour is inside a window twice if the window covers it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import NamedTuple
from zoneinfo import ZoneInfo

from auxilio.policy.errors import PolicyError, PolicyInvalid
from auxilio.policy.hours_parse import DAYS, parse_day_spec, parse_window
from auxilio.policy.reasons import ReasonParams
from auxilio.policy.schema import Holiday, SupportHours


class HoursCheck(NamedTuple):
    open: bool
    rule: str  # "support_hours.weekly" or "support_hours.holidays"
    reason: str
    local: dt.datetime
    reason_code: str
    params: ReasonParams


_DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


@dataclass(frozen=True, slots=True)
class Schedule:
    """Support hours compiled for lookups: windows per weekday as (start, end) minutes."""

    zone: ZoneInfo
    windows: tuple[tuple[tuple[int, int], ...], ...]  # index 0 = Monday
    holidays: dict[dt.date, str]

    def check(self, now: dt.datetime) -> HoursCheck:
        if now.tzinfo is None:
            raise ValueError("support hours need an aware datetime")
        local = now.astimezone(self.zone)
        holiday = self.holidays.get(local.date())
        if holiday is not None:
            date = f"{local:%Y-%m-%d}"
            if holiday:
                return HoursCheck(
                    False, "support_hours.holidays", f"{date} is a holiday ({holiday})", local,
                    "support_hours.holiday", {"date": date, "holiday": holiday},
                )  # fmt: skip
            return HoursCheck(
                False, "support_hours.holidays", f"{date} is a holiday", local,
                "support_hours.holiday_unnamed", {"date": date},
            )  # fmt: skip
        minute = local.hour * 60 + local.minute
        weekday = local.weekday()
        # Formatted by hand: strftime is slower than the rest of the decision together.
        day, time = _DAY_NAMES[weekday], f"{local.hour:02d}:{local.minute:02d}"
        for start, end in self.windows[weekday]:
            if start <= minute < end:
                return HoursCheck(
                    True, "support_hours.weekly", f"{day} {time} is inside the agreed hours",
                    local, "support_hours.inside", {"day": day, "time": time},
                )  # fmt: skip
        zone = str(local.tzname())
        return HoursCheck(
            False,
            "support_hours.weekly",
            f"{day} {time} {zone} is outside the agreed hours",
            local,
            "support_hours.outside",
            {"day": day, "time": time, "zone": zone},
        )


def compile_schedule(hours: SupportHours) -> Schedule:
    per_day: list[list[tuple[int, int]]] = [[] for _ in DAYS]
    for spec, windows in hours.weekly.items():
        for day in parse_day_spec(spec):
            per_day[day].extend(parse_window(w) for w in windows)
    return Schedule(
        zone=ZoneInfo(hours.timezone),
        windows=tuple(tuple(_merge(day)) for day in per_day),
        holidays={h.date: h.name for h in hours.holidays},
    )


def _merge(windows: list[tuple[int, int]]) -> list[tuple[int, int]]:
    # Overlapping entries (say "mon-fri" and "mon") are a union, never an error.
    merged: list[tuple[int, int]] = []
    for start, end in sorted(windows):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def holidays_from_ical(text: str) -> list[Holiday]:
    """Every all-day (or timed) VEVENT in an iCalendar text as a holiday on its start date.

    Multi-day events give one holiday per date (DTEND is exclusive, as RFC 5545 says).
    """
    import icalendar  # imported here: only policy editors need it, not every decision

    try:
        calendar = icalendar.Calendar.from_ical(text)
    except ValueError as exc:
        raise PolicyInvalid(
            [PolicyError("", None, f"not an iCalendar text: {exc}", "policy.invalid_ical")]
        ) from None
    holidays: dict[dt.date, str] = {}
    for event in calendar.walk("VEVENT"):
        start_prop = event.get("DTSTART")
        if start_prop is None:
            continue
        start = _as_date(start_prop.dt)
        end_prop = event.get("DTEND")
        end = _as_date(end_prop.dt) if end_prop is not None else start + dt.timedelta(days=1)
        name = str(event.get("SUMMARY", ""))
        day = start
        while day < max(end, start + dt.timedelta(days=1)):
            holidays.setdefault(day, name)
            day += dt.timedelta(days=1)
    return [Holiday(date=d, name=n) for d, n in sorted(holidays.items())]


def _as_date(value: dt.date | dt.datetime) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else value
