"""The survey's signed single-use link: ``base64url(payload) "." base64url(signature)``.

The payload is canonical JSON (``crypto.signing.canonical_json``) of the survey id, its subject,
the survey's current nonce and the expiry; the signature is the server key's Ed25519 signature
over it with domain separation (kind ``auxilio.survey_link.v1``), so no other signed document of
the server verifies as a link, and a link verifies as nothing else. Single use is the survey's
state, not the token's: the row is answered once, and a renewed link replaces the nonce.
"""

from __future__ import annotations

import binascii
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from auxilio.crypto.errors import KeyEncodingInvalid, SignatureInvalid
from auxilio.crypto.keys import b64url_decode, b64url_encode
from auxilio.crypto.signing import canonical_json, check_signature_for, sign_bytes_for
from auxilio.server.errors import SurveyLinkInvalid

LINK_KIND = "auxilio.survey_link.v1"
# A link is a URL path segment; anything longer is not one of ours (and is not decoded).
MAX_TOKEN_LENGTH = 1024
_FIELDS = frozenset({"survey_id", "subject", "nonce", "expires_at"})


@dataclass(frozen=True, slots=True)
class LinkPayload:
    survey_id: uuid.UUID
    subject: str
    nonce: str
    expires_at: datetime


def _payload(link: LinkPayload) -> dict[str, str]:
    return {
        "survey_id": str(link.survey_id),
        "subject": link.subject,
        "nonce": link.nonce,
        "expires_at": link.expires_at.astimezone(UTC).isoformat(),
    }


def make_link_token(key: Ed25519PrivateKey, link: LinkPayload) -> str:
    payload = _payload(link)
    signature = sign_bytes_for(key, kind=LINK_KIND, payload=payload)
    return f"{b64url_encode(canonical_json(payload))}.{b64url_encode(signature)}"


def read_link_token(public_key: Ed25519PublicKey, token: str) -> LinkPayload:
    """The link's payload if this server signed it; ``SurveyLinkInvalid`` for anything else
    (malformed, another key, another kind, a changed byte in either half)."""
    if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
        raise SurveyLinkInvalid(reason="malformed")
    body_part, signature = token.split(".")
    try:
        body = b64url_decode(body_part)
        document = orjson.loads(body)
    except (KeyEncodingInvalid, ValueError, binascii.Error, orjson.JSONDecodeError) as exc:
        raise SurveyLinkInvalid(reason="malformed") from exc
    if (
        not isinstance(document, dict)
        or set(document) != _FIELDS
        or not all(isinstance(v, str) for v in document.values())
        or canonical_json(document) != body
    ):
        raise SurveyLinkInvalid(reason="malformed")
    try:
        check_signature_for(public_key, signature, kind=LINK_KIND, payload=document)
    except SignatureInvalid as exc:
        raise SurveyLinkInvalid(reason="signature") from exc
    try:
        expires_at = datetime.fromisoformat(document["expires_at"])
        survey_id = uuid.UUID(document["survey_id"])
    except ValueError as exc:  # signed by us, so never; but a key shared by mistake might
        raise SurveyLinkInvalid(reason="malformed") from exc
    if expires_at.tzinfo is None:
        raise SurveyLinkInvalid(reason="malformed")
    return LinkPayload(survey_id=survey_id, subject=document["subject"],
                       nonce=document["nonce"], expires_at=expires_at)
