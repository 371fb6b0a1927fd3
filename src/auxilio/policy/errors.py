"""Located validation errors for policy documents.

A policy is written by a person in a text editor, so every error names the dotted path of the
offending field *and* the line it sits on; the ``code`` is stable so that the API and the web UI
can react to it without parsing English.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PolicyError:
    """One problem in a policy document."""

    path: str
    line: int | None
    message: str
    code: str

    def __str__(self) -> str:
        where = self.path or "<document>"
        suffix = f" (line {self.line})" if self.line is not None else ""
        return f"{where}: {self.message}{suffix}"


class PolicyInvalid(Exception):
    """The document is not a valid policy; ``errors`` lists every problem found, in line order."""

    code = "policy.invalid"

    def __init__(self, errors: list[PolicyError]) -> None:
        self.errors = sorted(errors, key=lambda e: (e.line or 0, e.path))
        super().__init__("\n".join(str(e) for e in self.errors))


# Every code the loader can emit, so docs and tests can check the list is complete.
ERROR_CODES: dict[str, str] = {
    "policy.yaml_syntax": "the text is not well-formed YAML",
    "policy.yaml_alias": "a YAML anchor or alias (&name, *name); a policy writes every value out",
    "policy.yaml_tag": "an explicit YAML tag (!!binary, !!set, ...); a policy holds plain values",
    "policy.too_large": "the document is larger than a policy may be (64 KiB)",
    "policy.too_deep": "collections nested deeper than a policy ever needs (16 levels)",
    "policy.control_character": "a control character the YAML reader cannot accept",
    "policy.not_a_mapping": "the document (or a section) must be a mapping of fields",
    "policy.duplicate_key": "the same field is written twice in one mapping",
    "policy.unknown_field": "a field the schema does not know (often a typo)",
    "policy.missing_field": "a required field is absent",
    "policy.invalid_type": "a value of the wrong type (text where a number is expected, ...)",
    "policy.invalid_choice": "a value outside the allowed set",
    "policy.invalid_value": "a value the field cannot accept",
    "policy.out_of_range": "a number outside its allowed range",
    "policy.invalid_duration": "not a duration such as 45s, 90m, 2h, 1h30m or 30d",
    "policy.invalid_size": "not a size such as 500KB, 100MB or 2GiB",
    "policy.invalid_timezone": "not an IANA time zone name",
    "policy.invalid_day": "not a weekday, range or list such as mon-fri or sat,sun",
    "policy.invalid_time_window": "not a window such as 08:00-18:00 (end after start)",
    "policy.invalid_glob": "not an absolute path pattern for that platform",
    "policy.invalid_language": "not a language tag such as es, en or es-MX",
    "policy.invalid_scale": "not a survey scale such as 1-5",
    "policy.invalid_mode": "a session mode the capability cannot run in",
    "policy.unsupported_version": "a schema version this engine does not understand",
    "policy.inconsistent": "two fields contradict each other",
    "policy.silence_is_not_consent": "on_timeout: allow; a prompt left unanswered is a refusal",
    "policy.invalid_ical": "the iCalendar text cannot be read",
    "policy.pre_authorised_not_approved": "a pre-authorised runbook that is not also approved",
}
