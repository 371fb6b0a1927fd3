"""Automated runs (docs/unattended.md, "Automated runs"): the server's order and the device's
signed outcome.

An ``AutomationOrder`` (kind ``auxilio.automation_order.v1``) is signed by the server: one run of
an approved runbook (the runbook's own signed document, exactly as approved, and its parameters)
or one diagnostics collection (the sections), on one device (id and identity key), inside one of
the owner's pre-authorisations, before ``not_after``. The agent acts on it only if the signature
verifies with the server key it pinned, the nonce is new, and its own copy of the
pre-authorisation allows it now.

An ``AutomationOutcome`` (kind ``auxilio.automation_result.v1``) is signed by the device: the
run's status (``done``, ``failed``, or ``refused`` with a code), exit code and output (bounded,
with its SHA-256), echoing the order's run id and nonce, so the server can tell a result from a
replay of another run's.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal, Self

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import Field, StringConstraints, ValidationError, model_validator

from auxilio.crypto.errors import CryptoError
from auxilio.crypto.signing import DocumentKind, sign_document, verify_document
from auxilio.protocol.types import (
    Identifier,
    Key32,
    Nonce,
    Sha256Hex,
    SignedDocument,
    UtcDatetime,
    WireModel,
)

# The output a result carries, in UTF-8 bytes; more is cut and ``truncated`` set.
MAX_OUTPUT_BYTES = 64 * 1024
# The sections a diagnostics order may name (agent/capabilities/diagnostics_sections.py).
DIAGNOSTICS_SECTIONS = ("os", "cpu", "memory", "disks", "network", "connectivity", "processes",
                        "services", "recent_errors")  # fmt: skip

Section = Literal["os", "cpu", "memory", "disks", "network", "connectivity", "processes",
                  "services", "recent_errors"]  # fmt: skip
ParamValue = Annotated[str, StringConstraints(max_length=4096)] | int | bool
Code = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)+$", max_length=100)]


class AutomationInvalid(CryptoError):
    code = "automation.invalid"


class AutomationOrder(WireModel):
    run_id: Identifier
    organisation_id: Identifier
    device_id: Identifier
    device_public_key: Key32
    pre_authorisation_id: Identifier
    kind: Literal["runbook", "diagnostics"]
    # kind "runbook": the runbook's signed document as approved (crypto/runbooks.py) and its
    # parameters; kind "diagnostics": the sections to collect.
    runbook: SignedDocument | None = None
    params: dict[Annotated[str, StringConstraints(max_length=32)], ParamValue] = Field(
        default_factory=dict, max_length=16
    )
    sections: tuple[Section, ...] = Field(default=(), max_length=len(DIAGNOSTICS_SECTIONS))
    ticket_ref: Annotated[str, StringConstraints(max_length=200)] = ""
    issued_at: UtcDatetime
    not_after: UtcDatetime
    nonce: Nonce

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.not_after <= self.issued_at:
            raise ValueError("not_after must be after issued_at")
        if self.kind == "runbook":
            if self.runbook is None or self.sections:
                raise ValueError("a runbook order carries a runbook and no sections")
        elif self.runbook is not None or self.params or not self.sections:
            raise ValueError("a diagnostics order carries sections and no runbook")
        if len(set(self.sections)) != len(self.sections):
            raise ValueError("a section appears twice")
        return self

    @property
    def capability(self) -> str:
        return "runbooks" if self.kind == "runbook" else "diagnostics"


def output_sha256(output: str) -> str:
    return hashlib.sha256(output.encode()).hexdigest()


def bounded_output(text: str, limit: int = MAX_OUTPUT_BYTES) -> tuple[str, bool]:
    """``text`` cut to at most ``limit`` UTF-8 bytes (never inside a character), and whether it
    was cut."""
    data = text.encode()
    if len(data) <= limit:
        return text, False
    return data[:limit].decode("utf-8", errors="ignore"), True


class AutomationOutcome(WireModel):
    run_id: Identifier
    nonce: Nonce
    status: Literal["done", "failed", "refused"]
    code: Code | None = None  # why it failed or was refused
    exit_code: int | None = None
    output: str = ""
    output_sha256: Sha256Hex
    truncated: bool = False
    started_at: UtcDatetime
    finished_at: UtcDatetime

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if len(self.output.encode()) > MAX_OUTPUT_BYTES:
            raise ValueError(f"output is at most {MAX_OUTPUT_BYTES} bytes")
        if output_sha256(self.output) != self.output_sha256:
            raise ValueError("output_sha256 is not the SHA-256 of output")
        if self.finished_at < self.started_at:
            raise ValueError("finished_at is before started_at")
        if self.status != "done" and self.code is None:
            raise ValueError("a failed or refused run names its code")
        return self


def make_outcome(**fields: Any) -> AutomationOutcome:
    """An outcome with its output bounded and hashed."""
    output, cut = bounded_output(fields.pop("output", ""))
    truncated = bool(fields.pop("truncated", False)) or cut
    return AutomationOutcome(
        output=output, output_sha256=output_sha256(output), truncated=truncated, **fields
    )


def sign_order(server_key: Ed25519PrivateKey, order: AutomationOrder) -> SignedDocument:
    return sign_document(server_key, order.model_dump(mode="json"),
                         kind=DocumentKind.AUTOMATION_ORDER)  # fmt: skip


def verify_order(server_public_key: Ed25519PublicKey, signed: SignedDocument) -> AutomationOrder:
    """The order if the server signed it; ``SignatureInvalid`` or ``AutomationInvalid``."""
    payload = verify_document(server_public_key, signed, kind=DocumentKind.AUTOMATION_ORDER)
    try:
        return AutomationOrder.model_validate(payload)
    except ValidationError as exc:
        raise AutomationInvalid(f"signed order is invalid: {exc.error_count()} error(s)") from exc


def sign_outcome(device_key: Ed25519PrivateKey, outcome: AutomationOutcome) -> SignedDocument:
    return sign_document(device_key, outcome.model_dump(mode="json"),
                         kind=DocumentKind.AUTOMATION_RESULT)  # fmt: skip


def verify_outcome(
    device_public_key: Ed25519PublicKey, signed: SignedDocument
) -> AutomationOutcome:
    """The outcome if the device signed it; ``SignatureInvalid`` or ``AutomationInvalid``."""
    payload = verify_document(device_public_key, signed, kind=DocumentKind.AUTOMATION_RESULT)
    try:
        return AutomationOutcome.model_validate(payload)
    except ValidationError as exc:
        raise AutomationInvalid(f"signed result is invalid: {exc.error_count()} error(s)") from exc

