"""Durations (``1h30m``) and sizes (``100MB``) as written in policy documents."""

from __future__ import annotations

import re
from datetime import timedelta

# Units in descending order; each may appear at most once, in this order, so "1h30m" is valid and
# "30m1h" is rejected (it is almost always a typo).  Months and years are left out on purpose:
# their length varies, and a retention period must mean the same thing to every reader.
_DURATION = re.compile(
    r"^(?:(?P<w>\d+)w)?(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$"
)
_UNIT_SECONDS = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}

# The longest duration and the largest size a policy or a request may name. Twenty years is
# past any retention period a law asks for; both keep every value within a 32-bit seconds
# column and exact in signed 64-bit JSON, and keep timedelta from overflowing (a 500).
MAX_DURATION = timedelta(days=7300)
MAX_SIZE = 2**50  # 1 PiB


class OutOfRange(ValueError):
    """A well-formed duration or size beyond ``MAX_DURATION`` / ``MAX_SIZE``."""


_SIZE = re.compile(r"^(?P<n>\d+)\s*(?P<unit>B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$")
_SIZE_FACTOR = {
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KiB": 2**10,
    "MiB": 2**20,
    "GiB": 2**30,
    "TiB": 2**40,
}


def parse_duration(text: str) -> timedelta:
    """``"1h30m"`` -> ``timedelta(hours=1, minutes=30)``; raises ``ValueError`` otherwise."""
    match = _DURATION.match(text.strip())
    if match is None or not any(match.groupdict().values()):
        raise ValueError(f"{text!r} is not a duration")
    seconds = sum(int(v) * _UNIT_SECONDS[k] for k, v in match.groupdict().items() if v)
    if seconds > MAX_DURATION.total_seconds():
        raise OutOfRange(f"{text!r} is longer than {format_duration(MAX_DURATION)}")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest canonical spelling, the inverse of :func:`parse_duration`."""
    remaining = int(value.total_seconds())
    if remaining == 0:
        return "0s"
    parts = []
    for unit in ("d", "h", "m", "s"):
        amount, remaining = divmod(remaining, _UNIT_SECONDS[unit])
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)


def parse_size(text: str) -> int:
    """``"100MB"`` -> ``100_000_000`` bytes (KB is 1000, KiB is 1024)."""
    match = _SIZE.match(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a size")
    size = int(match["n"]) * _SIZE_FACTOR[match["unit"]]
    if size > MAX_SIZE:
        raise OutOfRange(f"{text!r} is larger than 1PiB")
    return size
