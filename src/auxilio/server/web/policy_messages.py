"""The policy engine's error codes and decision effects as texts of the web catalogue.

The engine names every problem with a stable code (``auxilio.policy.errors.ERROR_CODES``) and
writes an English sentence for the API and the CLI. The editor does not translate that sentence:
it picks the msgid of the error's code and fills it with parameters it reads from the document
itself (the field's name, the offending value), so every language says the same thing and a
new English wording in the engine cannot leave a page half translated.

Each code has up to three wordings, from the most to the least specific: with the value, with the
field, and for the whole document; the most specific one the error's parameters allow is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from auxilio.policy.yamlsource import MAX_DEPTH, MAX_DOCUMENT_BYTES, load_yaml
from auxilio.server.web.pages import N_

# A value longer than this is cut in the message; the source line below it shows it whole.
_SHOWN_VALUE = 60


@dataclass(frozen=True, slots=True)
class Wordings:
    document: str
    field: str | None = None
    value: str | None = None


MESSAGES: dict[str, Wordings] = {
    "policy.yaml_syntax": Wordings(N_("The text is not well-formed YAML.")),
    "policy.yaml_alias": Wordings(
        N_("YAML anchors and aliases (&name, *name) are not accepted: write every value out.")
    ),
    "policy.yaml_tag": Wordings(
        N_("Explicit YAML tags (!!binary, !!set, ...) are not accepted: write plain values.")
    ),
    "policy.too_large": Wordings(N_("The document is larger than a policy may be (%(size)s).")),
    "policy.too_deep": Wordings(
        N_("Collections are nested deeper than a policy may be (%(levels)s levels).")
    ),
    "policy.control_character": Wordings(
        N_("The text holds a control character that YAML does not accept.")
    ),
    "policy.not_a_mapping": Wordings(
        N_("The policy must be a mapping of sections (name: value)."),
        N_('"%(field)s" must be a mapping of fields (name: value).'),
    ),
    "policy.duplicate_key": Wordings(
        N_("The same field is written twice in one mapping."),
        N_('"%(field)s" is written twice in the same mapping.'),
    ),
    "policy.unknown_field": Wordings(
        N_("A field the schema does not know (often a typo)."),
        N_('Unknown field "%(field)s": the schema has no field of that name (often a typo).'),
    ),
    "policy.missing_field": Wordings(
        N_("A required field is missing."),
        N_('The field "%(field)s" is required.'),
    ),
    "policy.invalid_type": Wordings(
        N_("A value of the wrong type (text where a number is expected, ...)."),
        N_('"%(field)s" holds a value of the wrong type.'),
        N_('"%(value)s" is of the wrong type for "%(field)s".'),
    ),
    "policy.invalid_choice": Wordings(
        N_("A value outside the allowed set."),
        N_('"%(field)s" holds a value outside the allowed set.'),
        N_('"%(value)s" is not one of the values "%(field)s" allows.'),
    ),
    "policy.invalid_value": Wordings(
        N_("A value the field cannot accept."),
        N_('"%(field)s" cannot take this value (a list must have at least one item).'),
        N_('"%(field)s" cannot be "%(value)s".'),
    ),
    "policy.out_of_range": Wordings(
        N_("A number or length outside its allowed range."),
        N_('"%(field)s" is outside its allowed range.'),
        N_('"%(value)s" is outside the range "%(field)s" allows.'),
    ),
    "policy.invalid_duration": Wordings(
        N_("Not a duration such as 45s, 90m, 2h, 1h30m or 30d."),
        N_('"%(field)s" is not a duration longer than zero, such as 45s, 90m, 2h or 30d.'),
        N_('"%(value)s" is not a duration longer than zero, such as 45s, 90m, 2h or 30d.'),
    ),
    "policy.invalid_size": Wordings(
        N_("Not a size such as 500KB, 100MB or 2GiB."),
        N_('"%(field)s" is not a size such as 500KB, 100MB or 2GiB.'),
        N_('"%(value)s" is not a size such as 500KB, 100MB or 2GiB.'),
    ),
    "policy.invalid_timezone": Wordings(
        N_("Not an IANA time zone name (such as Europe/Madrid)."),
        N_('"%(field)s" is not an IANA time zone name (such as Europe/Madrid).'),
        N_('"%(value)s" is not an IANA time zone name (such as Europe/Madrid).'),
    ),
    "policy.invalid_day": Wordings(
        N_("Not a weekday, range or list such as mon-fri or sat,sun."),
        N_('"%(field)s" is not a weekday, range or list such as mon-fri or sat,sun.'),
        N_('"%(value)s" is not a weekday, range or list such as mon-fri or sat,sun.'),
    ),
    "policy.invalid_time_window": Wordings(
        N_("Not a time window such as 08:00-18:00 (the end after the start)."),
        N_('"%(field)s" is not a time window such as 08:00-18:00 (the end after the start).'),
        N_('"%(value)s" is not a time window such as 08:00-18:00 (the end after the start).'),
    ),
    "policy.invalid_glob": Wordings(
        N_("Not an absolute path pattern for that platform."),
        N_('"%(field)s" is not an absolute path pattern for that platform.'),
        N_('"%(value)s" is not an absolute path pattern for that platform.'),
    ),
    "policy.invalid_language": Wordings(
        N_("Not a language tag such as es, en or es-MX."),
        N_('"%(field)s" is not a language tag such as es, en or es-MX.'),
        N_('"%(value)s" is not a language tag such as es, en or es-MX.'),
    ),
    "policy.invalid_scale": Wordings(
        N_("Not a survey scale such as 1-5."),
        N_('"%(field)s" is not a survey scale such as 1-5.'),
        N_('"%(value)s" is not a survey scale such as 1-5.'),
    ),
    "policy.invalid_mode": Wordings(
        N_("A session mode the capability cannot run in."),
        N_("The capability cannot run in one of these modes."),
        N_('The capability cannot run in "%(value)s" mode.'),
    ),
    "policy.unsupported_version": Wordings(
        N_("A schema version this engine does not understand."),
        N_("A schema version this engine does not understand."),
        N_('Schema version "%(value)s" is not one this engine understands.'),
    ),
    "policy.inconsistent": Wordings(
        N_("Two fields contradict each other."),
        N_('"%(field)s" contradicts another field of the policy.'),
    ),
    "policy.silence_is_not_consent": Wordings(
        N_("Silence never means yes: a consent prompt left unanswered must be a refusal."),
        N_('Silence never means yes: "%(field)s" must be deny (a prompt left unanswered).'),
    ),
    "policy.invalid_ical": Wordings(N_("The iCalendar text cannot be read.")),
    "policy.pre_authorised_not_approved": Wordings(
        N_("Pre-authorised runbooks must also be listed as approved."),
        N_('Every runbook in "%(field)s" must also be listed as approved.'),
    ),
}

# The engine's limits, said in the wordings of the codes that enforce them.
LIMITS: dict[str, dict[str, str]] = {
    "policy.too_large": {"size": f"{MAX_DOCUMENT_BYTES // 1024} KiB"},
    "policy.too_deep": {"levels": str(MAX_DEPTH)},
}

# What a decision (or one rule of its trail) came to; "pass" is a rule with no objection.
EFFECTS: dict[str, str] = {
    "allow": N_("allowed"),
    "deny": N_("denied"),
    "require_consent": N_("consent required"),
    "require_approval": N_("approval required"),
    "pass": N_("no objection"),
}

# An error whose code this catalogue does not know (a newer engine): said in general terms.
UNKNOWN = N_("The policy engine refused this part of the document.")


def effect_text(effect: str) -> str:
    """The msgid of a decision's effect (the code itself when it is a new one)."""
    return EFFECTS.get(effect, effect)


def field_of(path: str) -> str | None:
    """The name a person reads in the error: the last named step of the dotted path."""
    names = [part for part in path.split(".") if part and not part.isdigit()]
    return names[-1] if names else None


def value_at(data: Any, path: str) -> str | None:
    """The scalar the document holds at ``path``, as written, when there is one."""
    current = data
    for part in path.split(".") if path else ():
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
    if isinstance(current, bool):
        return "true" if current else "false"
    if not isinstance(current, str | int | float):
        return None
    text = str(current)
    return text if len(text) <= _SHOWN_VALUE else text[:_SHOWN_VALUE] + "..."


@dataclass(frozen=True, slots=True)
class Message:
    """A msgid and its parameters; the template translates it (``_(m.msgid, **m.params)``)."""

    msgid: str
    params: dict[str, str]


def message_for(code: str, path: str, data: Any) -> Message:
    """The most specific wording of ``code`` that the error's field and value can fill."""
    wordings = MESSAGES.get(code)
    if wordings is None:
        return Message(UNKNOWN, {})
    field = field_of(path)
    value = value_at(data, path) if field else None
    limits = LIMITS.get(code, {})
    if field and value is not None and wordings.value:
        return Message(wordings.value, {**limits, "field": field, "value": value})
    if field and wordings.field:
        return Message(wordings.field, {**limits, "field": field})
    return Message(wordings.document, dict(limits))


def document_data(document: str) -> Any:
    """The document's data for ``value_at`` (None when it is not even YAML)."""
    data, _lines, _errors = load_yaml(document)
    return data
