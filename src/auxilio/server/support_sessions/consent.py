"""Joining with a code and the signed offer (step 2 of docs/support-sessions.md); the device's
consent receipt that answers it is in ``receipts``.

Refusals here are answered on the agent's WebSocket with a stable ``code``; they are audited in
the caller's transaction, which the caller commits even though the join or consent failed.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.crypto.grants import issue_grant, read_grant
from auxilio.crypto.keys import (
    decode_ed25519_public_key,
    decode_x25519_public_key,
    fingerprint,
)
from auxilio.policy.compiled import compile_policy
from auxilio.policy.schema import Platform, Policy
from auxilio.policy.zones import platform_zones
from auxilio.protocol.frames import EndReason
from auxilio.protocol.states import SupportSessionState
from auxilio.protocol.types import (
    Capability,
    CapabilityGrant,
    CapabilityLimits,
    CapabilityPurpose,
    ConsentTerms,
    ExtensionNote,
    ExtensionTerms,
    SignedDocument,
)
from auxilio.server.audit.actions import AuditAction
from auxilio.server.audit.failures import record_failure
from auxilio.server.audit.service import record
from auxilio.server.context import Actor
from auxilio.server.devices import service as devices
from auxilio.server.devices.models import Device
from auxilio.server.emergency import state as emergency
from auxilio.server.errors import DomainError
from auxilio.server.identity import service as identity
from auxilio.server.identity.auth import actor_for
from auxilio.server.policies import service as policies
from auxilio.server.recordings import service as recordings
from auxilio.server.support_sessions import clock, unattended
from auxilio.server.support_sessions.models import JoinCode, SupportSession
from auxilio.server.support_sessions.service import (
    audit_target,
    join_code_digest,
    move,
)

S = SupportSessionState

PURPOSES: dict[str, str] = {
    "chat": "Write messages with you.",
    "terminal": "Run commands in a terminal on this device.",
    "files": "List, copy and change files on this device.",
    "diagnostics": "Collect information about the hardware, system and network.",
    "runbooks": "Run approved scripted fixes.",
    "screen": "See your screen.",
    "input": "Control your mouse and keyboard.",
    "clipboard": "Put text on your clipboard and read the text you copied.",
}
TERMINAL_RISK_TEXT = (
    "Warning: a terminal can read your documents and other personal folders; it cannot be kept "
    "out of them. Allow it only if you trust this technician with them."
)
FILES_ZONES_TEXT = (
    "Your personal folders (documents, desktop, pictures, mail, browser data...) stay closed: "
    "you are asked separately, with the technician's reason, before any is opened."
)
DEFAULT_LEGAL_TEXT = (
    "A technician asks to access your computer to resolve your issue. "
    "You can end the session at any moment."
)


class AgentRefused(Exception):
    """A join or consent refused with a wire error ``code`` (docs/support-sessions.md)."""

    def __init__(self, code: str, message: str, sid: uuid.UUID | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.sid = sid  # the support session the refusal concerns, where one was found


def agent_actor(support_session: SupportSession) -> Actor:
    """Who acts for the device in the audit log: the agent, for the ticket's requester."""
    return Actor(id=None, display_name=f"agent of device {support_session.device_id}",
                 organisation_id=support_session.organisation_id)


# ---- join ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Offer:
    support_session: SupportSession
    grant: SignedDocument


# An offer must reach the device and be answered within the consent timeout; this much more
# covers the network and a reconnect. After it the agent refuses to show the offer at all.
OFFER_SLACK = timedelta(seconds=60)
# Device clocks drift; a receipt's times (receipts.py, extensions.py) are checked against the
# offer within this much.
RECEIPT_CLOCK_SKEW = timedelta(minutes=2)
# How long the person has to answer an extension (signed into the extension's grant).
EXTENSION_ANSWER_SECONDS = 120


def _platform(text: str) -> str:
    low = text.lower()
    if low.startswith("linux"):
        return "linux"
    if low.startswith(("darwin", "mac")):
        return "macos"
    if low.startswith("win"):
        return "windows"
    return "other"


async def _reject_code(
    db: AsyncSession, code: str, message: str, organisation_id: uuid.UUID | None,
    support_session_id: uuid.UUID | None, via: str = "agent",
) -> AgentRefused:
    # Anyone can offer codes: the first per address and minute is recorded, the rest counted.
    details = {"code": code} if via == "agent" else {"code": code, "via": via}
    await record_failure(db, action=AuditAction.JOIN_CODE_REJECTED, reason=code,
                 actor=Actor(id=None, display_name=via, organisation_id=organisation_id),
                 target_type="support_session" if support_session_id else None,
                 target_id=support_session_id, details=details)
    return AgentRefused(code, message, support_session_id)


async def _device_for(
    db: AsyncSession, support_session: SupportSession, public_key: str, platform: str
) -> uuid.UUID:
    """The requester's device with this key, or a new one registered to the requester."""
    org = support_session.organisation_id
    requester = await identity.get_user(db, organisation_id=org,
                                        user_id=support_session.requester_id)
    if requester is None:
        raise AgentRefused("join_code.invalid", "the ticket's requester no longer exists")
    owner = actor_for(requester)
    rows, _ = await devices.list_devices(db, actor=owner, owner_id=requester.id, limit=200)
    for device in rows:
        if device.public_key == public_key:
            return device.id
    device = await devices.register_device(
        db, name=f"{_platform(platform)} device (agent)", platform=_platform(platform),
        device_group=None, actor=owner,
    )
    device.public_key = public_key
    device.fingerprint = fingerprint(decode_ed25519_public_key(public_key))
    await db.flush()
    return device.id


def _legal_text(policy: policies.ActivePolicy) -> str:
    texts = policy.policy.privacy.consent_text
    return texts.get("en") or next(iter(texts.values()), DEFAULT_LEGAL_TEXT)


def zone_limits(policy: Policy, platform: str) -> dict[str, Any]:
    """The personal-data zones of ``platform`` as the grant carries them to the agent, which
    enforces them on every path (the server never sees a path: it travels end-to-end)."""
    config = policy.personal_data_zones
    pairs, exceptions = platform_zones(config, Platform(platform))
    patterns: dict[str, list[str]] = {}
    for name, pattern in pairs:
        patterns.setdefault(name, []).append(pattern)
    return {
        "platform": platform,
        "zones": [{"name": name, "patterns": found} for name, found in patterns.items()],
        "zone_exceptions": exceptions,
        "on_zone_access": str(config.on_access),
    }


def _capability_grants(
    support_session: SupportSession, issued_at: datetime, not_after: datetime
) -> list[CapabilityGrant]:
    grants = []
    for name in support_session.requested_capabilities:
        entry = support_session.capability_limits.get(name, {})
        max_seconds = entry.get("max_seconds")
        expires = not_after
        if max_seconds:
            expires = min(not_after, issued_at + timedelta(seconds=max_seconds))
        grants.append(CapabilityGrant(capability=Capability(name),
                                      limits=CapabilityLimits(**entry.get("limits", {})),
                                      expires_at=expires))
    return grants


def _with_zones(support_session: SupportSession, policy: Policy, platform: str) -> None:
    """Put the device platform's zones into the files limits, now that the platform is known.
    Zones the agent cannot be told (an unknown platform) refuse the join: an obligation that
    cannot be honoured denies, it never proceeds silently."""
    if str(Capability.FILES) not in support_session.requested_capabilities:
        return
    if platform not in {p.value for p in Platform}:
        raise AgentRefused("capability.unavailable", "the policy's personal-data zones cannot "
                           f"be enforced on a {platform} device, so files cannot be offered "
                           "(personal_data_zones); nothing was asked of you")
    limits = dict(support_session.capability_limits)
    entry = dict(limits.get(str(Capability.FILES), {}))
    entry["limits"] = {**entry.get("limits", {}), **zone_limits(policy, platform)}
    limits[str(Capability.FILES)] = entry
    support_session.capability_limits = limits


def _extension_terms(policy: policies.ActivePolicy) -> ExtensionTerms:
    extension = policy.policy.sessions.extension
    if extension is None:
        return ExtensionTerms()
    total = int(extension.max.total_seconds())
    return ExtensionTerms(
        # No count in the policy: the total still bounds it, one minute at the least each.
        max_count=extension.max_count if extension.max_count is not None else max(1, total // 60),
        max_total_seconds=total,
        approver_required=extension.approver_role is not None,
    )


def _purpose(name: str, policy: Policy) -> str:
    """What the person is told a capability is for; a terminal where zones must be protected
    names the risk (personal_data_zones.terminal: require_consent; deny never gets here)."""
    text = PURPOSES.get(name, "")
    if name == str(Capability.TERMINAL) and compile_policy(policy).has_zones:
        text = f"{text} {TERMINAL_RISK_TEXT}"
    if name == str(Capability.FILES) and compile_policy(policy).has_zones:
        text = f"{text} {FILES_ZONES_TEXT}"
    return text


def _consent_terms(
    support_session: SupportSession, policy: policies.ActivePolicy, answer_by: datetime
) -> ConsentTerms:
    return ConsentTerms(
        ticket_ref=support_session.ticket_ref,
        purposes=tuple(
            CapabilityPurpose(capability=Capability(name), purpose=_purpose(name, policy.policy))
            for name in support_session.requested_capabilities
        ),
        legal_text=_legal_text(policy),
        timeout_seconds=support_session.consent_timeout_seconds,
        # Attended: silence is a refusal, whatever the stored default says.
        on_timeout="refused",
        answer_by=answer_by,
    )


async def sign_grant_for(
    db: AsyncSession, *, support_session: SupportSession, server_key: Ed25519PrivateKey,
    issued_at: datetime, not_after: datetime, capabilities: list[CapabilityGrant],
    terms: ConsentTerms, extensions: ExtensionTerms, extension: ExtensionNote | None = None,
) -> SignedDocument:
    """Sign a grant for the session's device and technician; the caller decides where it goes
    (the session's current grant at the offer, an extension's proposed grant otherwise)."""
    org = await identity.get_organisation(db, organisation_id=support_session.organisation_id)
    technician = await identity.get_user(db, organisation_id=support_session.organisation_id,
                                         user_id=support_session.technician_id)
    assert org is not None and technician is not None  # noqa: S101 -- foreign keys guarantee it
    assert support_session.device_id is not None  # noqa: S101 -- set at join, before any grant
    assert support_session.device_public_key is not None  # noqa: S101 -- set with device_id
    return issue_grant(
        server_key, support_session_id=str(support_session.id), organisation_id=str(org.id),
        organisation_name=org.name, technician_id=str(technician.id),
        technician_name=technician.display_name,
        technician_e2e_key=decode_x25519_public_key(support_session.technician_e2e_key),
        device_id=str(support_session.device_id),
        device_public_key=decode_ed25519_public_key(support_session.device_public_key),
        capabilities=capabilities, policy_version=support_session.policy_version or "unknown",
        issued_at=issued_at, not_after=not_after, recorded=support_session.recorded,
        terms=terms, extensions=extensions, extension=extension,
        auditor_public_key=await recordings.auditor_key_for_grant(
            db, organisation_id=org.id, support_session_id=support_session.id),
    )


def adopt_grant(
    support_session: SupportSession, signed: SignedDocument, server_key: Ed25519PrivateKey
) -> None:
    """Make ``signed`` the session's current grant: its end is the session's end."""
    grant = read_grant(server_key.public_key(), signed)
    support_session.grant_body = signed.body
    support_session.grant_signature = signed.signature
    support_session.grant_nonce = grant.nonce
    support_session.not_after = grant.not_after


def current_grant(support_session: SupportSession) -> SignedDocument | None:
    if support_session.grant_body is None or support_session.grant_signature is None:
        return None
    return SignedDocument(body=support_session.grant_body,
                          signature=support_session.grant_signature)


async def find_live_join_code(
    db: AsyncSession, join_code: str, *, lock: bool, via: str = "agent"
) -> tuple[JoinCode, SupportSession]:
    """The join code row and its session, for a code a device may still use now; else
    ``AgentRefused`` with ``join_code.invalid``, ``join_code.used`` or ``join_code.expired``,
    audited as ``support_session:join_code:rejected`` at a bounded rate (``via``: who offered
    it). The agent's join (``lock``: rows locked for the update that follows) and the agent
    download of the join page ask the same question here."""
    now = clock.now()
    query = select(JoinCode).where(JoinCode.code_hash == join_code_digest(join_code))
    row = (await db.execute(query.with_for_update() if lock else query)).scalar_one_or_none()
    if row is None:
        raise await _reject_code(db, "join_code.invalid", "no such join code", None, None, via)
    support_session = await db.get(SupportSession, row.support_session_id, with_for_update=lock)
    assert support_session is not None  # noqa: S101 -- foreign key with cascade
    org, sid = support_session.organisation_id, support_session.id
    if row.used_at is not None:
        raise await _reject_code(db, "join_code.used", "this join code was already used", org,
                                 sid, via)  # fmt: skip
    if row.expires_at <= now:
        raise await _reject_code(db, "join_code.expired", "this join code has expired", org,
                                 sid, via)  # fmt: skip
    if support_session.state != S.REQUESTED:
        raise await _reject_code(db, "join_code.used", "this support session is not waiting "
                                 "for a device", org, sid, via)  # fmt: skip
    return row, support_session


async def join_support_session(
    db: AsyncSession, *, join_code: str, device_public_key: str, platform: str,
    server_key: Ed25519PrivateKey, announced: Collection[Capability],
    technician_attached: Callable[[uuid.UUID], Awaitable[bool]],
) -> Offer:
    """Turn a join code into the signed offer. Refused, the code stays as it was (usable again)
    when the technician is not connected right now (``join_code.technician_absent``) or the
    device does not announce every requested capability (``capability.unavailable``)."""
    now = clock.now()
    row, support_session = await find_live_join_code(db, join_code, lock=True)
    org, sid = support_session.organisation_id, support_session.id
    if not await technician_attached(sid):
        raise await _reject_code(db, "join_code.technician_absent", "the technician who gave "
                                 "this code is not connected right now; ask them to reconnect, "
                                 "then type the code again", org, sid)
    missing = [c for c in support_session.requested_capabilities if c not in set(announced)]
    if missing:
        raise await _reject_code(db, "capability.unavailable", "this device cannot deliver "
                                 f"{', '.join(missing)}; nothing was asked of you", org, sid)
    active = await policies.policy_for_session(db, support_session)
    try:
        _with_zones(support_session, active.policy, _platform(platform))
    except AgentRefused as exc:
        raise await _reject_code(db, exc.code, exc.message, org, sid) from None
    row.used_at = now
    support_session.device_id = await _device_for(db, support_session, device_public_key, platform)
    support_session.device_public_key = device_public_key
    not_after = now + timedelta(seconds=support_session.max_duration_seconds)
    capabilities = _capability_grants(support_session, now, not_after)
    answer_by = now + timedelta(seconds=support_session.consent_timeout_seconds) + OFFER_SLACK
    terms = _consent_terms(support_session, active, answer_by)
    grant = await sign_grant_for(db, support_session=support_session, server_key=server_key,
                                 issued_at=now, not_after=not_after, capabilities=capabilities,
                                 terms=terms, extensions=_extension_terms(active))
    adopt_grant(support_session, grant, server_key)
    support_session.offer_prompt = terms.model_dump(mode="json")
    support_session.offered_at = now
    move(support_session, S.AWAITING_CONSENT)
    await record(db, action=AuditAction.SUPPORT_SESSION_OFFERED, actor=agent_actor(support_session),
                 details={"device_id": str(support_session.device_id),
                          "not_after": not_after.isoformat(),
                          "capabilities": support_session.requested_capabilities,
                          "grant_nonce": support_session.grant_nonce,
                          "consent_timeout_seconds": terms.timeout_seconds,
                          "on_timeout": terms.on_timeout,
                          "answer_by": answer_by.isoformat()},
                 **audit_target(support_session))
    return Offer(support_session=support_session, grant=grant)


# Why an unattended offer (or its receipt) cannot go on, as the session's end reason.
UNATTENDED_END_REASONS: dict[str, EndReason] = {
    "pre_authorisation.revoked": EndReason.PRE_AUTHORISATION_REVOKED,
    "pre_authorisation.none": EndReason.PRE_AUTHORISATION_ENDED,
    "pre_authorisation.outside_window": EndReason.PRE_AUTHORISATION_ENDED,
    "unattended.scope.not_covered": EndReason.PRE_AUTHORISATION_ENDED,
    "device.revoked": EndReason.DEVICE_REVOKED,
    "emergency.unattended_locked": EndReason.EMERGENCY,
}


async def offer_unattended(
    db: AsyncSession, *, support_session: SupportSession, server_key: Ed25519PrivateKey,
) -> Offer:
    """Sign the offer of a requested unattended session (locked by the caller) for its device:
    terms ``unattended`` naming the pre-authorisation, which must still cover the session now
    (verified again); the end never past the window's open span. Refused (``AgentRefused``):
    during an emergency, for a revoked device, or a pre-authorisation that no longer covers it.
    Nobody is prompted: the agent answers with its signed automatic receipt."""
    now = clock.now()
    org, sid = support_session.organisation_id, support_session.id
    if support_session.state != S.REQUESTED or support_session.mode != "unattended":
        raise AgentRefused("protocol.illegal_transition", "the support session is "
                           f"{support_session.state}, not an unattended request", sid)
    if await emergency.is_active(db, organisation_id=org):
        raise AgentRefused("emergency.unattended_locked", "unattended access is locked during an "
                           "emergency", sid)
    assert support_session.device_id is not None  # noqa: S101 -- set at the request
    try:
        device = unattended.usable_device(
            await db.get(Device, support_session.device_id), support_session.device_id)
        document = await unattended.check_record(
            db, device=device, pre_authorisation_id=support_session.pre_authorisation_id,
            capabilities=[Capability(c) for c in support_session.requested_capabilities],
            now=now, server_fingerprint=fingerprint(server_key.public_key()))
    except DomainError as exc:
        raise AgentRefused(exc.code, exc.message, sid) from None
    active = await policies.policy_for_session(db, support_session)
    _with_zones(support_session, active.policy, device.platform)
    support_session.device_public_key = device.public_key
    not_after = unattended.not_after(now=now, document=document,
                                     max_duration_seconds=support_session.max_duration_seconds)
    capabilities = _capability_grants(support_session, now, not_after)
    answer_by = now + timedelta(seconds=support_session.consent_timeout_seconds) + OFFER_SLACK
    terms = ConsentTerms(
        mode="unattended", pre_authorisation_id=document.id,
        ticket_ref=support_session.ticket_ref,
        purposes=tuple(CapabilityPurpose(capability=Capability(name),
                                         purpose=_purpose(name, active.policy))
                       for name in support_session.requested_capabilities),
        legal_text=(f"Unattended access pre-authorised by {document.owner_name} "
                    f"({document.id}); nobody is asked at the device."),
        timeout_seconds=support_session.consent_timeout_seconds, on_timeout="granted",
        answer_by=answer_by,
    )
    # No extensions: nobody is there to accept one; a new session is requested instead.
    grant = await sign_grant_for(db, support_session=support_session, server_key=server_key,
                                 issued_at=now, not_after=not_after, capabilities=capabilities,
                                 terms=terms, extensions=ExtensionTerms())
    adopt_grant(support_session, grant, server_key)
    support_session.offer_prompt = terms.model_dump(mode="json")
    support_session.offered_at = now
    move(support_session, S.AWAITING_CONSENT)
    await record(db, action=AuditAction.SUPPORT_SESSION_OFFERED, actor=agent_actor(support_session),
                 details={"device_id": str(support_session.device_id),
                          "mode": "unattended", "pre_authorisation_id": document.id,
                          "not_after": not_after.isoformat(),
                          "capabilities": support_session.requested_capabilities,
                          "grant_nonce": support_session.grant_nonce,
                          "consent_timeout_seconds": terms.timeout_seconds,
                          "on_timeout": terms.on_timeout,
                          "answer_by": answer_by.isoformat()},
                 **audit_target(support_session))
    return Offer(support_session=support_session, grant=grant)


def current_offer(support_session: SupportSession) -> Offer | None:
    """The offer already made, for an agent that reconnects before answering it."""
    grant = current_grant(support_session)
    return None if grant is None else Offer(support_session=support_session, grant=grant)
