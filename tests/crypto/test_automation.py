"""Automated runs: the server's signed order and the device's signed outcome."""

from __future__ import annotations

import datetime as dt
import secrets

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from auxilio.crypto.automation import (
    MAX_OUTPUT_BYTES,
    AutomationInvalid,
    AutomationOrder,
    AutomationOutcome,
    bounded_output,
    make_outcome,
    output_sha256,
    sign_order,
    sign_outcome,
    verify_order,
    verify_outcome,
)
from auxilio.crypto.errors import SignatureInvalid
from auxilio.crypto.keys import b64url_encode, encode_public_key
from auxilio.crypto.signing import DocumentKind, sign_document
from auxilio.protocol.types import SignedDocument

NOW = dt.datetime(2026, 12, 2, 10, 0, tzinfo=dt.UTC)
SERVER, DEVICE = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()


def order(**changes: object) -> AutomationOrder:
    fields: dict[str, object] = dict(
        run_id="run-1", organisation_id="org-1", device_id="dev-1",
        device_public_key=encode_public_key(DEVICE.public_key()), pre_authorisation_id="pa-1",
        kind="diagnostics", sections=("os", "memory"), ticket_ref="#4 Printer",
        issued_at=NOW, not_after=NOW + dt.timedelta(minutes=10),
        nonce=b64url_encode(secrets.token_bytes(16)),
    )  # fmt: skip
    fields.update(changes)
    return AutomationOrder.model_validate(fields)


def outcome(**changes: object) -> AutomationOutcome:
    fields: dict[str, object] = dict(
        run_id="run-1", nonce="n" * 22, status="done", exit_code=0, output="ok\n",
        started_at=NOW, finished_at=NOW + dt.timedelta(seconds=2),
    )  # fmt: skip
    fields.update(changes)
    return make_outcome(**fields)


def test_order_round_trip() -> None:
    signed = sign_order(SERVER, order())
    got = verify_order(SERVER.public_key(), signed)
    assert got.kind == "diagnostics" and got.sections == ("os", "memory")
    assert got.capability == "diagnostics"


def test_order_signed_by_another_key_is_refused() -> None:
    signed = sign_order(Ed25519PrivateKey.generate(), order())
    with pytest.raises(SignatureInvalid):
        verify_order(SERVER.public_key(), signed)


def test_order_altered_is_refused() -> None:
    signed = sign_order(SERVER, order())
    other = sign_order(SERVER, order(sections=("os", "memory", "disks")))
    with pytest.raises(SignatureInvalid):
        verify_order(SERVER.public_key(), SignedDocument(body=other.body,
                                                         signature=signed.signature))


def test_a_result_signature_is_not_an_order() -> None:
    # Domain separation: the device's outcome cannot pass as the server's order.
    signed = sign_document(SERVER, order().model_dump(mode="json"),
                           kind=DocumentKind.AUTOMATION_RESULT)
    with pytest.raises(SignatureInvalid):
        verify_order(SERVER.public_key(), signed)


def test_order_payload_not_an_order_is_invalid() -> None:
    signed = sign_document(SERVER, {"run_id": "x"}, kind=DocumentKind.AUTOMATION_ORDER)
    with pytest.raises(AutomationInvalid):
        verify_order(SERVER.public_key(), signed)


@pytest.mark.parametrize("changes", [
    {"kind": "runbook"},  # a runbook order without its runbook
    {"sections": ()},  # a diagnostics order without sections
    {"sections": ("os", "os")},
    {"sections": ("passwords",)},
    {"params": {"lines": 5}},  # parameters belong to runbooks
    {"not_after": NOW},
    {"runbook": SignedDocument(body="e30AA", signature="x" * 86)},  # runbook with diagnostics
])  # fmt: skip
def test_inconsistent_orders_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        order(**changes)


def test_runbook_order() -> None:
    runbook = SignedDocument(body="e30AA", signature="x" * 86)
    got = order(kind="runbook", sections=(), runbook=runbook, params={"lines": 20})
    assert got.capability == "runbooks" and got.params == {"lines": 20}


def test_outcome_round_trip() -> None:
    signed = sign_outcome(DEVICE, outcome())
    got = verify_outcome(DEVICE.public_key(), signed)
    assert got.status == "done" and got.output == "ok\n"
    assert got.output_sha256 == output_sha256("ok\n") and not got.truncated


def test_outcome_from_another_device_is_refused() -> None:
    signed = sign_outcome(Ed25519PrivateKey.generate(), outcome())
    with pytest.raises(SignatureInvalid):
        verify_outcome(DEVICE.public_key(), signed)


def test_outcome_whose_hash_does_not_match_is_invalid() -> None:
    payload = outcome().model_dump(mode="json")
    payload["output"] = "tampered"
    signed = sign_document(DEVICE, payload, kind=DocumentKind.AUTOMATION_RESULT)
    with pytest.raises(AutomationInvalid):
        verify_outcome(DEVICE.public_key(), signed)


def test_output_is_bounded_and_marked() -> None:
    got = outcome(output="é" * MAX_OUTPUT_BYTES)
    assert got.truncated and len(got.output.encode()) <= MAX_OUTPUT_BYTES
    assert got.output == "é" * (MAX_OUTPUT_BYTES // 2)  # never cut inside a character
    assert bounded_output("abc") == ("abc", False)


def test_outcome_over_the_limit_is_refused() -> None:
    text = "x" * (MAX_OUTPUT_BYTES + 1)
    with pytest.raises(ValidationError):
        AutomationOutcome(run_id="r", nonce="n" * 22, status="done", output=text,
                          output_sha256=output_sha256(text), started_at=NOW, finished_at=NOW)


@pytest.mark.parametrize("changes", [
    {"status": "refused"},  # no code
    {"status": "failed", "code": "Not A Code"},
    {"finished_at": NOW - dt.timedelta(seconds=1)},
])  # fmt: skip
def test_inconsistent_outcomes_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        outcome(**changes)
