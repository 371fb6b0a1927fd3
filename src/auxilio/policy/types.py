"""Annotated field types for the policy schema; each rejects bad input with a stable code."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BeforeValidator, PlainSerializer
from pydantic_core import PydanticCustomError

from auxilio.policy.durations import (
    MAX_SIZE,
    OutOfRange,
    format_duration,
    parse_duration,
    parse_size,
)
from auxilio.policy.hours_parse import parse_day_spec, parse_window


def _fail(code: str, template: str, value: object) -> PydanticCustomError:
    return PydanticCustomError(code, template, {"value": value})


def _duration(value: Any) -> Any:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _fail("policy.invalid_duration", '"{value}" is not a duration', value)
    if isinstance(value, int):
        # A bare number has no unit; guessing seconds or minutes would be wrong half the time.
        raise _fail(
            "policy.invalid_duration",
            '"{value}" is not a duration: write the unit, e.g. {value}s or {value}m',
            value,
        )
    try:
        return parse_duration(value)
    except OutOfRange:
        raise _fail(
            "policy.out_of_range",
            '"{value}" is longer than any policy needs (at most 7300d, twenty years)',
            value,
        ) from None
    except ValueError:
        raise _fail(
            "policy.invalid_duration",
            '"{value}" is not a duration (write e.g. 45s, 90m, 2h, 1h30m or 30d)',
            value,
        ) from None


def _positive(value: timedelta) -> timedelta:
    if value <= timedelta(0):
        raise _fail("policy.invalid_duration", "{value} must be longer than zero", "0s")
    return value


def _size(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        if value > MAX_SIZE:
            raise _fail("policy.out_of_range", '"{value}" bytes is larger than 1PiB', value)
        return value  # plain bytes
    try:
        return parse_size(str(value))
    except OutOfRange:
        raise _fail("policy.out_of_range", '"{value}" is larger than 1PiB', value) from None
    except ValueError:
        raise _fail(
            "policy.invalid_size", '"{value}" is not a size (write e.g. 500KB, 100MB, 2GiB)', value
        ) from None


def _timezone(value: Any) -> Any:
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise _fail(
            "policy.invalid_timezone",
            '"{value}" is not an IANA time zone (e.g. Europe/Madrid, America/Mexico_City)',
            value,
        ) from None
    return str(value)


def _day_spec(value: str) -> str:
    try:
        parse_day_spec(value)
    except ValueError:
        raise _fail(
            "policy.invalid_day",
            '"{value}" is not a day spec (use mon..sun, ranges like mon-fri, lists like sat,sun)',
            value,
        ) from None
    return value


def _window(value: Any) -> Any:
    try:
        parse_window(str(value))
    except ValueError:
        raise _fail(
            "policy.invalid_time_window",
            '"{value}" is not a window HH:MM-HH:MM with the end after the start; windows do not '
            "cross midnight (write 22:00-24:00 and 00:00-06:00 on the next day)",
            value,
        ) from None
    return str(value)


def _scale(value: Any) -> Any:
    if isinstance(value, tuple):
        return value
    match = re.fullmatch(r"(\d+)-(\d+)", str(value).strip())
    # At most 0-100: what the survey page lists and the agent's signed invite carries.
    if match is None or int(match[1]) >= int(match[2]) or int(match[2]) > 100:
        raise _fail(
            "policy.invalid_scale", '"{value}" is not a scale such as 1-5 (from 0 up to 100)',
            value,
        )
    return (int(match[1]), int(match[2]))


_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Z]{2})?$")


def _language(value: str) -> str:
    if not _LANGUAGE.match(value):
        raise _fail(
            "policy.invalid_language",
            '"{value}" is not a language tag such as es, en, es-MX',
            value,
        )
    return value


def _windows_glob(value: str) -> str:
    normal = value.replace("\\", "/")
    if not re.match(r"^([A-Za-z*?]:/|//)", normal):
        raise _fail(
            "policy.invalid_glob",
            '"{value}" is not an absolute Windows pattern (start with a drive such as C:/ or *:/)',
            value,
        )
    return normal


def _posix_glob(value: str) -> str:
    if not value.startswith("/"):
        raise _fail(
            "policy.invalid_glob", '"{value}" is not an absolute pattern (start with /)', value
        )
    return value


Duration = Annotated[
    timedelta, BeforeValidator(_duration), PlainSerializer(format_duration, return_type=str)
]
PositiveDuration = Annotated[
    timedelta,
    BeforeValidator(_duration),
    AfterValidator(_positive),
    PlainSerializer(format_duration, return_type=str),
]
Size = Annotated[int, BeforeValidator(_size)]
TimezoneName = Annotated[str, BeforeValidator(_timezone)]
DaySpec = Annotated[str, AfterValidator(_day_spec)]
TimeWindow = Annotated[str, BeforeValidator(_window)]
Scale = Annotated[
    tuple[int, int],
    BeforeValidator(_scale),
    PlainSerializer(lambda s: f"{s[0]}-{s[1]}", return_type=str),
]
LanguageTag = Annotated[str, AfterValidator(_language)]
WindowsGlob = Annotated[str, AfterValidator(_windows_glob)]
PosixGlob = Annotated[str, AfterValidator(_posix_glob)]
