"""Loading policy documents: templates validate, and every bad input gets a located error."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import yaml
from policy_factories import BASE, make_policy, policy_dict

from auxilio.policy import (
    ERROR_CODES,
    PolicyInvalid,
    holidays_from_ical,
    list_templates,
    load_template,
    parse_policy,
    review_overdue,
)
from auxilio.policy.durations import format_duration, parse_duration, parse_size


def _errors(text: str) -> list[tuple[str, int | None, str]]:
    with pytest.raises(PolicyInvalid) as caught:
        parse_policy(text)
    return [(e.path, e.line, e.code) for e in caught.value.errors]


GOOD_HEAD = """\
version: 1
name: t
capabilities:
  chat: {roles: [technician]}
sessions:
  max_duration: 1h
"""

# (description, document, expected (path, line, code) among the errors)
MALFORMED = [
    (
        "bad duration",
        GOOD_HEAD.replace("1h", "90x"),
        ("sessions.max_duration", 6, "policy.invalid_duration"),
    ),
    (
        "unitless duration",
        GOOD_HEAD.replace("1h", "90"),
        ("sessions.max_duration", 6, "policy.invalid_duration"),
    ),
    (
        "zero duration",
        GOOD_HEAD.replace("1h", "0s"),
        ("sessions.max_duration", 6, "policy.invalid_duration"),
    ),
    (
        "typo in a field",
        GOOD_HEAD + "  max_duraton: 2h\n",
        ("sessions.max_duraton", 7, "policy.unknown_field"),
    ),
    ("unknown section", GOOD_HEAD + "sesions: {}\n", ("sesions", 7, "policy.unknown_field")),
    (
        "missing sessions",
        "version: 1\nname: t\ncapabilities: {}\n",
        ("sessions", 1, "policy.missing_field"),
    ),
    (
        "missing name",
        "version: 1\ncapabilities: {}\nsessions: {max_duration: 1h}\n",
        ("name", 1, "policy.missing_field"),
    ),
    (
        "unsupported version",
        GOOD_HEAD.replace("version: 1", "version: 2"),
        ("version", 1, "policy.unsupported_version"),
    ),
    ("yaml syntax", GOOD_HEAD + "  recording: [required\n", ("", 8, "policy.yaml_syntax")),
    ("not a mapping", "- just\n- a list\n", ("", 1, "policy.not_a_mapping")),
    (
        "duplicate key",
        GOOD_HEAD + "  max_duration: 2h\n",
        ("sessions.max_duration", 7, "policy.duplicate_key"),
    ),
    (
        "bad timezone",
        GOOD_HEAD + "support_hours:\n  timezone: Europe/Madird\n  weekly: {mon: ['08:00-18:00']}\n",
        ("support_hours.timezone", 8, "policy.invalid_timezone"),
    ),
    (
        "bad day",
        GOOD_HEAD + "support_hours:\n  timezone: UTC\n  weekly:\n    mon-fry: ['08:00-18:00']\n",
        ("support_hours.weekly.mon-fry", 10, "policy.invalid_day"),
    ),
    (
        "window crossing midnight",
        GOOD_HEAD + "support_hours:\n  timezone: UTC\n  weekly:\n    mon:\n      - '22:00-06:00'\n",
        ("support_hours.weekly.mon.0", 11, "policy.invalid_time_window"),
    ),
    (
        "bad outside_hours",
        GOOD_HEAD
        + "support_hours:\n  timezone: UTC\n  weekly: {mon: ['08:00-18:00']}\n"
        + "  outside_hours: maybe\n",
        ("support_hours.outside_hours", 10, "policy.invalid_choice"),
    ),
    (
        "unknown role",
        GOOD_HEAD.replace("[technician]", "[janitor]"),
        ("capabilities.chat.roles.0", 4, "policy.invalid_choice"),
    ),
    (
        "unknown external tool",
        GOOD_HEAD.replace("  chat:", "  external_tools: {putty: {roles: [technician]}}\n  chat:"),
        ("capabilities.external_tools.putty", 4, "policy.invalid_choice"),
    ),
    (
        "terminal without shells",
        GOOD_HEAD.replace("  chat: {roles: [technician]}", "  terminal:\n    roles: [technician]"),
        ("capabilities.terminal.shells", 4, "policy.missing_field"),
    ),
    (
        "bad size",
        GOOD_HEAD.replace(
            "  chat: {roles: [technician]}",
            "  file_transfer:\n    roles: [technician]\n    direction: both\n    max_size: lots",
        ),
        ("capabilities.file_transfer.max_size", 7, "policy.invalid_size"),
    ),
    (
        "mode the capability cannot run in",
        GOOD_HEAD.replace("{roles: [technician]}", "{roles: [technician], modes: [automated]}"),
        ("capabilities.chat.modes.0", 4, "policy.invalid_mode"),
    ),
    (
        "windows glob not absolute",
        GOOD_HEAD
        + "personal_data_zones:\n  zones:\n    - name: x\n      windows: ['Users/*/Secret/**']\n",
        ("personal_data_zones.zones.0.windows.0", 10, "policy.invalid_glob"),
    ),
    (
        "bad language tag",
        GOOD_HEAD + "privacy:\n  consent_text:\n    spanish: hola\n",
        ("privacy.consent_text.spanish", 9, "policy.invalid_language"),
    ),
    (
        "bad survey scale",
        GOOD_HEAD + "post_session:\n  survey: {scale: 5-1}\n",
        ("post_session.survey.scale", 8, "policy.invalid_scale"),
    ),
    (
        "sampling above one",
        GOOD_HEAD + "post_session:\n  survey: {sampling: 1.5}\n",
        ("post_session.survey.sampling", 8, "policy.out_of_range"),
    ),
    (
        "text where a number goes",
        GOOD_HEAD + "staff:\n  max_concurrent_sessions: many\n",
        ("staff.max_concurrent_sessions", 8, "policy.invalid_type"),
    ),
    (
        "warning after the end",
        GOOD_HEAD + "  warn_before: 2h\n",
        ("sessions.warn_before", 7, "policy.inconsistent"),
    ),
    (
        "consent for an unlisted capability",
        GOOD_HEAD + "consent:\n  capabilities:\n    terminal: {required: false}\n",
        ("consent.capabilities.terminal", 9, "policy.inconsistent"),
    ),
    (
        "consent set twice",
        GOOD_HEAD.replace("{roles: [technician]}", "{roles: [technician], consent: required}")
        + "consent:\n  capabilities:\n    chat: {required: false}\n",
        ("consent.capabilities.chat.required", 9, "policy.inconsistent"),
    ),
    (
        "unattended scope not allowed unattended",
        GOOD_HEAD
        + "unattended:\n  allowed_device_groups: [servers]\n"
        + "  owner_pre_authorisation: {window: 1d, scope: [chat]}\n",
        ("unattended.owner_pre_authorisation.scope.0", 9, "policy.inconsistent"),
    ),
    (
        "silence taken as consent",
        GOOD_HEAD + "consent:\n  on_timeout: allow\n",
        ("consent.on_timeout", 8, "policy.silence_is_not_consent"),
    ),
    (
        "silence taken as consent for one capability",
        GOOD_HEAD + "consent:\n  capabilities:\n    chat: {on_timeout: allow}\n",
        ("consent.capabilities.chat.on_timeout", 9, "policy.silence_is_not_consent"),
    ),
    (
        "section that is not a mapping",
        GOOD_HEAD + "staff: yes\n",
        ("staff", 7, "policy.not_a_mapping"),
    ),
    (
        "merge keys",
        GOOD_HEAD + "staff:\n  <<: {mfa_required: true}\n",
        ("staff", 8, "policy.yaml_syntax"),
    ),
]


@pytest.mark.parametrize(
    ("document", "expected"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_it_locates_each_malformed_document_error(
    document: str, expected: tuple[str, int, str]
) -> None:
    assert expected in _errors(document)


def test_every_error_code_emitted_is_documented() -> None:
    assert {m[2][2] for m in MALFORMED} <= set(ERROR_CODES)


def test_it_names_path_and_line_in_the_message() -> None:
    with pytest.raises(PolicyInvalid) as caught:
        parse_policy(GOOD_HEAD.replace("1h", "90x"))
    assert str(caught.value.errors[0]).startswith('sessions.max_duration: "90x" is not a duration')
    assert str(caught.value.errors[0]).endswith("(line 6)")


def test_it_suggests_the_field_a_typo_meant() -> None:
    with pytest.raises(PolicyInvalid) as caught:
        parse_policy(GOOD_HEAD + "  max_duraton: 2h\n")
    assert 'did you mean "max_duration"' in caught.value.errors[0].message


def test_it_reports_every_error_at_once_in_line_order() -> None:
    text = GOOD_HEAD.replace("1h", "90x").replace("[technician]", "[janitor]")
    lines = [line for _, line, _ in _errors(text)]
    assert len(lines) == 2
    assert lines == sorted(lines)


def test_it_rejects_an_empty_document() -> None:
    assert _errors("") == [("", None, "policy.not_a_mapping")]


@pytest.mark.parametrize("name", list_templates())
def test_every_template_validates(name: str) -> None:
    policy = parse_policy(load_template(name), version_label=f"{name}/1")
    assert policy.version_label == f"{name}/1"


def test_the_four_templates_ship() -> None:
    assert list_templates() == ["managed-servers", "school", "software-company", "strict-privacy"]


def test_an_unknown_template_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="school"):
        load_template("hospital")


def test_it_keeps_yaml_1_1_words_as_words() -> None:
    policy = make_policy(sessions={"max_duration": "1h", "recording": "off"})
    assert policy.sessions.recording == "off"


def test_it_reads_unquoted_hours_as_times_not_base_60_numbers() -> None:
    text = GOOD_HEAD + "support_hours:\n  timezone: UTC\n  weekly:\n    mon: [9:00-18:00]\n"
    policy = parse_policy(text)
    assert policy.support_hours is not None
    assert policy.support_hours.weekly["mon"] == ("9:00-18:00",)


def test_it_still_reads_yes_as_true_for_a_boolean_field() -> None:
    assert make_policy(staff={"mfa_required": "yes"}).staff.mfa_required is True


def test_holidays_accept_bare_dates() -> None:
    hours = {**BASE["support_hours"], "holidays": [date(2025, 1, 1)]}
    policy = make_policy(support_hours=hours)
    assert policy.support_hours is not None
    assert policy.support_hours.holidays[0].date == date(2025, 1, 1)


def test_a_dumped_policy_loads_back_the_same() -> None:
    policy = make_policy()
    again = parse_policy(yaml.safe_dump(policy.model_dump(mode="json", exclude={"version_label"})))
    assert again.model_dump() == policy.model_dump(exclude={"version_label"}) | {
        "version_label": None
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("45s", timedelta(seconds=45)),
        ("90m", timedelta(minutes=90)),
        ("2h", timedelta(hours=2)),
        ("1h30m", timedelta(minutes=90)),
        ("30d", timedelta(days=30)),
        ("1w2d", timedelta(days=9)),
    ],
)
def test_it_parses_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert parse_duration(format_duration(expected)) == expected


@pytest.mark.parametrize("text", ["", "h", "30m1h", "1.5h", "-5m", "5 minutes", "1y"])
def test_it_rejects_malformed_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "expected"), [("500KB", 500_000), ("2GiB", 2 * 2**30), ("7 B", 7)]
)
def test_it_parses_sizes(text: str, expected: int) -> None:
    assert parse_size(text) == expected


def test_review_is_overdue_only_after_the_date() -> None:
    policy = parse_policy(GOOD_HEAD + "review_by: 2025-06-30\n")
    assert not review_overdue(policy, date(2025, 6, 30))
    assert review_overdue(policy, date(2025, 7, 1))
    assert not review_overdue(parse_policy(GOOD_HEAD), date(2099, 1, 1))


ICAL = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//EN
BEGIN:VEVENT
UID:1@test
DTSTAMP:20250101T000000Z
DTSTART;VALUE=DATE:20251225
DTEND;VALUE=DATE:20251226
SUMMARY:Navidad
END:VEVENT
BEGIN:VEVENT
UID:2@test
DTSTAMP:20250101T000000Z
DTSTART;VALUE=DATE:20251231
DTEND;VALUE=DATE:20260102
SUMMARY:Fin de año
END:VEVENT
END:VCALENDAR
"""


def test_it_imports_holidays_from_ical_with_exclusive_end_dates() -> None:
    holidays = holidays_from_ical(ICAL)
    assert [(h.date, h.name) for h in holidays] == [
        (date(2025, 12, 25), "Navidad"),
        (date(2025, 12, 31), "Fin de año"),
        (date(2026, 1, 1), "Fin de año"),
    ]


def test_it_rejects_text_that_is_not_ical() -> None:
    with pytest.raises(PolicyInvalid) as caught:
        holidays_from_ical("not a calendar")
    assert caught.value.errors[0].code == "policy.invalid_ical"


def test_policy_dict_factory_builds_a_valid_policy() -> None:
    assert parse_policy(yaml.safe_dump(policy_dict())).name == "test"
