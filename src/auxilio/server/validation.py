"""Annotated text and number types for request schemas, path and query parameters.

Text is NFC-normalised; C0/C1 control characters are refused (tab and newline are allowed in
multi-line text); bidirectional override characters are refused everywhere, since they let a
name display as something other than what it is (the "Trojan Source" trick). SQL-like text is
just text: every query is parameterised.

Integers that reach the database are bounded to what their columns hold: a larger number is
refused by validation with 422 ``validation_failed`` rather than overflowing the driver (SQLite)
or the column (PostgreSQL) into a 500. Every integer a client
sends is one of these types or carries its own smaller bounds; tests/server/test_bounded_integers.py
checks the OpenAPI document for it.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated

from annotated_types import Interval
from pydantic import AfterValidator, Field, StringConstraints

BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def forbidden_character(value: str, *, multiline: bool) -> tuple[int, str] | None:
    """(position, why) of the first character text may not hold, None when it holds none:
    bidirectional controls everywhere, control characters but tab and line breaks where
    ``multiline``. For checks that give a code of their own (an emergency's reason)."""
    for index, ch in enumerate(value):
        if ch in BIDI_CONTROLS:
            return index, "bidirectional control characters are not allowed"
        if multiline and ch in "\n\t\r":
            continue
        if unicodedata.category(ch) == "Cc":
            return index, "control characters are not allowed"
    return None


def _clean(value: str, *, multiline: bool) -> str:
    value = unicodedata.normalize("NFC", value)
    if (found := forbidden_character(value, multiline=multiline)) is not None:
        raise ValueError(found[1])
    return value


def _line(value: str) -> str:
    value = _clean(value, multiline=False).strip()
    if not value:
        raise ValueError("must not be blank")
    return value


def _text(value: str) -> str:
    return _clean(value, multiline=True)


def _query(value: str) -> str:
    return _clean(value, multiline=False)


Name = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(_line)]
ShortName = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(_line)]
LongText = Annotated[str, Field(max_length=20_000), AfterValidator(_text)]
# An email as typed at login: one line, checked for shape only where accounts are created, but
# never with control characters (PostgreSQL refuses NUL in text: a 500 instead of a 401).
LoginEmail = Annotated[str, StringConstraints(min_length=1, max_length=254), AfterValidator(_line)]
Password = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
# A filter in a query string: one line, no control characters (PostgreSQL refuses NUL in a
# text parameter, which was a 500 instead of a 422).
QueryText = Annotated[str, StringConstraints(max_length=200), AfterValidator(_query)]

# The largest values of the integer columns: INTEGER is 32-bit on PostgreSQL (SQLite's holds
# 64 bits), BIGINT 64-bit on both. A type below must not allow more than its column holds.
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
# A position in an audit chain (``seq``, BIGINT); 0 means "from the start".
SequenceNumber = Annotated[int, Interval(ge=0, le=INT64_MAX)]
# A number that counts from 1 in an INTEGER column, such as a policy version's or a ticket's.
OrdinalNumber = Annotated[int, Interval(ge=1, le=INT32_MAX)]
