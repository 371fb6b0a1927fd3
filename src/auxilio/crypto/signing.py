"""Signed documents with domain separation.

Every Ed25519 signature Auxilio makes is over the canonical JSON of ``{"kind": K, "payload": P}``:
orjson with sorted keys, UTF-8, no whitespace. ``K`` names the purpose and version
(``auxilio.grant.v1``), so a signature made for one purpose never verifies as another: a consent
receipt cannot be presented as a grant, a challenge answer cannot be replayed as an E2E key.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from auxilio.crypto.errors import KeyEncodingInvalid, SignatureInvalid
from auxilio.crypto.keys import b64url_decode, b64url_encode
from auxilio.protocol.types import SignedDocument

_KIND = re.compile(r"^auxilio(\.[a-z0-9_]+)+\.v[0-9]+$")


class DocumentKind(StrEnum):
    """Purposes signed today. Other packages may use their own kind strings of the same shape
    (the audit chain's checkpoints use ``auxilio.audit_checkpoint.v1``)."""

    GRANT = "auxilio.grant.v1"
    CONSENT_RECEIPT = "auxilio.consent_receipt.v1"
    EXTENSION_RECEIPT = "auxilio.extension_receipt.v1"
    SESSION_REPORT = "auxilio.session_report.v1"
    E2E_AGENT_KEY = "auxilio.e2e_agent_key.v1"
    AGENT_AUTH = "auxilio.agent_auth.v1"
    RUNBOOK = "auxilio.runbook.v1"
    # Unattended access (docs/unattended.md): the owner's pre-authorisation and its revocation
    # (device-signed), the device's proof at enrolment, the server's order for an automated run
    # and the device's signed result of it.
    PRE_AUTHORISATION = "auxilio.pre_authorisation.v1"
    PRE_AUTHORISATION_REVOCATION = "auxilio.pre_authorisation_revocation.v1"
    ENROLMENT = "auxilio.enrolment.v1"
    AUTOMATION_ORDER = "auxilio.automation_order.v1"
    AUTOMATION_RESULT = "auxilio.automation_result.v1"


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8. Values must already be JSON types (use
    ``model_dump(mode="json")``): orjson would serialise a datetime, but two spellings of one
    instant must not give two documents."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError as exc:
        raise ValueError(f"not canonical JSON material: {exc}") from exc


def _signed_bytes(kind: str, payload: Mapping[str, Any]) -> bytes:
    if not _KIND.match(kind):
        raise ValueError(f"document kind {kind!r} must look like 'auxilio.<purpose>.v<N>'")
    return canonical_json({"kind": kind, "payload": dict(payload)})


def sign_bytes_for(key: Ed25519PrivateKey, *, kind: str, payload: Mapping[str, Any]) -> bytes:
    """The raw signature of a payload, for messages that carry their fields in the clear
    (``e2e.hello``, ``agent.auth``) and rebuild the payload to verify."""
    return key.sign(_signed_bytes(kind, payload))


def check_signature_for(
    public_key: Ed25519PublicKey, signature: str, *, kind: str, payload: Mapping[str, Any]
) -> None:
    try:
        public_key.verify(b64url_decode(signature), _signed_bytes(kind, payload))
    except (InvalidSignature, KeyEncodingInvalid) as exc:
        raise SignatureInvalid(f"signature does not verify as {kind}") from exc


def sign_document(
    key: Ed25519PrivateKey, payload: Mapping[str, Any], *, kind: str
) -> SignedDocument:
    body = _signed_bytes(kind, payload)
    return SignedDocument(body=b64url_encode(body), signature=b64url_encode(key.sign(body)))


def verify_document(
    public_key: Ed25519PublicKey, signed: SignedDocument, *, kind: str
) -> dict[str, Any]:
    """Return the payload of ``signed`` if ``public_key`` signed it for ``kind``.

    Raises ``SignatureInvalid`` for a bad signature, another signer, another kind, or a body
    that is not canonical JSON (one document has exactly one byte spelling).
    """
    try:
        body = b64url_decode(signed.body)
        public_key.verify(b64url_decode(signed.signature), body)
    except (InvalidSignature, KeyEncodingInvalid) as exc:
        raise SignatureInvalid(f"signature does not verify as {kind}") from exc
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise SignatureInvalid("signed body is not JSON") from exc
    if (
        not isinstance(document, dict)
        or set(document) != {"kind", "payload"}
        or not isinstance(document["payload"], dict)
        or canonical_json(document) != body
    ):
        raise SignatureInvalid("signed body is not a canonical signed document")
    if document["kind"] != kind:
        # Verified, but for another purpose: exactly the replay that domain separation stops.
        raise SignatureInvalid(f"document was signed as {document['kind']!r}, not {kind!r}")
    payload: dict[str, Any] = document["payload"]
    return payload


def sign_agent_challenge(
    device_key: Ed25519PrivateKey, *, challenge: str, server_fingerprint: str
) -> str:
    """Answer to ``server.hello``: proves the agent holds its device key, bound to this server so
    a malicious server cannot forward the answer to another one."""
    payload = {"challenge": challenge, "server_fingerprint": server_fingerprint}
    return b64url_encode(sign_bytes_for(device_key, kind=DocumentKind.AGENT_AUTH, payload=payload))


def verify_agent_challenge(
    device_public_key: Ed25519PublicKey, signature: str, *, challenge: str, server_fingerprint: str
) -> None:
    payload = {"challenge": challenge, "server_fingerprint": server_fingerprint}
    check_signature_for(device_public_key, signature, kind=DocumentKind.AGENT_AUTH, payload=payload)
