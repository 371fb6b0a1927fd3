"""Requesting, ending and finding support sessions.

Every state change locks the session row (``FOR UPDATE`` on PostgreSQL; SQLite transactions are
serialised by ``BEGIN IMMEDIATE``), moves it through ``auxilio.protocol.states`` and writes its
audit event in the same transaction. Telling the connected peers happens after the commit, in
``runtime.py``. Joining and consent live in ``consent.py``; extensions, activity and the report
in ``during.py``.

Visibility: holders of ``support_session:read_all`` see their organisation's sessions; holders
of ``support_session:read_own`` (end users) see the sessions of tickets they requested.
Anything else is ``support_session_not_found``.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.crypto.errors import KeyEncodingInvalid
from auxilio.crypto.keys import decode_x25519_public_key
from auxilio.policy import (
    Decision,
    Effect,
    EvaluationContext,
    StartSupportSession,
    UseCapability,
)
from auxilio.policy.roles import Permission
from auxilio.policy.schema import (
    FileTransferRule,
    Policy,
    RecordingMode,
    SessionMode,
    TerminalRule,
)
from auxilio.protocol.errors import ProtocolError
from auxilio.protocol.frames import AGENT_CAPABILITIES, EndReason, Party
from auxilio.protocol.states import FINAL_STATES, SupportSessionState, check_transition
from auxilio.protocol.types import Capability
from auxilio.server.audit.actions import AuditAction
from auxilio.server.audit.service import record
from auxilio.server.context import Actor
from auxilio.server.devices import service as devices
from auxilio.server.devices.models import Device
from auxilio.server.emergency import state as emergency
from auxilio.server.errors import (
    CapabilityUnavailable,
    Forbidden,
    IllegalTransition,
    InvalidCapabilities,
    RunbookNotInCatalogue,
    RunbookSignatureInvalid,
    SupportSessionNotFound,
    ValidationFailed,
)
from auxilio.server.identity import service as identity
from auxilio.server.identity.auth import actor_for
from auxilio.server.policies import service as policies
from auxilio.server.policies.authorize import authorize_permission
from auxilio.server.recordings import service as recordings
from auxilio.server.recordings.models import AuditorKey
from auxilio.server.runbooks import service as runbook_catalogue
from auxilio.server.support_sessions import clock, unattended
from auxilio.server.support_sessions.models import JoinCode, SupportSession
from auxilio.server.surveys import service as surveys
from auxilio.server.tickets import service as tickets

S = SupportSessionState
LIVE_STATES = (S.REQUESTED, S.AWAITING_CONSENT, S.ACTIVE)

# Wire capability -> the policy catalogue's name for it.
POLICY_NAMES: dict[Capability, str] = {
    Capability.CHAT: "chat",
    Capability.TERMINAL: "terminal",
    Capability.FILES: "file_transfer",
    Capability.DIAGNOSTICS: "diagnostics",
    Capability.RUNBOOKS: "runbooks",
    Capability.SCREEN: "screen_view",
    Capability.INPUT: "remote_control",
    Capability.CLIPBOARD: "clipboard",
}

# Read aloud over the phone: no 0/O, 1/I/L, 2/Z, 5/S, 8/B, 6/G look-alikes.
JOIN_CODE_ALPHABET = "ACDEFHJKMNPQRTUVWXY3479"
JOIN_CODE_TTL = timedelta(minutes=10)


def new_join_code() -> str:
    raw = "".join(secrets.choice(JOIN_CODE_ALPHABET) for _ in range(9))
    return f"{raw[:3]}-{raw[3:6]}-{raw[6:]}"


def join_code_digest(code: str) -> str:
    normalised = code.strip().upper().replace("-", "")
    return hashlib.sha256(normalised.encode("ascii", "replace")).hexdigest()


def move(support_session: SupportSession, new: SupportSessionState) -> None:
    """The one place a session changes state; an illegal move is a 409."""
    try:
        check_transition(SupportSessionState(support_session.state), new)
    except ProtocolError as exc:
        raise IllegalTransition(
            exc.message, from_state=support_session.state, to_state=str(new)
        ) from exc
    support_session.state = str(new)


def audit_target(support_session: SupportSession) -> dict[str, Any]:
    return {
        "organisation_id": support_session.organisation_id,
        "target_type": "support_session",
        "target_id": support_session.id,
    }


# ---- request ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestOutcome:
    decision: Decision
    support_session: SupportSession | None  # None when an approval is required (nothing kept)
    join_code: str | None = None
    join_code_expires_at: datetime | None = None


def _org(actor: Actor) -> uuid.UUID:
    if actor.organisation_id is None or actor.id is None or actor.role is None:
        raise Forbidden("Support sessions belong to a person of an organisation.")
    return actor.organisation_id


async def _trainings(
    db: AsyncSession, actor: Actor, now: datetime
) -> tuple[dict[str, datetime], dict[str, datetime]]:
    """The technician's current trainings, and when the others they once had expired."""
    org = _org(actor)
    assert actor.id is not None  # noqa: S101 -- _org checked it
    user = await identity.get_user(db, organisation_id=org, user_id=actor.id)
    if user is None:
        return {}, {}
    return (await identity.current_trainings(db, user=user, now=now),
            await identity.expired_trainings(db, user=user, now=now))  # fmt: skip


async def _running(db: AsyncSession, technician_id: uuid.UUID) -> int:
    query = select(func.count()).select_from(SupportSession).where(
        SupportSession.technician_id == technician_id, SupportSession.state == str(S.ACTIVE)
    )
    return int((await db.execute(query)).scalar_one())


@dataclass(frozen=True, slots=True)
class Requested:
    """What exactly the technician asks for, beyond capability names (the request body)."""

    terminal_shell: str | None = None
    files_direction: Literal["upload", "download", "both"] | None = None
    runbooks: tuple[str, ...] = ()


def _capability_questions(
    policy: Policy, capability: Capability, actor: Actor, mode: SessionMode, ticket_id: str,
    requested: Requested,
) -> tuple[list[UseCapability], dict[str, Any]]:
    """The policy questions for one capability, for what was requested, and the limits the
    grant will carry. A terminal with no named shell is asked as "the device's login shell",
    which the policy's ``shells`` must then approve by name on the device (the grant carries
    the approved list); file transfer in both directions is two questions, one per direction;
    runbooks one question per runbook id."""
    assert actor.role is not None  # noqa: S101 -- _org checked it
    name = POLICY_NAMES[capability]
    rule = policy.capabilities.get(name)
    limits: dict[str, Any] = {}
    base = {"capability": name, "technician_role": actor.role, "mode": mode,
            "ticket_id": ticket_id}
    questions: list[UseCapability] = []
    if capability is Capability.TERMINAL:
        shell = requested.terminal_shell
        if shell is not None:
            limits["shell"] = shell
        elif isinstance(rule, TerminalRule):
            # No shell named: the device starts its login shell if the policy lists it, else the
            # first listed one it has. The grant carries the list and the agent holds to it, so
            # the question is "a shell of this list", which any listed name stands for.
            limits["shells"] = list(rule.shells)
            shell = rule.shells[0]
        questions.append(UseCapability(**base, terminal_shell=shell))
    elif capability is Capability.FILES:
        direction = requested.files_direction or "both"
        limits["direction"] = direction
        for way in (("upload", "download") if direction == "both" else (direction,)):
            questions.append(UseCapability(**base, direction=way))
        if isinstance(rule, FileTransferRule) and rule.max_size is not None:
            limits["max_bytes"] = rule.max_size
    elif capability is Capability.RUNBOOKS:
        if not requested.runbooks:
            raise ValidationFailed("Name the runbooks the session needs (runbooks: [ids]).",
                                   field="runbooks")
        questions.extend(UseCapability(**base, runbook_id=rid) for rid in requested.runbooks)
    else:
        questions.append(UseCapability(**base))
    max_seconds = int(rule.max_duration.total_seconds()) if rule and rule.max_duration else None
    entry: dict[str, Any] = {"limits": limits, "max_seconds": max_seconds}
    if capability is Capability.RUNBOOKS:
        entry["runbook_ids"] = list(requested.runbooks)
    return questions, entry


def compose(start: Decision, asked: Sequence[Decision]) -> Decision:
    """One answer for the session from the start decision and every capability's: a denial
    anywhere denies (the first one asked is named), then an approval anywhere is required;
    otherwise the session rule speaks. The capabilities' own obligations are kept apart (see
    ``_capability_entry``), not folded into this one."""
    for effect in (Effect.DENY, Effect.REQUIRE_APPROVAL):
        if start.effect is effect:
            return start
        for decision in asked:
            if decision.effect is effect:
                return decision
    return start


def _capability_entry(decisions: Sequence[Decision]) -> dict[str, Any]:
    """What is kept per capability besides its limits: each decision that answered it, and the
    obligations those carried (a consent of its own with its timeout, a time limit)."""
    ends = [d.obligations.end_at for d in decisions if d.obligations.end_at is not None]
    consents = [d.obligations.consent for d in decisions if d.obligations.consent is not None]
    return {
        "decisions": [{"effect": str(d.effect), "rule": d.rule, "reason": d.reason,
                       "reason_code": d.reason_code, "params": dict(d.params)}
                      for d in decisions],
        "consent_timeout_seconds": (
            min(int(c.timeout.total_seconds()) for c in consents) if consents else None
        ),
        "consent_rule": next((d.rule for d in decisions if d.obligations.consent), None),
        "has_end_at": bool(ends),
    }


RUNBOOK_CATALOGUE_RULE = "capabilities.runbooks.approved"


async def _pin_runbooks(
    db: AsyncSession, org: uuid.UUID, granted: dict[str, Any], policy: Policy, decision: Decision
) -> Decision:
    """Pin the requested runbooks' approved versions into the grant's limits; a runbook the
    policy approves but the catalogue has no approved version of is refused by name."""
    entry = granted[str(Capability.RUNBOOKS)]
    rule = policy.capabilities.runbooks
    try:
        pins = await runbook_catalogue.pins_for(
            db, organisation_id=org, runbook_ids=entry["runbook_ids"],
            pre_authorised=rule.pre_authorised if rule is not None else (),
        )
    except (RunbookNotInCatalogue, RunbookSignatureInvalid) as exc:
        # Not approved, or not what its approval recorded (edited or revived in the database).
        return Decision(Effect.DENY, RUNBOOK_CATALOGUE_RULE, str(exc), decision.policy_version)
    entry["limits"]["runbooks"] = [pin.model_dump(mode="json") for pin in pins]
    return decision


@dataclass(frozen=True, slots=True)
class RecordingChoice:
    """Whether the session is recorded, and the refusal when it must be and cannot be."""

    asked: RecordingMode
    recorded: bool
    auditor_key: AuditorKey | None = None
    denial: str | None = None  # the reason, for a DENY by the rule "sessions.recording"


RECORDING_RULE = "sessions.recording"


async def _recording_choice(
    db: AsyncSession, *, organisation_id: uuid.UUID, asked: RecordingMode, requested: bool
) -> RecordingChoice:
    """Recorded when the policy requires it, or allows it and the technician asked for it.
    A recording needs the organisation's auditor key (the agent seals the E2E keys to it); with
    none, the request is refused rather than told "recorded" and left unrecorded."""
    wanted = asked is RecordingMode.REQUIRED or (asked is RecordingMode.OPTIONAL and requested)
    if not wanted:
        return RecordingChoice(asked=asked, recorded=False)
    key = await recordings.get_current_auditor_key(db, organisation_id=organisation_id)
    if key is None:
        why = "requires" if asked is RecordingMode.REQUIRED else "was asked for"
        return RecordingChoice(
            asked=asked, recorded=False,
            denial=f"recording {why} but the organisation has no auditor key "
                   "(auxilio admin auditor-key --org SLUG)")
    return RecordingChoice(asked=asked, recorded=True, auditor_key=key)


def _require_deliverable(capabilities: Sequence[Capability]) -> None:
    """Never offer what does not exist: a capability no agent of this version can deliver is
    refused before the policy or the person is asked."""
    missing = [str(c) for c in dict.fromkeys(capabilities) if c not in AGENT_CAPABILITIES]
    if missing:
        raise CapabilityUnavailable(
            f"No agent can deliver {', '.join(missing)} yet; available: "
            + ", ".join(sorted(AGENT_CAPABILITIES)),
            capabilities=missing,
        )


async def _device_group(
    db: AsyncSession, org: uuid.UUID, device: Device | None, ticket_device: uuid.UUID | None
) -> str | None:
    if device is None and ticket_device is not None:
        device = await devices.get_device(db, organisation_id=org, device_id=ticket_device)
    return device.device_group if device is not None else None


async def request_support_session(
    db: AsyncSession,
    *,
    ticket_id: uuid.UUID,
    mode: SessionMode,
    capabilities: Sequence[Capability],
    technician_e2e_key: str,
    actor: Actor,
    node_id: str,
    recording_requested: bool = False,
    requested: Requested = Requested(),
    device_id: uuid.UUID | None = None,
    server_fingerprint: str = "",
) -> RequestOutcome:
    """Ask the policy (start, then each capability for what was requested); keep a denied or a
    requested session. An unattended one names the enrolled ``device_id`` of the ticket's
    requester, and the owner's pre-authorisation must cover it now (``unattended.py``); it has
    no join code: the server offers it to the device when the technician attaches."""
    now = clock.now()
    org = _org(actor)
    assert actor.id is not None and actor.role is not None  # noqa: S101 -- _org checked it
    if mode is SessionMode.CHAT_ONLY and set(capabilities) != {Capability.CHAT}:
        raise InvalidCapabilities("A chat_only session can use chat and nothing else.")
    if device_id is not None and mode is not SessionMode.UNATTENDED:
        raise ValidationFailed("device_id names the device of an unattended session, and only "
                               "of one.", field="device_id")
    _require_deliverable(capabilities)
    try:
        decode_x25519_public_key(technician_e2e_key)
    except KeyEncodingInvalid as exc:
        raise ValidationFailed(str(exc), field="technician_e2e_key") from exc
    ticket = await tickets.get_visible_ticket_or_raise(db, ticket_id=ticket_id, actor=actor)
    target = None
    if device_id is not None:
        target = await unattended.target_for(
            db, organisation_id=org, device_id=device_id, ticket=ticket,
            capabilities=capabilities, now=now, server_fingerprint=server_fingerprint)
    sid = uuid.uuid4()
    # During a declared emergency the policy's emergency.actions apply (lock_unattended).
    context = EvaluationContext(
        now=now, emergency_active=await emergency.is_active(db, organisation_id=org)
    )
    trainings, trainings_expired = await _trainings(db, actor, now)
    # One policy decides the whole session: the pilot's version where one runs for the
    # device's group (the enrolled device, else the ticket's), the active one otherwise.
    group = await _device_group(db, org, target.device if target else None, ticket.device_id)
    active = await policies.get_policy_for(db, organisation_id=org, device_group=group, at=now)
    decision = await policies.decide(
        db, actor=actor, organisation_id=org, context=context, target_type="support_session",
        target_id=sid, policy=active,
        request=StartSupportSession(
            mode=mode, technician_role=actor.role, mfa_verified=actor.mfa_verified,
            trainings=trainings, trainings_expired=trainings_expired,
            concurrent_sessions=await _running(db, actor.id), ticket_id=str(ticket.id),
            ticket_assignee=(
                "nobody" if ticket.assignee_id is None
                else "self" if ticket.assignee_id == actor.id else "other"
            ),
            device_group=target.device.device_group if target else None,
            owner_pre_authorised_at=target.document.created_at if target else None,
        ),
    )
    start = decision
    granted: dict[str, Any] = {}
    asked: list[Decision] = []
    for capability in dict.fromkeys(capabilities):
        if start.effect in (Effect.DENY, Effect.REQUIRE_APPROVAL):
            break
        questions, entry = _capability_questions(
            active.policy, capability, actor, mode, str(ticket.id), requested
        )
        decisions = [
            await policies.decide(db, actor=actor, organisation_id=org, request=question,
                                  context=context, target_type="support_session", target_id=sid,
                                  policy=active)
            for question in questions
        ]
        asked.extend(decisions)
        entry.update(_capability_entry(decisions))
        granted[str(capability)] = entry
    decision = compose(start, asked)
    if decision.effect is Effect.REQUIRE_APPROVAL:
        return RequestOutcome(decision=decision, support_session=None)
    if decision.effect is not Effect.DENY and Capability.RUNBOOKS in granted:
        decision = await _pin_runbooks(db, org, granted, active.policy, decision)

    obligations = start.obligations
    # The prompt's timeout is the strictest of the session's and every capability's own.
    timeouts = [entry["consent_timeout_seconds"] for entry in granted.values()
                if entry.get("consent_timeout_seconds")]
    sessions = active.policy.sessions
    recording = await _recording_choice(db, organisation_id=org, requested=recording_requested,
                                        asked=obligations.record or sessions.recording)
    if decision.effect is not Effect.DENY and recording.denial is not None:
        decision = Decision(Effect.DENY, RECORDING_RULE, recording.denial, start.policy_version)
    end_at = obligations.end_at or now + sessions.max_duration
    warn_at = obligations.warn_at or end_at - sessions.warn_before
    consent = obligations.consent
    support_session = SupportSession(
        id=sid, organisation_id=org, ticket_id=ticket.id, requester_id=ticket.requester_id,
        ticket_ref=f"#{ticket.number} {ticket.title}"[:200], technician_id=actor.id,
        mode=str(mode), state=str(S.REQUESTED),
        requested_capabilities=[str(c) for c in dict.fromkeys(capabilities)],
        granted_capabilities=[], capability_limits=granted,
        policy_version=decision.policy_version, decision_rule=decision.rule,
        decision_reason=decision.reason,
        decision_reason_code=decision.reason_code or None,
        decision_params=dict(decision.params) if decision.reason_code else None,
        max_duration_seconds=int((end_at - now).total_seconds()),
        warn_before_seconds=int((end_at - warn_at).total_seconds()),
        idle_timeout_seconds=(
            int(obligations.idle_timeout.total_seconds()) if obligations.idle_timeout else None
        ),
        consent_timeout_seconds=unattended.UNATTENDED_ANSWER_SECONDS if target else max(1, min(
            [int(consent.timeout.total_seconds()) if consent else 60, *timeouts])),
        consent_timeout_default=(
            "granted" if target or (consent and consent.on_timeout == "allow") else "refused"
        ),
        # The person is told "recorded" only when a recording will truly be made.
        recorded=recording.recorded and decision.effect is not Effect.DENY,
        created_at=now, node_id=node_id,
        technician_e2e_key=technician_e2e_key,
        device_id=target.device.id if target else None,
        device_public_key=target.device.public_key if target else None,
        pre_authorisation_id=target.record.id if target else None,
    )
    db.add(support_session)
    await db.flush()
    details = {"rule": decision.rule, "reason": decision.reason,
               "policy_version": decision.policy_version, "mode": str(mode),
               "capabilities": support_session.requested_capabilities,
               "decisions": {name: entry["decisions"] for name, entry in granted.items()},
               "ticket_id": str(ticket.id),
               "recording_asked": str(recording.asked), "recording_requested": recording_requested,
               "recorded": support_session.recorded}
    if target is not None:
        details.update(device_id=str(target.device.id),
                       pre_authorisation_id=str(target.record.id))
    if decision.effect is Effect.DENY:
        move(support_session, S.DENIED)
        support_session.ended_at = now
        support_session.ended_by = str(Party.SERVER)
        support_session.end_reason = str(EndReason.POLICY)
        support_session.end_detail = decision.rule
        await record(db, action=AuditAction.SUPPORT_SESSION_DENIED, actor=actor, details=details,
                     **audit_target(support_session))
        return RequestOutcome(decision=decision, support_session=support_session)

    code: str | None = None
    expires_at: datetime | None = None
    if target is None:
        code = new_join_code()
        expires_at = now + JOIN_CODE_TTL
        db.add(JoinCode(code_hash=join_code_digest(code), support_session_id=sid,
                        expires_at=expires_at))
        await db.flush()
    if recording.auditor_key is not None:
        await recordings.start_recording(
            db, organisation_id=org, support_session_id=sid, auditor_key=recording.auditor_key,
            retention=active.policy.privacy.retention.recordings, actor=actor)
    await record(db, action=AuditAction.SUPPORT_SESSION_REQUESTED, actor=actor,
                 details={**details, "max_duration_seconds": support_session.max_duration_seconds},
                 **audit_target(support_session))
    return RequestOutcome(decision=decision, support_session=support_session, join_code=code,
                          join_code_expires_at=expires_at)


# ---- end -------------------------------------------------------------------------------------


async def end_support_session(
    db: AsyncSession,
    *,
    support_session: SupportSession,
    ended_by: Party,
    reason: EndReason,
    detail: str = "",
    actor: Actor,
    state: SupportSessionState = S.ENDED,
) -> SupportSession:
    now = clock.now()
    move(support_session, state)
    support_session.ended_at = now
    support_session.ended_by = str(ended_by)
    support_session.end_reason = str(reason)
    support_session.end_detail = detail
    started = support_session.activated_at
    await record(db, action=AuditAction.SUPPORT_SESSION_ENDED, actor=actor,
                 details={"state": str(state), "ended_by": str(ended_by), "reason": str(reason),
                          "detail": detail,
                          "duration_seconds": (now - started).total_seconds() if started else 0},
                 **audit_target(support_session))
    if reason is EndReason.PROTOCOL_ERROR and detail.startswith("e2e."):
        await record(db, action=AuditAction.E2E_ERROR_REPORTED, actor=actor,
                     details={"code": detail, "reported_by": str(ended_by)},
                     **audit_target(support_session))
    if started is not None:
        # The time the technician spent with the person is time spent on the ticket.
        await tickets.record_session_time(
            db, ticket_id=support_session.ticket_id,
            technician=await technician_actor(db, support_session),
            seconds=round((now - started).total_seconds()),
            note=f"support session {support_session.id}", now=now,
        )
        await surveys.schedule_for_support_session(db, support_session=support_session,
                                                   actor=actor, now=now)
    return support_session


async def technician_actor(db: AsyncSession, support_session: SupportSession) -> Actor:
    """The session's technician as the actor of what the session does to its ticket."""
    technician = await identity.get_user(db, organisation_id=support_session.organisation_id,
                                         user_id=support_session.technician_id)
    assert technician is not None  # noqa: S101 -- foreign key
    return actor_for(technician)


async def end_by_request(
    db: AsyncSession, *, support_session: SupportSession, actor: Actor
) -> SupportSession:
    """``POST .../end``: the session's technician, or a supervisor holding ``end_any``."""
    if actor.id == support_session.technician_id:
        ended_by, reason = Party.TECHNICIAN, EndReason.TECHNICIAN_ENDED
    elif authorize_permission(actor, Permission.SUPPORT_SESSION_END_ANY).allowed:
        ended_by, reason = Party.SUPERVISOR, EndReason.SUPERVISOR_ENDED
    else:
        raise Forbidden("Only the session's technician or a supervisor can end it.",
                        permission=str(Permission.SUPPORT_SESSION_END_ANY))
    return await end_support_session(db, support_session=support_session, ended_by=ended_by,
                                     reason=reason, actor=actor)


# ---- finding ---------------------------------------------------------------------------------


async def get_for_update(db: AsyncSession, support_session_id: uuid.UUID) -> SupportSession | None:
    query = select(SupportSession).where(SupportSession.id == support_session_id)
    return (await db.execute(query.with_for_update())).scalar_one_or_none()


def sees_all(actor: Actor) -> bool:
    if authorize_permission(actor, Permission.SUPPORT_SESSION_READ_ALL).allowed:
        return True
    if authorize_permission(actor, Permission.SUPPORT_SESSION_READ_OWN).allowed:
        return False
    raise Forbidden(permission=str(Permission.SUPPORT_SESSION_READ_OWN))


def _visible(actor: Actor) -> Select[SupportSession]:
    query = select(SupportSession).where(SupportSession.organisation_id == _org(actor))
    if not sees_all(actor):
        query = query.where(SupportSession.requester_id == actor.id)
    return query


async def get_visible_or_raise(
    db: AsyncSession, *, support_session_id: uuid.UUID, actor: Actor, lock: bool = False
) -> SupportSession:
    query = _visible(actor).where(SupportSession.id == support_session_id)
    if lock:
        query = query.with_for_update()
    found = (await db.execute(query)).scalar_one_or_none()
    if found is None:
        raise SupportSessionNotFound(support_session_id=str(support_session_id))
    return found


async def list_visible(
    db: AsyncSession, *, actor: Actor, ticket_id: uuid.UUID | None = None,
    limit: int = 50, offset: int = 0,
) -> tuple[list[SupportSession], int]:
    query = _visible(actor)
    if ticket_id is not None:
        query = query.where(SupportSession.ticket_id == ticket_id)
    total = (await db.execute(select(func.count()).select_from(query.subquery()))).scalar_one()
    rows = await db.execute(
        query.order_by(SupportSession.created_at.desc(), SupportSession.id)
        .limit(limit).offset(offset)
    )
    return list(rows.scalars()), int(total)


async def list_for_node(
    db: AsyncSession, *, node_id: str, states: Sequence[SupportSessionState] = LIVE_STATES
) -> list[SupportSession]:
    rows = await db.execute(
        select(SupportSession).where(
            SupportSession.node_id == node_id,
            SupportSession.state.in_([str(s) for s in states]),
        )
    )
    return list(rows.scalars())


def is_final(support_session: SupportSession) -> bool:
    return SupportSessionState(support_session.state) in FINAL_STATES


def _of_kind(query: Select[SupportSession], unattended: bool | None) -> Select[SupportSession]:
    """Only unattended sessions (the enrolled service's connection), only the others (a
    person's join on the same device, same key), or both (None)."""
    if unattended is None:
        return query
    mode = SupportSession.mode == str(SessionMode.UNATTENDED)
    return query.where(mode if unattended else ~mode)


async def find_for_device(
    db: AsyncSession, *, device_public_key: str, unattended: bool | None = None
) -> SupportSession | None:
    """The live session a reconnecting agent belongs to (matched by the key it proved; an
    enrolled device's service and a person's join share the key, so each finds only its own
    kind: ``unattended``)."""
    rows = await db.execute(_of_kind(
        select(SupportSession).where(
            SupportSession.device_public_key == device_public_key,
            SupportSession.state.in_([str(S.AWAITING_CONSENT), str(S.ACTIVE)]),
        ), unattended).order_by(SupportSession.offered_at.desc()).limit(1)
    )
    return rows.scalar_one_or_none()


async def find_lost_for_device(
    db: AsyncSession, *, device_public_key: str, since: datetime, unattended: bool | None = None
) -> SupportSession | None:
    """A session of this device that ended while its agent was away, so the agent is told: lost
    since ``since``, or ended by an emergency (since ``since``, or at any time while that
    emergency is still active: an agent offline through the emergency hears of it whenever it
    comes back)."""
    rows = await db.execute(_of_kind(
        select(SupportSession).where(
            SupportSession.device_public_key == device_public_key,
            SupportSession.end_reason.in_([str(EndReason.CONNECTION_LOST),
                                           str(EndReason.EMERGENCY)]),
            SupportSession.ended_at >= since,
        ), unattended).order_by(SupportSession.ended_at.desc()).limit(1)
    )
    found = rows.scalar_one_or_none()
    if found is not None:
        return found
    rows = await db.execute(_of_kind(
        select(SupportSession).where(
            SupportSession.device_public_key == device_public_key,
            SupportSession.end_reason == str(EndReason.EMERGENCY),
        ), unattended).order_by(SupportSession.ended_at.desc()).limit(1)
    )
    ended = rows.scalar_one_or_none()
    if ended is not None and await emergency.is_active(db, organisation_id=ended.organisation_id):
        return ended
    return None
