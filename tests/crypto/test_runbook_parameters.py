"""A runbook's parameter declarations: patterns that can only match in linear time, and integers a
JSON reader keeps exactly (crypto/runbooks.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from auxilio.crypto.runbooks import (
    SAFE_INTEGER,
    ParameterInvalid,
    RunbookParameter,
    check_pattern,
    check_value,
)

BACKTRACKING = [
    "(a+)+",
    "([a-z]+)*x",
    "(a|aa)+",
    "(.*a){12}",
    "(a?)+",
    "(?:x(?:a+)b)*",
    "(?>a+)+",
    "(x+x+)+y",
    "(?:[a-z]{1,3})+",
]
USEFUL = [
    "^[a-z0-9._-]{1,64}$",
    "[A-Za-z]+\\.[a-z]+",
    "\\d{1,5}",
    "(?:ab|cd)?x",
    "(?:[a-f0-9]{2}:){5}[a-f0-9]{2}",
    "(?=[a-z])[a-z0-9]+",
    "(\\w|\\d)*",  # one character either way: the parser makes it a set
]


@pytest.mark.parametrize("pattern", BACKTRACKING)
def test_a_pattern_that_can_backtrack_exponentially_is_refused(pattern: str) -> None:
    with pytest.raises(ValueError, match="must not repeat"):
        check_pattern(pattern)


def test_a_back_reference_is_refused() -> None:
    with pytest.raises(ValueError, match="back-reference"):
        check_pattern("(a)\\1")


@pytest.mark.parametrize("pattern", USEFUL)
def test_the_patterns_a_runbook_needs_are_accepted(pattern: str) -> None:
    check_pattern(pattern)
    spec = RunbookParameter(name="what", type="string", pattern=pattern)
    assert spec.pattern == pattern


def test_the_refusal_names_the_pattern_field() -> None:
    with pytest.raises(ValidationError) as caught:
        RunbookParameter(name="what", type="string", pattern="(a+)+")
    assert [error["loc"] for error in caught.value.errors()] == [("pattern",)]


@pytest.mark.parametrize(
    "declared",
    [
        {"minimum": SAFE_INTEGER + 1},
        {"maximum": -SAFE_INTEGER - 1},
        {"default": 2**64, "required": False},
        {"maximum": -(10**400)},
    ],
)
def test_integer_bounds_and_defaults_stay_within_2_to_the_53(declared: dict[str, int]) -> None:
    with pytest.raises(ValidationError):
        RunbookParameter(name="n", type="integer", **declared)  # type: ignore[arg-type]


def test_an_integer_value_past_2_to_the_53_is_refused() -> None:
    spec = RunbookParameter(name="n", type="integer")
    assert check_value(spec, SAFE_INTEGER) == str(SAFE_INTEGER)
    with pytest.raises(ParameterInvalid, match="between"):
        check_value(spec, SAFE_INTEGER + 1)
