"""Policy text -> :class:`Policy`, or :class:`PolicyInvalid` listing every located error."""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from auxilio.policy.errors import PolicyError, PolicyInvalid
from auxilio.policy.schema import OnTimeout, Policy, SessionMode
from auxilio.policy.yamlsource import Path, dotted, line_for, load_yaml

_TYPE_CODES = {
    "missing": "policy.missing_field",
    "extra_forbidden": "policy.unknown_field",
    "literal_error": "policy.invalid_choice",
    "enum": "policy.invalid_choice",
    "greater_than": "policy.out_of_range",
    "greater_than_equal": "policy.out_of_range",
    "less_than": "policy.out_of_range",
    "less_than_equal": "policy.out_of_range",
    "too_short": "policy.invalid_value",
    "model_type": "policy.not_a_mapping",
    "dict_type": "policy.not_a_mapping",
}

# Which capabilities may run in the modes that are not "attended" (see docs/policy.md).
_MODE_ONLY_FOR = {
    SessionMode.CHAT_ONLY: {"chat"},
    SessionMode.AUTOMATED: {"diagnostics", "runbooks"},
}


def parse_policy(text: str, *, version_label: str | None = None) -> Policy:
    """Validate a YAML policy document.  ``version_label`` is the server's id for this version."""
    data, lines, errors = load_yaml(text)
    if errors:
        raise PolicyInvalid(errors)
    if not isinstance(data, dict):
        raise PolicyInvalid(
            [
                PolicyError(
                    "",
                    lines.get(()),
                    "the policy must be a mapping of sections",
                    "policy.not_a_mapping",
                )
            ]
        )
    if version_label is not None:
        data = {**data, "version_label": version_label}
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        raise PolicyInvalid(_without_echoes(exc.errors(), lines)) from None
    problems = cross_check(policy, lines)
    if problems:
        raise PolicyInvalid(problems)
    return policy


def _without_echoes(raw: list[Any], lines: dict[Path, int]) -> list[PolicyError]:
    # A list whose only item is invalid also reports "too short"; that second error is an echo
    # of the first and would send the reader looking for a problem that is not there.
    errors = [_from_pydantic(err, lines) for err in raw]
    paths = [e.path for e in errors]
    return [
        e
        for e, err in zip(errors, raw, strict=True)
        if not (err["type"] == "too_short" and any(p.startswith(e.path + ".") for p in paths))
    ]


def _from_pydantic(err: Any, lines: dict[Path, int]) -> PolicyError:
    # Dict-key errors carry a synthetic "[key]" step; the path a person reads has no such thing.
    loc: Path = tuple(p for p in err["loc"] if p != "[key]")
    kind: str = err["type"]
    code = kind if kind.startswith("policy.") else _TYPE_CODES.get(kind, "policy.invalid_type")
    message: str = err["msg"]
    if kind == "too_short":
        message = "must list at least one item"
    elif kind == "missing":
        message = f'"{loc[-1]}" is required'
    elif kind == "extra_forbidden":
        message = f'unknown field "{loc[-1]}"' + _did_you_mean(loc)
    elif (
        not kind.startswith("policy.")
        and "input" in err
        and not isinstance(err["input"], dict | list)
    ):
        message = f'"{err["input"]}": {message[0].lower()}{message[1:]}'
    return PolicyError(dotted(loc), line_for(lines, loc), message, code)


def _did_you_mean(loc: Path) -> str:
    model = _model_at(loc[:-1])
    if model is None:
        return ""
    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1)
    return f' (did you mean "{close[0]}"?)' if close else ""


def _model_at(loc: Path) -> type[BaseModel] | None:
    """Follow ``loc`` through the schema's annotations to the model that holds its fields."""
    current: Any = Policy
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            if field is None:
                return None
            current = field.annotation
        elif typing.get_origin(current) in (tuple, list):
            current = typing.get_args(current)[0]
        elif typing.get_origin(current) is dict:
            current = typing.get_args(current)[1]
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _unwrap(options[0])
    return annotation


_SILENCE_IS_NOT_CONSENT = (
    "silence never means yes in an attended session: on_timeout must be deny "
    "(unattended access uses the owner's pre-authorisation instead)"
)


def cross_check(policy: Policy, lines: dict[Path, int]) -> list[PolicyError]:
    """Rules that span fields; each error points at the field that has to change."""
    errors: list[PolicyError] = []

    def add(path: Path, message: str, code: str = "policy.inconsistent") -> None:
        errors.append(PolicyError(dotted(path), line_for(lines, path), message, code))

    listed = policy.capabilities.listed()
    for name, listed_rule in listed.items():
        base = ("capabilities", *name.split("."))
        for index, mode in enumerate(listed_rule.modes):
            allowed = _MODE_ONLY_FOR.get(mode)
            if allowed is not None and name not in allowed:
                add(
                    (*base, "modes", index),
                    f'"{name}" cannot run in {mode} mode',
                    "policy.invalid_mode",
                )
    # A prompt is only ever shown to a person at the device (attended); unattended access rests
    # on the owner's pre-authorisation instead. So silence can never mean yes.
    if policy.consent.on_timeout is OnTimeout.ALLOW:
        add(("consent", "on_timeout"), _SILENCE_IS_NOT_CONSENT, "policy.silence_is_not_consent")
    for name, override in policy.consent.capabilities.items():
        if override.on_timeout is OnTimeout.ALLOW:
            add(
                ("consent", "capabilities", name, "on_timeout"),
                _SILENCE_IS_NOT_CONSENT,
                "policy.silence_is_not_consent",
            )
    for name, override in policy.consent.capabilities.items():
        path = ("consent", "capabilities", name)
        catalogued = listed.get(name)
        if catalogued is None:
            add(
                path, f'consent is set for "{name}", which the capabilities catalogue does not list'
            )
        elif override.required is not None and catalogued.consent != "inherit":
            add(
                (*path, "required"),
                f'consent for "{name}" is set here and in capabilities.{name}.consent; keep one',
            )
    sessions = policy.sessions
    if sessions.warn_before >= sessions.max_duration:
        add(
            ("sessions", "warn_before"),
            "the warning must come before the end (warn_before < max_duration)",
        )
    unattended = policy.unattended
    if unattended is not None and unattended.owner_pre_authorisation is not None:
        for index, name in enumerate(unattended.owner_pre_authorisation.scope):
            scoped = listed.get(name)
            if scoped is None or SessionMode.UNATTENDED not in scoped.modes:
                add(
                    ("unattended", "owner_pre_authorisation", "scope", index),
                    f'"{name}" is not a capability listed with mode unattended',
                )
    return errors
