"""The policy loader's bounds: aliases, size, depth and control characters are refused, located.

``/policies/validate`` is open to every end user, so these documents come from anyone. None of
these tests times anything: they show that the refusal comes before any expansion (the walker
that would expand shared nodes never runs, and memory stays flat), which is what keeps a small
document from costing seconds of CPU or gigabytes of memory.
"""

from __future__ import annotations

import tracemalloc
from itertools import pairwise

import pytest

from auxilio.policy import ERROR_CODES, PolicyInvalid, load_template, parse_policy, yamlsource
from auxilio.policy.yamlsource import MAX_DEPTH, MAX_DOCUMENT_BYTES


def _padded(text: str, size: int) -> str:
    """``text`` followed by a comment line that brings it to exactly ``size`` bytes."""
    pad = size - len(text.encode()) - 3
    assert pad >= 0
    return text + "#" + "x" * pad + " \n"


def _laughs(levels: int, fan_out: int) -> str:
    lines = [f"l0: &l0 [{','.join(['lol'] * fan_out)}]"]
    for level in range(1, levels):
        refs = ",".join([f"*l{level - 1}"] * fan_out)
        lines.append(f"l{level}: &l{level} [{refs}]")
    return "\n".join(lines) + "\n"


# The review's two sizes: 284 bytes that would expand to 6^8 (1.7 million) strings, and a 354
# byte variant whose anchors sit inside a real policy and would expand to 2 x 8^7 (4.2 million).
BILLION_LAUGHS = _padded(_laughs(8, 6), 284)
VARIANT = _padded(
    "version: 1\nname: t\nsessions: {max_duration: 1h}\ncapabilities:\n  chat:\n"
    "    roles: &a [technician, technician]\n"
    + "".join(f"{b}: &{b} [{','.join([f'*{a}'] * 8)}]\n" for a, b in pairwise("abcdefgh")),
    354,
)


@pytest.fixture(
    autouse=True,
    params=yamlsource.LOADERS,
    ids=[getattr(loader, "__name__", "loader") for loader in yamlsource.LOADERS],
)
def loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test runs with libyaml's parser (where installed) and with PyYAML's own."""
    monkeypatch.setattr(yamlsource, "_Loader", request.param)


GOOD = "version: 1\nname: t\nsessions: {max_duration: 1h}\n"


def _errors(text: str) -> list[tuple[str, int | None, str]]:
    with pytest.raises(PolicyInvalid) as caught:
        parse_policy(text)
    return [(e.path, e.line, e.code) for e in caught.value.errors]


def test_the_documents_are_the_sizes_the_review_used() -> None:
    assert len(BILLION_LAUGHS.encode()) == 284
    assert len(VARIANT.encode()) == 354


@pytest.mark.parametrize(
    ("document", "line"), [(BILLION_LAUGHS, 1), (VARIANT, 6)], ids=["284-bytes", "354-bytes"]
)
def test_it_refuses_an_alias_bomb_at_its_first_anchor(document: str, line: int) -> None:
    assert _errors(document) == [("", line, "policy.yaml_alias")]


@pytest.mark.parametrize("document", [BILLION_LAUGHS, VARIANT], ids=["284-bytes", "354-bytes"])
def test_an_alias_bomb_never_reaches_the_walk_that_would_expand_it(
    document: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def expanding(*_args: object) -> None:
        raise AssertionError("the walker ran on a document with aliases")

    monkeypatch.setattr(yamlsource._Walker, "walk", expanding)
    tracemalloc.start()
    try:
        _, _, errors = yamlsource.load_yaml(document)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [e.code for e in errors] == ["policy.yaml_alias"]
    # Millions of expanded items would take hundreds of megabytes; the refusal takes kilobytes.
    assert peak < 1024 * 1024


def test_it_refuses_an_alias_to_an_undefined_anchor_with_the_same_code() -> None:
    assert _errors("version: 1\nname: *nothing\n") == [("", 2, "policy.yaml_alias")]


def test_it_refuses_an_anchor_even_when_nothing_refers_to_it() -> None:
    document = GOOD + "staff: &unused {mfa_required: true}\n"
    assert _errors(document) == [("", 4, "policy.yaml_alias")]


@pytest.mark.parametrize(
    "document",
    [
        "a:\n" + "".join("  " * depth + "b:\n" for depth in range(1, MAX_DEPTH + 5)),
        "a: " + "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5) + "\n",
        "a: " + "{b: " * (MAX_DEPTH + 5) + "c" + "}" * (MAX_DEPTH + 5) + "\n",
    ],
    ids=["block", "flow-lists", "flow-mappings"],
)
def test_it_refuses_nesting_deeper_than_the_limit(document: str) -> None:
    [(path, line, code)] = _errors(document)
    assert (path, code) == ("", "policy.too_deep")
    assert line is not None


def test_nesting_up_to_the_limit_reaches_the_schema() -> None:
    document = "a: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n"
    assert "policy.too_deep" not in {code for _, _, code in _errors(document)}


def test_thousands_of_unclosed_brackets_are_a_located_error() -> None:
    # Refused by whichever bound meets them first: ours, or libyaml's own nesting limit.
    [(_, _, code)] = _errors("[" * (MAX_DOCUMENT_BYTES - 1))
    assert code in ("policy.too_deep", "policy.yaml_syntax")


def test_it_refuses_a_document_over_the_size_limit_before_parsing() -> None:
    template = load_template("school")
    at_limit = _padded(template, MAX_DOCUMENT_BYTES)
    assert parse_policy(at_limit).name == parse_policy(template).name
    assert _errors(at_limit + "#\n") == [("", None, "policy.too_large")]


def test_the_size_limit_counts_bytes_not_characters() -> None:
    document = "name: " + "ñ" * (MAX_DOCUMENT_BYTES // 2)
    assert len(document) < MAX_DOCUMENT_BYTES < len(document.encode())
    assert _errors(document) == [("", None, "policy.too_large")]


@pytest.mark.parametrize(
    ("document", "line", "where"),
    [
        ("\u0094\u0090\u007f\u0018\u00db", 1, "U+0094 at column 1"),
        ("a: \u0007", 1, "U+0007 at column 4"),
        ("version: 1\nname: t\u0000\n", 2, "U+0000 at column 8"),
        ("version: 1\nname: \ud800\n", 2, "U+D800 at column 7"),
    ],
    ids=["c1-and-del", "bell", "nul", "lone-surrogate"],
)
def test_it_locates_a_control_character(document: str, line: int, where: str) -> None:
    with pytest.raises(PolicyInvalid) as caught:
        parse_policy(document)
    [error] = caught.value.errors
    assert (error.path, error.line, error.code) == ("", line, "policy.control_character")
    assert where in error.message


def test_tabs_and_line_breaks_are_not_control_characters_here() -> None:
    document = load_template("school").replace("\n", "\r\n")
    assert parse_policy(document + "# a\tcomment\n") == parse_policy(load_template("school"))


@pytest.mark.parametrize(
    "value",
    ["!!binary aGk=", "!!timestamp 99999-01-01", "!!float x", "!!python/object:os.system x"],
)
def test_it_refuses_explicit_tags_before_any_constructor_runs(value: str) -> None:
    assert _errors(GOOD + f"name2: {value}\n") == [("", 4, "policy.yaml_tag")]


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("9" * 5000, "policy.invalid_value"),  # past Python's int-from-text limit
        ("2025-13-45", "policy.invalid_value"),  # looks like a date, is none
        (str(2**63), "policy.out_of_range"),  # past what a 64-bit column or JSON number holds
    ],
    ids=["5000-digits", "month-13", "2^63"],
)
def test_a_plain_value_yaml_cannot_construct_is_a_located_error(value: str, code: str) -> None:
    document = GOOD + f"staff:\n  max_concurrent_sessions: {value}\n"
    [(path, line, got)] = _errors(document)
    assert (path, line, got) == ("staff.max_concurrent_sessions", 5, code)


def test_an_error_message_never_echoes_a_huge_value_whole() -> None:
    with pytest.raises(PolicyInvalid) as caught:
        parse_policy(GOOD + f"staff:\n  max_concurrent_sessions: {'9' * 5000}\n")
    assert len(caught.value.errors[0].message) < 200


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sessions.max_duration", "99999999999999999999w"),  # overflowed timedelta: a 500
        ("sessions.max_duration", "7301d"),
        ("capabilities.file_transfer.max_size", "99999999TiB"),
        ("capabilities.file_transfer.max_size", str(2**50 + 1)),
    ],
)
def test_durations_and_sizes_beyond_any_need_are_out_of_range(field: str, value: str) -> None:
    document = (
        "version: 1\nname: t\nsessions:\n  max_duration: "
        + (value if field == "sessions.max_duration" else "1h")
        + "\ncapabilities:\n  file_transfer:\n    roles: [technician]\n    direction: both\n"
        + "    max_size: "
        + (value if field.endswith("max_size") else "1MB")
        + "\n"
    )
    assert [(path, code) for path, _, code in _errors(document)] == [(field, "policy.out_of_range")]


def test_twenty_years_is_still_a_duration() -> None:
    document = GOOD.replace("max_duration: 1h", "max_duration: 7300d") + (
        "capabilities:\n  chat: {roles: [technician]}\n"
    )
    assert parse_policy(document).sessions.max_duration.days == 7300


def test_every_new_refusal_code_is_documented() -> None:
    codes = {
        "policy.yaml_alias",
        "policy.yaml_tag",
        "policy.too_large",
        "policy.too_deep",
        "policy.control_character",
    }
    assert codes <= set(ERROR_CODES)
