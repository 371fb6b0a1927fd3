"""Approved runbooks: scripts the server signed at approval (kind ``auxilio.runbook.v1``).

The approval is a signature by the server's key over the whole runbook: the script, its
interpreter, its declared parameters and time limit, and who wrote and approved it. The agent runs
a runbook only if that signature verifies with the pinned server key AND the grant pins the
SHA-256 of the signed body (``runbook_digest``): an altered script fails the first check, an
approved runbook the session was not granted fails the second.

Parameters are typed. ``validate_parameters`` is the one check, run by the server when a session
is granted a runbook, by the technician's client before sending and by the agent before running.
Values reach the script as environment variables (``AUXILIO_PARAM_<NAME>``) or as separate
arguments, never as shell text.
"""

from __future__ import annotations

import hashlib
import importlib
import re
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal, Self

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import Field, StringConstraints, ValidationError, field_validator, model_validator

from auxilio.crypto.errors import CryptoError, SignatureInvalid
from auxilio.crypto.keys import b64url_decode
from auxilio.crypto.signing import DocumentKind, sign_document, verify_document
from auxilio.protocol.types import Identifier, ShortText, SignedDocument, UtcDatetime, WireModel

MAX_SCRIPT_BYTES = 64 * 1024
MAX_TIMEOUT_SECONDS = 3600
# Integers a JSON reader anywhere (a browser, the database's JSON column) keeps exactly.
SAFE_INTEGER = 2**53
MAX_PATTERN_LENGTH = 200

SafeInt = Annotated[int, Field(ge=-SAFE_INTEGER, le=SAFE_INTEGER)]

ParameterName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
Interpreter = Literal["sh", "bash", "powershell", "python"]
RunbookPlatform = Literal["linux", "macos", "windows"]


class RunbookError(CryptoError):
    code = "runbook.invalid"


class RunbookUnsigned(RunbookError):
    """Not signed by the server's key (or not a runbook at all)."""

    code = "runbook.unsigned"


class RunbookMalformed(RunbookError):
    code = "runbook.malformed"


class ParameterInvalid(RunbookError):
    code = "runbook.parameter_invalid"

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"parameter {name!r}: {message}")
        self.name = name


class RunbookParameter(WireModel):
    """One declared parameter. ``string`` values may be constrained by ``pattern`` (a full
    match) and ``max_length``; ``integer`` by ``minimum`` and ``maximum``; ``choice`` lists its
    ``choices``. Control characters are refused in every string whatever the pattern says."""

    name: ParameterName
    type: Literal["string", "integer", "boolean", "choice"]
    description: Annotated[str, StringConstraints(max_length=500)] = ""
    required: bool = True
    default: Annotated[str, StringConstraints(max_length=4096)] | SafeInt | bool | None = None
    pattern: (
        Annotated[str, StringConstraints(min_length=1, max_length=MAX_PATTERN_LENGTH)] | None
    ) = None
    max_length: int = Field(default=256, ge=1, le=4096)
    minimum: SafeInt | None = None
    maximum: SafeInt | None = None
    choices: tuple[Annotated[str, StringConstraints(min_length=1, max_length=200)], ...] = Field(
        default=(), max_length=64
    )
    pass_as: Literal["env", "argument"] = "env"  # noqa: S105 -- not a password

    @field_validator("pattern")
    @classmethod
    def _linear_pattern(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            check_pattern(pattern)
        return pattern

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.type == "choice" and not self.choices:
            raise ValueError("a choice parameter lists its choices")
        if self.type != "choice" and self.choices:
            raise ValueError("only a choice parameter has choices")
        if self.pattern is not None and self.type != "string":
            raise ValueError("only a string parameter has a pattern")
        if (self.minimum is not None or self.maximum is not None) and self.type != "integer":
            raise ValueError("only an integer parameter has minimum or maximum")
        if self.default is not None:
            check_value(self, self.default)  # ParameterInvalid: read_runbook reports it malformed
        return self

    @property
    def env_name(self) -> str:
        return f"AUXILIO_PARAM_{self.name.upper()}"


class Runbook(WireModel):
    organisation_id: Identifier
    runbook_id: Identifier
    version: int = Field(ge=1)
    name: ShortText
    description: Annotated[str, StringConstraints(max_length=4000)] = ""
    platforms: tuple[RunbookPlatform, ...] = Field(min_length=1, max_length=3)
    interpreter: Interpreter
    script: Annotated[str, StringConstraints(min_length=1, max_length=MAX_SCRIPT_BYTES)]
    parameters: tuple[RunbookParameter, ...] = Field(default=(), max_length=16)
    timeout_seconds: int = Field(ge=1, le=MAX_TIMEOUT_SECONDS)
    author_id: Identifier
    author_name: ShortText
    approved_by_id: Identifier
    approved_by_name: ShortText
    approved_at: UtcDatetime

    @model_validator(mode="after")
    def _unique_parameters(self) -> Self:
        names = [p.name for p in self.parameters]
        if len(names) != len(set(names)):
            raise ValueError("a parameter is declared twice")
        return self


# -- patterns that match in linear time ---------------------------------------------------------

# The stdlib's own regex parser (what re.compile runs), not a second one; it has no stubs
# (``sre_parse``, its old name, warns that it is deprecated), hence Any.
_sre: Any = importlib.import_module("re._parser")
_REPEATS = frozenset({_sre.MAX_REPEAT, _sre.MIN_REPEAT, _sre.POSSESSIVE_REPEAT})
_REFUSED = frozenset({_sre.GROUPREF, _sre.GROUPREF_EXISTS})


def check_pattern(pattern: str) -> None:
    """Refuse (``ValueError``) a pattern that does not compile or whose match can backtrack
    exponentially: a repeated group that holds another repeat of a varying count (``(a+)+``,
    ``(.*a){12}``) or an alternation (``(a|aa)+``), or a back-reference. A pattern is matched
    with ``re.fullmatch`` on the server (in its event loop, at the draft and at the grant) and
    on the device (in the session's loop) against the technician's value: Python's ``re`` has
    no time limit, so a pattern that can take hours must never be signed. What remains is
    polynomial at worst (``a*a*b``), over a value of at most ``max_length`` characters."""
    try:
        re.compile(pattern)
        tree = _sre.parse(pattern)
    except re.error as exc:
        raise ValueError(f"pattern does not compile: {exc}") from exc
    _walk(tree, repeated=False)


def _walk(nodes: Iterable[tuple[Any, Any]], *, repeated: bool) -> None:
    """``repeated``: these nodes sit inside a repeat that may match more than once."""
    for op, arg in nodes:
        if op in _REFUSED:
            raise ValueError("pattern must not use a back-reference")
        if op in _REPEATS:
            low, high, body = arg
            if repeated and low != high:  # a fixed count ({2}) is only a longer sequence
                raise ValueError("pattern must not repeat a group that itself repeats")
            _walk(body, repeated=repeated or high != 1)
        elif op is _sre.BRANCH:
            if repeated:
                raise ValueError("pattern must not repeat a group with alternatives ('|')")
            for branch in arg[1]:
                _walk(branch, repeated=repeated)
        elif op is _sre.SUBPATTERN:
            _walk(arg[-1], repeated=repeated)
        elif op in (_sre.ASSERT, _sre.ASSERT_NOT):
            _walk(arg[1], repeated=repeated)
        elif op is _sre.ATOMIC_GROUP:
            _walk(arg, repeated=repeated)


# -- values -------------------------------------------------------------------------------------


def check_value(spec: RunbookParameter, value: object) -> str:
    """The canonical text of ``value`` for ``spec``; raises ``ParameterInvalid``."""
    name = spec.name
    if spec.type == "boolean":
        if not isinstance(value, bool):
            raise ParameterInvalid(name, "must be true or false")
        return "true" if value else "false"
    if spec.type == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParameterInvalid(name, "must be an integer")
        if not -SAFE_INTEGER <= value <= SAFE_INTEGER:
            raise ParameterInvalid(name, f"must be between {-SAFE_INTEGER} and {SAFE_INTEGER}")
        if spec.minimum is not None and value < spec.minimum:
            raise ParameterInvalid(name, f"must be at least {spec.minimum}")
        if spec.maximum is not None and value > spec.maximum:
            raise ParameterInvalid(name, f"must be at most {spec.maximum}")
        return str(value)
    if not isinstance(value, str):
        raise ParameterInvalid(name, "must be text")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ParameterInvalid(name, "must not contain control characters")
    if spec.type == "choice":
        if value not in spec.choices:
            raise ParameterInvalid(name, f"must be one of {', '.join(spec.choices)}")
        return value
    if len(value) > spec.max_length:
        raise ParameterInvalid(name, f"must be at most {spec.max_length} characters")
    if spec.pattern is not None and re.fullmatch(spec.pattern, value) is None:
        raise ParameterInvalid(name, f"must match {spec.pattern}")
    return value


def validate_parameters(runbook: Runbook, values: Mapping[str, object]) -> dict[str, str]:
    """Every declared parameter's canonical text (defaults filled in); unknown names, missing
    required ones and values of the wrong type raise ``ParameterInvalid``."""
    declared = {p.name: p for p in runbook.parameters}
    for name in values:
        if name not in declared:
            raise ParameterInvalid(name, "is not a parameter of this runbook")
    out: dict[str, str] = {}
    for spec in runbook.parameters:
        if spec.name in values:
            out[spec.name] = check_value(spec, values[spec.name])
        elif spec.default is not None:
            out[spec.name] = check_value(spec, spec.default)
        elif spec.required:
            raise ParameterInvalid(spec.name, "is required")
    return out


def sign_runbook(server_key: Ed25519PrivateKey, runbook: Runbook) -> SignedDocument:
    return sign_document(server_key, runbook.model_dump(mode="json"), kind=DocumentKind.RUNBOOK)


def read_runbook(server_public_key: Ed25519PublicKey, signed: SignedDocument) -> Runbook:
    """The runbook if the server signed it; ``RunbookUnsigned`` otherwise (an altered script is
    a bad signature)."""
    try:
        payload = verify_document(server_public_key, signed, kind=DocumentKind.RUNBOOK)
    except SignatureInvalid as exc:
        raise RunbookUnsigned(str(exc)) from exc
    try:
        return Runbook.model_validate(payload)
    except ValidationError as exc:
        raise RunbookMalformed(f"signed runbook is invalid: {exc.error_count()} error(s)") from exc
    except ParameterInvalid as exc:  # a default that fails its own declaration
        raise RunbookMalformed(f"signed runbook is invalid: {exc}") from exc


def runbook_digest(signed: SignedDocument) -> str:
    """SHA-256 (hex) of the signed body bytes: what a grant's ``RunbookPin`` names."""
    return hashlib.sha256(b64url_decode(signed.body)).hexdigest()
