"""An enrolled device's life at the organisation: its token, its enrolment, its revocation
(docs/unattended.md, "Enrolment").

- Staff holding ``device:enrol`` make a token for a device group and an owner (an end user of
  their organisation). The token is 32 random bytes, shown once; only its SHA-256 is kept.
- The agent enrols with it (``POST /agents/enroll``, no user signed in): it presents its device
  key and a proof signed by that key (kind ENROLMENT) naming the token's SHA-256, the key and
  this server's fingerprint, so that a proof made for another server is refused here. The token
  row is locked: two enrolments with one token make one device; the second is told
  ``enrolment.token_used`` and is audited as a reuse (a stolen token) naming the device the
  token enrolled.
- A supervisor (``device:revoke``) revokes a device: its pre-authorisations are void, its live
  support sessions end (reason ``device_revoked``) and, once committed, the node holding its
  connection closes it (``devices/channel.close_device``).

Refusals of an enrolment are audited in the caller's transaction, which the caller commits
before answering (``EnrolmentRefused``).
"""

from __future__ import annotations

import hashlib
import secrets
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.crypto.errors import CryptoError
from auxilio.crypto.keys import b64url_encode, decode_ed25519_public_key, fingerprint
from auxilio.crypto.signing import DocumentKind, verify_document
from auxilio.policy.roles import Role
from auxilio.protocol.frames import EndReason, Party
from auxilio.protocol.types import SignedDocument
from auxilio.server.audit.actions import AuditAction
from auxilio.server.audit.failures import record_failure
from auxilio.server.audit.service import record
from auxilio.server.context import Actor
from auxilio.server.db.base import utcnow
from auxilio.server.devices.models import Device, EnrolmentToken, PreAuthorisationRecord
from auxilio.server.errors import (
    DeviceAlreadyRevoked,
    DeviceNotFound,
    DeviceRevokeReasonInvalid,
    EnrolmentExpiryInvalid,
    EnrolmentGroupInvalid,
    EnrolmentKeyInUse,
    EnrolmentOwnerInvalid,
    EnrolmentProofInvalid,
    EnrolmentRefused,
    EnrolmentTokenAlreadyRevoked,
    EnrolmentTokenExpired,
    EnrolmentTokenInvalid,
    EnrolmentTokenNotFound,
    EnrolmentTokenRevoked,
    EnrolmentTokenUsed,
    Forbidden,
    ValidationFailed,
)
from auxilio.server.identity import service as identity
from auxilio.server.identity.models import Organisation
from auxilio.server.support_sessions import service as sessions
from auxilio.server.support_sessions.consent import _platform as normalise_platform
from auxilio.server.support_sessions.models import SupportSession
from auxilio.server.validation import forbidden_character

TOKEN_BYTES = 32
DEFAULT_EXPIRY_HOURS = 72
MAX_EXPIRY_HOURS = 720
GROUP_MAX = 64
LABEL_MAX = 200
REASON_MAX = 2000


def token_digest(token: str) -> str:
    """What is kept of a token, and what the agent's proof names: SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _org(actor: Actor) -> uuid.UUID:
    if actor.organisation_id is None or actor.id is None:
        raise Forbidden("Enrolment tokens are made by a person of an organisation.")
    return actor.organisation_id


def check_group(text: str) -> str:
    group = unicodedata.normalize("NFC", text).strip()
    if not group or len(group) > GROUP_MAX or forbidden_character(group, multiline=False):
        raise EnrolmentGroupInvalid(field="device_group", max_length=GROUP_MAX)
    return group


def check_label(text: str) -> str:
    """A token's label as the API's schema takes it (``QueryText``): one line, at most
    ``LABEL_MAX`` characters, no control or bidirectional characters; ``validation_failed``
    otherwise, for the console's form as for the API (a NUL was a 500 on PostgreSQL)."""
    label = unicodedata.normalize("NFC", text).strip()
    found = forbidden_character(label, multiline=False)
    if found is not None or len(label) > LABEL_MAX:
        why = found[1] if found is not None else f"at most {LABEL_MAX} characters"
        raise ValidationFailed(f"The label must be one line of text: {why}.", field="label",
                               max_length=LABEL_MAX)  # fmt: skip
    return label


# ---- tokens ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IssuedToken:
    row: EnrolmentToken
    token: str  # the only time the token exists outside the agent


async def create_token(
    db: AsyncSession, *, device_group: str, owner_id: uuid.UUID, label: str = "",
    expires_in_hours: int = DEFAULT_EXPIRY_HOURS, actor: Actor,
) -> IssuedToken:  # fmt: skip
    org = _org(actor)
    group = check_group(device_group)
    label = check_label(label)
    if not 1 <= expires_in_hours <= MAX_EXPIRY_HOURS:
        raise EnrolmentExpiryInvalid(field="expires_in_hours", minimum=1,
                                     maximum=MAX_EXPIRY_HOURS)  # fmt: skip
    owner = await identity.get_user(db, organisation_id=org, user_id=owner_id)
    if owner is None or not owner.is_active or owner.role != Role.END_USER:
        raise EnrolmentOwnerInvalid(field="owner_id")
    token = b64url_encode(secrets.token_bytes(TOKEN_BYTES))
    now = utcnow()
    row = EnrolmentToken(
        organisation_id=org, token_hash=token_digest(token), label=label,
        device_group=group, owner_id=owner.id, created_by=actor.id, created_at=now,
        expires_at=now + timedelta(hours=expires_in_hours),
    )  # fmt: skip
    db.add(row)
    await db.flush()
    await record(db, action=AuditAction.ENROLMENT_TOKEN_CREATED, actor=actor,
                 target_type="enrolment_token", target_id=row.id,
                 details={"token_id": str(row.id), "label": row.label, "device_group": group,
                          "owner_id": str(owner.id),
                          "expires_at": row.expires_at.isoformat()})  # fmt: skip
    return IssuedToken(row=row, token=token)


async def list_tokens(
    db: AsyncSession, *, actor: Actor, limit: int = 50, offset: int = 0
) -> list[EnrolmentToken]:
    query = (
        select(EnrolmentToken)
        .where(EnrolmentToken.organisation_id == _org(actor))
        .order_by(EnrolmentToken.created_at.desc(), EnrolmentToken.id)
        .limit(limit)
        .offset(offset)
    )
    return list((await db.execute(query)).scalars())


def token_state(row: EnrolmentToken, now: datetime | None = None) -> str:
    """live | used | revoked | expired."""
    if row.used_at is not None:
        return "used"
    if row.revoked_at is not None:
        return "revoked"
    return "expired" if row.expires_at <= (now or utcnow()) else "live"


async def revoke_token(db: AsyncSession, *, token_id: uuid.UUID, actor: Actor) -> EnrolmentToken:
    query = select(EnrolmentToken).where(
        EnrolmentToken.id == token_id, EnrolmentToken.organisation_id == _org(actor)
    )
    row = (await db.execute(query.with_for_update())).scalar_one_or_none()
    if row is None:
        raise EnrolmentTokenNotFound(token_id=str(token_id))
    if row.used_at is not None:
        raise EnrolmentTokenUsed(device_id=str(row.device_id))
    if row.revoked_at is not None:
        raise EnrolmentTokenAlreadyRevoked()
    row.revoked_at = utcnow()
    await record(db, action=AuditAction.ENROLMENT_TOKEN_REVOKED, actor=actor,
                 target_type="enrolment_token", target_id=row.id,
                 details={"token_id": str(row.id), "device_group": row.device_group})
    return row


# ---- enrolment -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EnrolmentRequest:
    token: str
    device_public_key: str
    platform: str
    name: str
    agent_version: str
    proof: SignedDocument


@dataclass(frozen=True, slots=True)
class Enrolled:
    device: Device
    organisation: Organisation
    owner_name: str


def _agent(organisation_id: uuid.UUID | None, key_fingerprint: str | None = None) -> Actor:
    name = f"agent {key_fingerprint}" if key_fingerprint else "agent (enrolment)"
    return Actor(id=None, display_name=name, organisation_id=organisation_id)


async def _refuse(
    db: AsyncSession, error: EnrolmentRefused, *, organisation_id: uuid.UUID | None,
    token_id: uuid.UUID | None = None,
) -> EnrolmentRefused:  # fmt: skip
    # Anyone can try tokens: the first refusal per address and minute is recorded, the rest
    # counted (audit/failures.py); the rate limiter in front bounds how many arrive at all.
    await record_failure(db, action=AuditAction.ENROLMENT_REJECTED, reason=error.code,
                         actor=_agent(organisation_id), organisation_id=organisation_id,
                         target_type="enrolment_token" if token_id else None,
                         target_id=token_id, details={"code": error.code})  # fmt: skip
    return error


def _check_proof(
    request: EnrolmentRequest, server_key: Ed25519PublicKey
) -> tuple[Ed25519PublicKey, str]:
    """The device key and its fingerprint, if the proof is the device key's, for this token, this
    key and this server; else ``EnrolmentProofInvalid`` with what was wrong."""
    try:
        device_key = decode_ed25519_public_key(request.device_public_key)
        payload = verify_document(device_key, request.proof, kind=DocumentKind.ENROLMENT)
    except CryptoError as exc:
        raise EnrolmentProofInvalid(reason=str(exc)) from None
    expected = {
        "token_sha256": token_digest(request.token),
        "device_public_key": request.device_public_key,
        "server_fingerprint": fingerprint(server_key),
    }
    wrong = sorted(k for k in expected.keys() | payload.keys()
                   if payload.get(k) != expected.get(k))  # fmt: skip
    if wrong:
        # server_fingerprint among them: a proof made for another server (a relay of ours).
        raise EnrolmentProofInvalid(fields=wrong)
    return device_key, fingerprint(device_key)


async def enrol(
    db: AsyncSession, *, request: EnrolmentRequest, server_key: Ed25519PublicKey
) -> Enrolled:
    query = select(EnrolmentToken).where(EnrolmentToken.token_hash == token_digest(request.token))
    row = (await db.execute(query.with_for_update())).scalar_one_or_none()
    if row is None:
        raise await _refuse(db, EnrolmentTokenInvalid(), organisation_id=None)
    org = row.organisation_id
    try:
        _, key_fp = _check_proof(request, server_key)
    except EnrolmentProofInvalid as exc:
        raise await _refuse(db, exc, organisation_id=org, token_id=row.id) from None
    if row.used_at is not None:
        # Someone else holds the token: audited every time (never folded into a count), with
        # the device it enrolled, whose owner is the one to ask.
        await record(db, action=AuditAction.ENROLMENT_REUSED, actor=_agent(org, key_fp),
                     organisation_id=org, target_type="device", target_id=row.device_id,
                     details={"token_id": str(row.id), "device_id": str(row.device_id),
                              "used_at": row.used_at.isoformat(),
                              "presented_fingerprint": key_fp})  # fmt: skip
        raise EnrolmentTokenUsed(device_id=str(row.device_id))
    if row.revoked_at is not None:
        raise await _refuse(db, EnrolmentTokenRevoked(), organisation_id=org, token_id=row.id)
    now = utcnow()
    if row.expires_at <= now:
        raise await _refuse(db, EnrolmentTokenExpired(), organisation_id=org, token_id=row.id)
    taken = select(Device.id).where(
        Device.public_key == request.device_public_key, Device.enrolled_at.is_not(None),
        Device.revoked_at.is_(None),
    )  # fmt: skip
    if (await db.execute(taken.limit(1))).first() is not None:
        raise await _refuse(db, EnrolmentKeyInUse(), organisation_id=org, token_id=row.id)
    owner = await identity.get_user(db, organisation_id=org, user_id=row.owner_id)
    organisation = await db.get(Organisation, org)
    assert owner is not None and organisation is not None  # noqa: S101 -- foreign keys
    platform = normalise_platform(request.platform)
    device = Device(
        organisation_id=org, owner_id=row.owner_id, name=request.name, platform=platform,
        device_group=row.device_group, public_key=request.device_public_key,
        fingerprint=key_fp, created_at=now, enrolled_at=now, last_seen_at=now,
        agent_version=request.agent_version,
    )  # fmt: skip
    db.add(device)
    await db.flush()
    row.used_at, row.device_id = now, device.id
    await record(db, action=AuditAction.DEVICE_ENROLLED, actor=_agent(org, key_fp),
                 organisation_id=org, target_type="device", target_id=device.id,
                 details={"token_id": str(row.id), "device_group": row.device_group,
                          "owner_id": str(row.owner_id), "platform": platform,
                          "fingerprint": key_fp,
                          "agent_version": request.agent_version})  # fmt: skip
    await db.flush()
    return Enrolled(device=device, organisation=organisation, owner_name=owner.display_name)


# ---- revocation ------------------------------------------------------------------------------


def check_reason(reason: str) -> str:
    text = unicodedata.normalize("NFC", reason).strip()
    if not text or len(text) > REASON_MAX or forbidden_character(text, multiline=True):
        raise DeviceRevokeReasonInvalid(field="reason", max_length=REASON_MAX)
    return text


@dataclass(frozen=True, slots=True)
class Revoked:
    device: Device
    pre_authorisations: list[uuid.UUID]
    ended: list[SupportSession]  # ended in the revocation's transaction; tell their peers


async def revoke_device(
    db: AsyncSession, *, device_id: uuid.UUID, reason: str, actor: Actor
) -> Revoked:
    """Revoke the device for the organisation. The caller commits, then announces the ended
    sessions and closes the device's connection (``routes.revoke_device``)."""
    text = check_reason(reason)
    org = _org(actor)
    query = select(Device).where(Device.id == device_id, Device.organisation_id == org)
    device = (await db.execute(query.with_for_update())).scalar_one_or_none()
    if device is None:
        raise DeviceNotFound(device_id=str(device_id))
    if device.revoked_at is not None:
        raise DeviceAlreadyRevoked(revoked_at=device.revoked_at.isoformat())
    now = utcnow()
    device.revoked_at, device.revoked_by, device.revoke_reason = now, actor.id, text
    live = select(PreAuthorisationRecord).where(
        PreAuthorisationRecord.device_id == device.id, PreAuthorisationRecord.revoked_at.is_(None)
    )
    voided = list((await db.execute(live.with_for_update())).scalars())
    for pre in voided:
        pre.revoked_at = now
        pre.revocation = {"by": "organisation", "actor_id": str(actor.id), "reason": text,
                          "revoked_at": now.isoformat(), "device_revoked": True}  # fmt: skip
    running = (
        select(SupportSession)
        .where(SupportSession.device_id == device.id,
               SupportSession.state.in_([str(s) for s in sessions.LIVE_STATES]))
        .order_by(SupportSession.created_at)
        .with_for_update()
    )  # fmt: skip
    ended = list((await db.execute(running)).scalars())
    for support_session in ended:
        await sessions.end_support_session(
            db, support_session=support_session, ended_by=Party.SUPERVISOR,
            reason=EndReason.DEVICE_REVOKED, detail=f"device {device.id} revoked", actor=actor,
        )  # fmt: skip
    await record(db, action=AuditAction.DEVICE_REVOKED, actor=actor, target_type="device",
                 target_id=device.id,
                 details={"reason": text, "pre_authorisations": [str(p.id) for p in voided],
                          "support_sessions_ended": [str(s.id) for s in ended]})  # fmt: skip
    await db.flush()
    return Revoked(device=device, pre_authorisations=[p.id for p in voided], ended=ended)
