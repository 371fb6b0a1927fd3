"""Parsing of the support-hours vocabulary: day specs (``mon-fri``) and windows (``08:00-18:00``).

Windows never cross midnight: a night shift is written as ``22:00-24:00`` on one day and
``00:00-06:00`` on the next.  That keeps "which day does this minute belong to" unambiguous,
so a holiday on a date closes exactly the minutes of that local date.
"""

from __future__ import annotations

import re

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAY_INDEX = {name: index for index, name in enumerate(DAYS)}
_WINDOW = re.compile(r"^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$")


def parse_day_spec(text: str) -> tuple[int, ...]:
    """``"mon-fri"`` -> (0..4); ``"sat,sun"`` -> (5, 6); ``"all"`` -> every day; else ValueError."""
    spec = text.strip().lower()
    if spec in ("all", "daily"):
        return tuple(range(7))
    days: list[int] = []
    for part in spec.split(","):
        first, _, last = part.strip().partition("-")
        if first not in _DAY_INDEX or (last and last not in _DAY_INDEX):
            raise ValueError(text)
        start = _DAY_INDEX[first]
        end = _DAY_INDEX[last] if last else start
        if end < start:
            # Wrapping ranges such as fri-mon read both ways; asking for a list avoids guessing.
            raise ValueError(text)
        days.extend(range(start, end + 1))
    return tuple(sorted(set(days)))


def parse_window(text: str) -> tuple[int, int]:
    """``"08:00-18:00"`` -> (480, 1080) minutes after local midnight; end may be ``24:00``."""
    match = _WINDOW.match(text.strip())
    if match is None:
        raise ValueError(text)
    sh, sm, eh, em = (int(g) for g in match.groups())
    start, end = sh * 60 + sm, eh * 60 + em
    if sh > 23 or sm > 59 or em > 59 or end > 24 * 60 or end <= start:
        raise ValueError(text)
    return start, end
