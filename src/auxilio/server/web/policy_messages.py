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

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from auxilio.policy.reasons import SITUATION
from auxilio.policy.yamlsource import MAX_DEPTH, MAX_DOCUMENT_BYTES, load_yaml
from auxilio.server.web import i18n
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


# ---- the reasons of decisions ------------------------------------------------------------------
#
# Each code of ``auxilio.policy.reasons.REASONS`` has one wording, filled with the decision's own
# parameters.  A clause code (its parameters name a ``situation``) is said after the wording of
# that situation, as a second sentence: why support is closed now, then what the policy does.

REASON_WORDS: dict[str, str] = {
    "roles.session_start_denied": N_('The role "%(role)s" may not start support sessions.'),
    "staff.mfa_required.unverified": N_("The technician has not verified a second factor."),
    "staff.training.expired": N_(
        'The training "%(training)s" expired on %(expired_on)s and must be renewed.'
    ),
    "staff.training.missing": N_('The technician has no record of the training "%(training)s".'),
    "staff.training.current": N_('The training "%(training)s" is current.'),
    "sessions.ticket_access.assignee": N_("The ticket is assigned to the technician."),
    "sessions.ticket_access.any_technician": N_("Any technician may work on any ticket."),
    "sessions.ticket_access.senior": N_(
        'The role "%(role)s" may work on tickets assigned to others.'
    ),
    "sessions.ticket_access.assigned_to_other": N_(
        'The ticket is assigned to another technician; only its assignee or the role "%(floor)s"'
        " may work on it."
    ),
    "sessions.ticket_access.unassigned": N_(
        'The ticket is assigned to nobody yet; only its assignee or the role "%(floor)s" may'
        " work on it."
    ),
    "staff.max_concurrent_sessions.reached": N_(
        "The technician already runs %(running)s sessions (limit %(limit)s)."
    ),
    "capabilities.none_for_mode": N_(
        'No approved capability allows the role "%(role)s" in "%(mode)s" mode.'
    ),
    "unattended.not_allowed": N_("This policy does not allow unattended access."),
    "emergency.unattended_locked": N_("Unattended access is locked during an emergency."),
    "unattended.device_group_not_approved": N_(
        'The device group "%(group)s" is not approved for unattended access.'
    ),
    "unattended.ticket_missing": N_("Unattended access needs a ticket."),
    "unattended.owner_pre_authorisation.missing": N_(
        "The device owner has not pre-authorised access."
    ),
    "unattended.owner_pre_authorisation.outside_window": N_(
        "The owner's pre-authorisation is outside its validity window."
    ),
    "unattended.owner_pre_authorisation.present": N_("The owner pre-authorised access."),
    "unattended.approval.recorded": N_("An approval is recorded."),
    "unattended.approval.required": N_("Unattended access needs an approval."),
    "support_hours.holiday": N_("%(date)s is a holiday (%(holiday)s)."),
    "support_hours.holiday_unnamed": N_("%(date)s is a holiday."),
    "support_hours.inside": N_("%(day)s %(time)s is inside the agreed hours."),
    "support_hours.outside": N_("%(day)s %(time)s %(zone)s is outside the agreed hours."),
    "support_hours.closed.approval_recorded": N_("An approval is recorded."),
    "support_hours.closed.approval_required": N_("Support outside hours needs an approval."),
    "support_hours.closed.emergency_allowed": N_("Allowed as an emergency."),
    "support_hours.closed.emergency_only": N_("Only emergencies are served outside hours."),
    "consent.session.not_required": N_("This policy does not ask consent for this connection."),
    "consent.session.given": N_("The person consented to the connection."),
    "consent.session.required": N_("The person must consent before any connection."),
    "sessions.granted": N_("The policy allows this session for %(minutes)s minutes."),
    "capabilities.not_in_catalogue": N_(
        '"%(capability)s" is not in the catalogue of approved tools.'
    ),
    "capabilities.role_allowed": N_('The role "%(role)s" may use "%(capability)s".'),
    "capabilities.role_denied": N_('The role "%(role)s" may not use "%(capability)s".'),
    "capabilities.mode_allowed": N_('"%(capability)s" is approved in "%(mode)s" mode.'),
    "capabilities.mode_denied": N_('"%(capability)s" is not approved in "%(mode)s" mode.'),
    "capabilities.shell_not_approved": N_('The shell "%(shell)s" is not approved.'),
    "capabilities.runbook_not_approved": N_('The runbook "%(runbook)s" is not approved.'),
    "capabilities.direction_not_allowed": N_(
        'File transfer in the direction "%(direction)s" is not allowed.'
    ),
    "capabilities.direction_unstated": N_("A file transfer that states no direction is refused."),
    "capabilities.too_large": N_("%(size)s bytes exceeds the limit of %(max)s bytes."),
    "capabilities.ticket_required": N_('"%(capability)s" must be logged against a ticket.'),
    "personal_data_zones.terminal.denied": N_(
        "A terminal cannot be confined to paths and could read personal-data zones; this policy"
        " denies it."
    ),
    "personal_data_zones.terminal.consent": N_(
        "A terminal needs its own consent, which names the risk to personal data."
    ),
    "unattended.scope.covered": N_('The owner pre-authorised "%(capability)s" for unattended use.'),
    "unattended.scope.not_covered": N_(
        'The owner\'s pre-authorisation does not cover "%(capability)s".'
    ),
    "consent.capability.not_required": N_('"%(capability)s" needs no consent under this policy.'),
    "consent.capability.given": N_('The person consented to "%(capability)s".'),
    "consent.capability.required": N_('The person must consent to "%(capability)s".'),
    "capabilities.granted": N_('"%(capability)s" is an approved tool for this use.'),
    "personal_data_zones.not_absolute": N_(
        '"%(path)s" is not an absolute path and cannot be judged.'
    ),
    "personal_data_zones.exception": N_("The path is a listed exception."),
    "personal_data_zones.outside": N_("The path is outside every personal-data zone."),
    "personal_data_zones.denied": N_(
        'The path is in the personal-data zone "%(zone)s"; access is denied.'
    ),
    "personal_data_zones.reason_missing": N_(
        'The path is in the personal-data zone "%(zone)s"; access needs a stated reason.'
    ),
    "personal_data_zones.consented": N_(
        'The path is in the personal-data zone "%(zone)s"; the person consented to it.'
    ),
    "personal_data_zones.consent_required": N_(
        'The path is in the personal-data zone "%(zone)s"; the person must consent to it.'
    ),
    "personal_data_zones.follows_consent": N_(
        'The path is in the personal-data zone "%(zone)s"; access follows the person\'s consent.'
    ),
    "sessions.extension.none": N_("This policy allows no extensions."),
    "sessions.extension.reason_missing": N_("An extension needs a written reason."),
    "sessions.extension.exceeds_max": N_("The extension exceeds the most the policy allows."),
    "sessions.extension.count_reached": N_("The session was already extended %(count)s times."),
    "sessions.extension.approval_required": N_(
        'The extension needs the approval of the role "%(approver)s".'
    ),
    "sessions.extension.approver_too_junior": N_(
        'The role "%(role)s" cannot approve; the role "%(approver)s" must.'
    ),
    "sessions.extension.approved": N_('Approved by the role "%(role)s".'),
    "sessions.extension.granted": N_("The extension is within the policy's documented exceptions."),
    "emergency.declare.denied": N_('The role "%(role)s" may not declare an emergency.'),
    "emergency.declare.allowed": N_('The role "%(role)s" may declare an emergency.'),
    "default.no_rule_allows": N_("No rule of the policy allows this."),
    "roles.permission_held": N_('The role "%(role)s" holds the permission "%(permission)s".'),
    "roles.permission_missing": N_(
        'The role "%(role)s" does not hold the permission "%(permission)s".'
    ),
    "roles.unknown": N_("Unknown role or permission."),
}

# Parameters whose values are words of the page's language rather than names from the policy.
_ROLE_WORDS = {
    "end_user": N_("end user"),
    "technician": N_("technician"),
    "senior_technician": N_("senior technician"),
    "supervisor": N_("supervisor"),
    "admin": N_("admin"),
    "auditor": N_("auditor"),
}
_DAY_WORDS = {
    "Mon": N_("Monday"),
    "Tue": N_("Tuesday"),
    "Wed": N_("Wednesday"),
    "Thu": N_("Thursday"),
    "Fri": N_("Friday"),
    "Sat": N_("Saturday"),
    "Sun": N_("Sunday"),
}
PARAM_WORDS: dict[str, dict[str, str]] = {
    "role": _ROLE_WORDS,
    "floor": _ROLE_WORDS,
    "approver": _ROLE_WORDS,
    "day": _DAY_WORDS,
}


def reason_messages(code: str, params: Mapping[str, Any]) -> list[Message] | None:
    """The msgids (with their parameters) that say a reason, in order; None for a code this
    catalogue does not know (a newer engine), whose English sentence is then all there is."""
    words = REASON_WORDS.get(code)
    if words is None:
        return None
    situation = params.get(SITUATION)
    if situation is not None:
        inner = reason_messages(str(situation), {k: v for k, v in params.items() if k != SITUATION})
        if inner is None:
            return None
        return [*inner, Message(words, {})]
    return [Message(words, {str(k): _param(str(k), v) for k, v in params.items()})]


def _param(name: str, value: Any) -> str:
    return PARAM_WORDS.get(name, {}).get(str(value), str(value))


def reason_text(lang: str, code: str, params: Mapping[str, Any]) -> str | None:
    """A reason in ``lang``, from its code and parameters; None when the code is unknown."""
    messages = reason_messages(code, params)
    if messages is None:
        return None
    trans = i18n.translations(lang)
    said = []
    for message in messages:
        values = {k: trans.gettext(v) if k in PARAM_WORDS else v for k, v in message.params.items()}
        said.append(trans.gettext(message.msgid) % values)
    return " ".join(said)
