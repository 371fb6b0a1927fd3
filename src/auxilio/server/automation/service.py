"""Automated runs on the server: scheduling, sending to the device, recording the signed result
(docs/unattended.md, "Automated runs").

A run is what an attended session does with a runbook or a diagnostics report, with no
technician attached: the same approved, signed and pinned runbook, the same collection, inside
the owner's pre-authorisation instead of a prompt.

- ``create_run`` asks the policy (mode ``automated`` for the technician and the capability, the
  ``unattended`` rules for the device's group, the runbook's approval) and finds a live
  pre-authorisation of the device with automated runs and the capability in scope whose window
  covers the due time. A refusal raises ``AutomationRefused`` with its code; nothing is kept.
- ``send_due`` (the scheduler's round) re-checks the pre-authorisation, the device, the
  pinned runbook, the person who scheduled the run as identity knows them now
  (``creator_actor``) and the active policy at the run's time (``check_policy``, as the
  request), signs the order and forwards it to the device's connection; a run whose window
  shuts while its device is offline expires. No run is sent during an emergency.
- ``record_result`` verifies the device's signature, the run id and the nonce, stores the
  outcome and attaches it to the ticket as a verified attachment.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.crypto.automation import (
    DIAGNOSTICS_SECTIONS,
    AutomationInvalid,
    AutomationOrder,
    AutomationOutcome,
    sign_order,
    verify_outcome,
)
from auxilio.crypto.errors import CryptoError
from auxilio.crypto.keys import b64url_encode, decode_ed25519_public_key
from auxilio.crypto.preauth import PreAuthorisation, verify_pre_authorisation
from auxilio.crypto.runbooks import ParameterInvalid, read_runbook, validate_parameters
from auxilio.policy.decision import Decision, Effect
from auxilio.policy.engine import explain
from auxilio.policy.requests import EvaluationContext, StartSupportSession, UseCapability
from auxilio.policy.roles import Permission, Role, role_has_permission
from auxilio.policy.schema import SessionMode
from auxilio.protocol.frames import MAX_CONTROL_MESSAGE_BYTES, AutomationRun, encode_message
from auxilio.protocol.types import SignedDocument
from auxilio.server.audit.actions import AuditAction
from auxilio.server.audit.service import record
from auxilio.server.automation.models import AutomationRun as Run
from auxilio.server.context import Actor
from auxilio.server.db.base import utcnow
from auxilio.server.devices.models import Device, PreAuthorisationRecord
from auxilio.server.emergency.state import is_active as emergency_active
from auxilio.server.errors import (
    Conflict,
    DomainError,
    Forbidden,
    NotFound,
    RunbookNotInCatalogue,
    RunbookSignatureInvalid,
    ValidationFailed,
)
from auxilio.server.identity.auth import actor_for
from auxilio.server.identity.models import User
from auxilio.server.policies import service as policies
from auxilio.server.runbooks import service as runbook_catalogue
from auxilio.server.tickets import attachments
from auxilio.server.tickets import service as tickets
from auxilio.server.tickets.models import Ticket

Kind = Literal["runbook", "diagnostics"]
LIVE_STATES = ("scheduled", "sent")
# How long a device has to start an order once sent (the order's not_after, within the window).
ORDER_TTL = timedelta(minutes=5)
# After the order's time and the runbook's own limit, how long the server waits for a result.
RESULT_GRACE = timedelta(minutes=1)
DIAGNOSTICS_TIMEOUT = timedelta(seconds=60)
MIN_REPEAT_SECONDS = 300
MAX_REPEAT_SECONDS = 31 * 24 * 3600
# A due time given in the past by at most this much is taken as now; more is refused.
PAST_TOLERANCE = timedelta(minutes=5)


class AutomationRefused(Forbidden):
    """The policy or the owner's pre-authorisation does not allow this run; ``code`` says why
    (``automation.*``) and ``details`` name the rule."""

    code = "automation.refused"

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message, **details)
        self.code = code  # type: ignore[misc]  # an instance's own code, as the audit needs


class AutomationRunNotFound(NotFound):
    code = "automation.run_not_found"
    default_message = "No such automated run on this device."


class AutomationNotCancellable(Conflict):
    code = "automation.not_cancellable"
    default_message = "Only a scheduled or sent run can be cancelled."


class AutomationInvalidRequest(ValidationFailed):
    code = "automation.invalid"


class AutomationTicketMismatch(ValidationFailed):
    """The ticket was opened by someone other than the device's owner: the device's signed
    results would land on another person's ticket (as ``unattended.ticket_device_mismatch``)."""

    code = "automation.ticket_device_mismatch"
    default_message = "The ticket was opened by someone other than the device's owner."


class AutomationParameterInvalid(ValidationFailed):
    code = "automation.parameter_invalid"


class AutomationOrderTooLarge(ValidationFailed):
    code = "automation.order_too_large"
    default_message = "The runbook is too large to send as one order."


class ResultRefused(Conflict):
    """A result the server does not take (``code``: ``automation.result_*``); audited."""

    code = "automation.result_refused"

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message, **details)
        self.code = code  # type: ignore[misc]


# -- the owner's pre-authorisation as the server holds it ----------------------------------------


def verified_pre_authorisation(
    device: Device, row: PreAuthorisationRecord
) -> PreAuthorisation | None:
    """The document as the device signed it (the row's copies are not trusted), or None."""
    if device.public_key is None:
        return None
    try:
        signed = SignedDocument.model_validate(row.document)
        document = verify_pre_authorisation(decode_ed25519_public_key(device.public_key), signed)
    except (CryptoError, ValueError):
        return None
    if document.id != str(row.id) or document.device_id != str(device.id):
        return None
    return document


def capability_of(kind: str) -> str:
    return "runbooks" if kind == "runbook" else "diagnostics"


async def _pre_authorisations(
    db: AsyncSession, device: Device
) -> list[tuple[PreAuthorisationRecord, PreAuthorisation]]:
    rows = await db.execute(
        select(PreAuthorisationRecord)
        .where(PreAuthorisationRecord.device_id == device.id,
               PreAuthorisationRecord.revoked_at.is_(None))
        .order_by(PreAuthorisationRecord.signed_at)
    )  # fmt: skip
    found = []
    for row in rows.scalars():
        document = verified_pre_authorisation(device, row)
        if document is not None:
            found.append((row, document))
    return found


async def find_pre_authorisation(
    db: AsyncSession, device: Device, *, kind: str, at: datetime
) -> tuple[PreAuthorisationRecord, PreAuthorisation]:
    """A live pre-authorisation allowing automated runs of ``kind`` whose window covers ``at``;
    ``AutomationRefused`` (``automation.not_pre_authorised`` or ``automation.outside_window``)."""
    capability = capability_of(kind)
    allowing = [
        (row, doc) for row, doc in await _pre_authorisations(db, device)
        if doc.automated_runs and capability in doc.scope and at < doc.window.not_after
    ]  # fmt: skip
    if not allowing:
        raise AutomationRefused(
            "automation.not_pre_authorised",
            f"The device's owner has not pre-authorised automated {capability}.",
            capability=capability,
        )
    for row, doc in allowing:
        if doc.window.covers(at):
            return row, doc
    openings = [o for _, d in allowing if (o := d.window.next_opening(at)) is not None]
    raise AutomationRefused(
        "automation.outside_window",
        "The owner's pre-authorisation does not cover that time.",
        next_opening=min(openings).isoformat() if openings else None,
    )


# -- the policy -----------------------------------------------------------------------------------


def _refusal(decision: Decision) -> AutomationRefused | None:
    """A denial or a required approval as a refusal; a consent is the owner's to give, and the
    pre-authorisation is that consent."""
    details = {"rule": decision.rule, "reason_code": decision.reason_code,
               "policy_version": decision.policy_version}  # fmt: skip
    if decision.effect is Effect.DENY:
        return AutomationRefused("automation.policy_denied", decision.reason, **details)
    if decision.effect is Effect.REQUIRE_APPROVAL:
        # No approval flow exists for automated runs: the run is refused, never half-allowed.
        return AutomationRefused("automation.approval_required", decision.reason, **details)
    return None


async def check_policy(
    db: AsyncSession, *, actor: Actor, device: Device, kind: str, runbook_id: str | None,
    ticket_id: uuid.UUID | None, pre_authorised_at: datetime, run_id: uuid.UUID, now: datetime,
    recorded_as: Actor | None = None,
) -> str | None:  # fmt: skip
    """Ask the active policy; the policy version on success, ``AutomationRefused`` otherwise.

    The one check of a run, asked when it is requested (``actor`` the caller) and again each
    time it is sent (``actor`` its creator as identity knows them now, ``creator_actor``; the
    decisions are then recorded as the system's, ``recorded_as``)."""
    from auxilio.server.support_sessions.service import _trainings

    org = device.organisation_id
    assert actor.role is not None  # noqa: S101 -- the route's identity is staff
    if not role_has_permission(actor.role, Permission.AUTOMATION_MANAGE):
        raise AutomationRefused(
            "automation.not_permitted", f"The role {actor.role} may not run automated work.",
            rule=f"roles.{actor.role}", reason_code="roles.automation_manage_denied")  # fmt: skip
    recorder = recorded_as or actor
    context = EvaluationContext(now=now, emergency_active=await emergency_active(
        db, organisation_id=org))  # fmt: skip
    trainings, lapsed = await _trainings(db, actor, now)
    common: dict[str, Any] = dict(
        technician_role=actor.role, mfa_verified=actor.mfa_verified, trainings=trainings,
        trainings_expired=lapsed, ticket_id=str(ticket_id) if ticket_id else None,
        device_group=device.device_group,
    )  # fmt: skip
    # The device's group pilot version at the run's time where one runs, for every question.
    active = await policies.get_policy_for(
        db, organisation_id=org, device_group=device.device_group, at=now)  # fmt: skip
    start = await policies.decide(
        db, actor=recorder, organisation_id=org, context=context, policy=active,
        request=StartSupportSession(mode=SessionMode.AUTOMATED, **common),
        target_type="automation_run", target_id=run_id,
    )  # fmt: skip
    if (refused := _refusal(start)) is not None:
        raise refused
    # The unattended rules (device group, ticket, owner's pre-authorisation, approval, the
    # emergency's lock) are those of an unattended session; read from the same policy.
    trail = explain(active.compiled, StartSupportSession(
        mode=SessionMode.UNATTENDED, owner_pre_authorised_at=pre_authorised_at, **common,
    ), context).trail  # fmt: skip
    for step in trail:
        if step.effect in (Effect.DENY, Effect.REQUIRE_APPROVAL) and step.rule.startswith(
            ("unattended", "emergency")
        ):
            decision = Decision(step.effect, step.rule, step.reason, active.compiled.version,
                                reason_code=step.reason_code)  # fmt: skip
            refused = _refusal(decision)
            assert refused is not None  # noqa: S101 -- a deny or an approval
            raise refused
    use = await policies.decide(
        db, actor=recorder, organisation_id=org, context=context, policy=active,
        request=UseCapability(
            capability=capability_of(kind), technician_role=actor.role,
            mode=SessionMode.AUTOMATED, runbook_id=runbook_id, ticket_id=common["ticket_id"],
        ), target_type="automation_run", target_id=run_id,
    )  # fmt: skip
    if (refused := _refusal(use)) is not None:
        raise refused
    return start.policy_version


async def creator_actor(db: AsyncSession, run: Run) -> Actor:
    """The run's creator as identity knows them now, as the request's actor was built: gone,
    deactivated or moved to another organisation is ``AutomationRefused``
    (``automation.creator_inactive``). The second factor verified when the run was requested
    cannot be asked again; it counts as verified while the person still has one enrolled."""
    user = await db.get(User, run.created_by)
    if user is None or not user.is_active or user.organisation_id != run.organisation_id:
        raise AutomationRefused(
            "automation.creator_inactive", "The person who scheduled the run is deactivated.",
            rule="identity.user.is_active", reason_code="identity.user_deactivated")  # fmt: skip
    return actor_for(user, mfa_verified=user.mfa_enrolled)


# -- creating, listing, cancelling ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewRun:
    kind: Kind
    runbook_id: str | None = None
    sections: Sequence[str] = ()
    params: dict[str, Any] | None = None
    ticket_id: uuid.UUID | None = None
    due_at: datetime | None = None
    repeat_seconds: int | None = None


def _check_request(request: NewRun, now: datetime) -> datetime:
    if request.kind == "runbook":
        if not request.runbook_id or request.sections:
            raise AutomationInvalidRequest("A runbook run names runbook_id and no sections.",
                                           field="runbook_id")  # fmt: skip
    else:
        if request.runbook_id or request.params:
            raise AutomationInvalidRequest(
                "A diagnostics run names sections, no runbook_id nor params.", field="sections")
        unknown = [s for s in request.sections if s not in DIAGNOSTICS_SECTIONS]
        if unknown or len(set(request.sections)) != len(request.sections):
            raise AutomationInvalidRequest("Unknown or repeated diagnostics sections.",
                                           field="sections", allowed=list(DIAGNOSTICS_SECTIONS))
    repeat = request.repeat_seconds
    if repeat is not None and not MIN_REPEAT_SECONDS <= repeat <= MAX_REPEAT_SECONDS:
        raise AutomationInvalidRequest(
            f"repeat_seconds is between {MIN_REPEAT_SECONDS} and {MAX_REPEAT_SECONDS}.",
            field="repeat_seconds")  # fmt: skip
    due = request.due_at or now
    if due < now - PAST_TOLERANCE:
        raise AutomationInvalidRequest("due_at is in the past.", field="due_at")
    return max(due, now)


async def _pinned_runbook(
    db: AsyncSession, *, organisation_id: uuid.UUID, runbook_id: str
) -> tuple[SignedDocument, int, str]:
    try:
        pins = await runbook_catalogue.pins_for(db, organisation_id=organisation_id,
                                               runbook_ids=[runbook_id], pre_authorised=())
        signed = await runbook_catalogue.signed_runbook(db, organisation_id=organisation_id,
                                                        runbook_id=runbook_id)  # fmt: skip
    except (RunbookNotInCatalogue, RunbookSignatureInvalid) as exc:
        raise AutomationRefused("automation.runbook_not_approved", exc.message,
                                runbook_id=runbook_id) from exc  # fmt: skip
    return signed, pins[0].version, pins[0].sha256


def _device_problem(device: Device) -> AutomationRefused | None:
    if device.revoked_at is not None:
        return AutomationRefused("automation.device_revoked", "The device was revoked.")
    if device.enrolled_at is None or device.public_key is None:
        return AutomationRefused("automation.device_not_enrolled",
                                 "Only an enrolled device runs automated work.")  # fmt: skip
    return None


def _build_order(
    run: Run, device: Device, *, ticket_ref: str, runbook: SignedDocument | None,
    issued_at: datetime, not_after: datetime,
) -> AutomationOrder:  # fmt: skip
    assert device.public_key is not None  # noqa: S101 -- enrolled
    spec = run.spec
    return AutomationOrder(
        run_id=str(run.id), organisation_id=str(run.organisation_id), device_id=str(device.id),
        device_public_key=device.public_key, pre_authorisation_id=str(run.pre_authorisation_id),
        kind=run.kind,
        runbook=runbook, params=spec.get("params") or {}, sections=tuple(spec.get("sections", ())),
        ticket_ref=ticket_ref[:200], issued_at=issued_at, not_after=not_after,
        nonce=b64url_encode(secrets.token_bytes(18)),
    )  # fmt: skip


def _fits(order: AutomationOrder, key: Ed25519PrivateKey) -> bool:
    message = AutomationRun(id="x" * 18, order=sign_order(key, order))
    return len(encode_message(message).encode()) <= MAX_CONTROL_MESSAGE_BYTES


def ticket_ref(ticket: Ticket | None) -> str:
    return f"#{ticket.number} {ticket.title}"[:200] if ticket is not None else ""


async def create_run(
    db: AsyncSession, *, device: Device, request: NewRun, actor: Actor,
    server_key: Ed25519PrivateKey, now: datetime | None = None,
) -> Run:  # fmt: skip
    """Check and keep a run; ``AutomationRefused`` when the policy or the owner does not allow
    it (the caller records the refusal apart: ``record_refusal``)."""
    now = now or utcnow()
    due = _check_request(request, now)
    if (problem := _device_problem(device)) is not None:
        raise problem
    ticket = None
    if request.ticket_id is not None:
        ticket = await tickets.get_visible_ticket_or_raise(db, ticket_id=request.ticket_id,
                                                           actor=actor)  # fmt: skip
        if ticket.requester_id != device.owner_id:
            raise AutomationTicketMismatch(ticket_id=str(ticket.id))
    row, document = await find_pre_authorisation(db, device, kind=request.kind, at=due)
    run_id = uuid.uuid4()
    version = await check_policy(
        db, actor=actor, device=device, kind=request.kind, runbook_id=request.runbook_id,
        ticket_id=request.ticket_id, pre_authorised_at=document.created_at, run_id=run_id,
        now=now,
    )  # fmt: skip
    spec: dict[str, Any]
    runbook = None
    if request.kind == "runbook":
        assert request.runbook_id is not None  # noqa: S101 -- _check_request
        runbook, number, digest = await _pinned_runbook(
            db, organisation_id=device.organisation_id, runbook_id=request.runbook_id)
        try:
            values = validate_parameters(read_runbook(server_key.public_key(), runbook),
                                         request.params or {})  # fmt: skip
        except ParameterInvalid as exc:
            raise AutomationParameterInvalid(str(exc), field="params", name=exc.name) from exc
        del values  # checked here, again by the agent; the order carries what was given
        spec = {"runbook_id": request.runbook_id, "version": number, "sha256": digest,
                "params": dict(request.params or {})}  # fmt: skip
    else:
        spec = {"sections": list(request.sections or DIAGNOSTICS_SECTIONS)}
    assert actor.id is not None  # noqa: S101 -- staff
    run = Run(
        id=run_id, organisation_id=device.organisation_id, device_id=device.id,
        ticket_id=request.ticket_id, pre_authorisation_id=row.id, kind=request.kind, spec=spec,
        state="scheduled", due_at=due, repeat_seconds=request.repeat_seconds,
        policy_version=version, created_by=actor.id, created_at=now,
    )  # fmt: skip
    probe = _build_order(run, device, ticket_ref=ticket_ref(ticket), runbook=runbook,
                         issued_at=now, not_after=now + ORDER_TTL)  # fmt: skip
    if not _fits(probe, server_key):
        raise AutomationOrderTooLarge(field="runbook_id")
    db.add(run)
    await db.flush()
    await _audit(db, AuditAction.AUTOMATION_RUN_SCHEDULED, run, actor,
                 pre_authorisation_id=str(row.id), due_at=due.isoformat(),
                 repeat_seconds=request.repeat_seconds, policy_version=version)  # fmt: skip
    return run


async def record_refusal(
    db: AsyncSession, *, organisation_id: uuid.UUID, device_id: uuid.UUID, request: NewRun,
    error: DomainError, actor: Actor,
) -> None:  # fmt: skip
    """After the request's rollback (ids, not the expired row)."""
    await record(db, action=AuditAction.AUTOMATION_RUN_REFUSED, actor=actor,
                 organisation_id=organisation_id, target_type="device", target_id=device_id,
                 details={"code": error.code, "kind": request.kind,
                          "runbook_id": request.runbook_id,
                          "ticket_id": str(request.ticket_id) if request.ticket_id else None,
                          **{k: v for k, v in error.details.items()
                             if k in ("rule", "reason_code", "capability")}})  # fmt: skip


async def list_runs(
    db: AsyncSession, *, device: Device, limit: int = 50, offset: int = 0
) -> list[Run]:
    rows = await db.execute(
        select(Run).where(Run.device_id == device.id)
        .order_by(Run.due_at.desc(), Run.id).limit(limit).offset(offset)
    )  # fmt: skip
    return list(rows.scalars())


async def get_run_or_raise(
    db: AsyncSession, *, device: Device, run_id: uuid.UUID, lock: bool = False
) -> Run:
    query = select(Run).where(Run.id == run_id, Run.device_id == device.id)
    if lock:
        query = query.with_for_update()
    found = (await db.execute(query)).scalar_one_or_none()
    if found is None:
        raise AutomationRunNotFound(run_id=str(run_id))
    return found


async def cancel_run(db: AsyncSession, *, run: Run, actor: Actor) -> Run:
    """A sent run is cancelled too: its result, if the device still answers, is refused."""
    if run.state not in LIVE_STATES:
        raise AutomationNotCancellable(state=run.state)
    was = run.state
    run.state, run.finished_at, run.error_code = "cancelled", utcnow(), "automation.cancelled"
    await _audit(db, AuditAction.AUTOMATION_RUN_CANCELLED, run, actor, previous_state=was)
    return run


async def _audit(db: AsyncSession, action: AuditAction, run: Run, actor: Actor,
                 **details: Any) -> None:  # fmt: skip
    await record(db, action=action, actor=actor, organisation_id=run.organisation_id,
                 target_type="automation_run", target_id=run.id,
                 details={"device_id": str(run.device_id), "kind": run.kind,
                          "runbook_id": run.spec.get("runbook_id"),
                          "version": run.spec.get("version"),
                          "ticket_id": str(run.ticket_id) if run.ticket_id else None,
                          **details})  # fmt: skip


# -- the scheduler's round ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outgoing:
    device_id: uuid.UUID
    message: AutomationRun


async def _finish(db: AsyncSession, run: Run, state: str, code: str | None, *,
                  now: datetime, detail: str | None = None, **why: Any) -> None:  # fmt: skip
    run.state, run.error_code, run.error_detail, run.finished_at = state, code, detail, now
    action = {"refused": AuditAction.AUTOMATION_RUN_REFUSED,
              "expired": AuditAction.AUTOMATION_RUN_EXPIRED,
              "done": AuditAction.AUTOMATION_RUN_DONE,
              "failed": AuditAction.AUTOMATION_RUN_FAILED}[state]  # fmt: skip
    await _audit(db, action, run, Actor.system(run.organisation_id), code=code, **why)
    if state == "expired":
        await _repeat(db, run)


async def _refuse(db: AsyncSession, run: Run, refused: AutomationRefused, *,
                  now: datetime) -> None:  # fmt: skip
    """Refused at send time: the code, the message and the rule that refused it."""
    await _finish(db, run, "refused", refused.code, now=now, detail=refused.message,
                  **{k: v for k, v in refused.details.items()
                     if k in ("rule", "reason_code", "policy_version")})  # fmt: skip


async def _send_one(
    db: AsyncSession, run: Run, *, server_key: Ed25519PrivateKey, online: set[uuid.UUID],
    now: datetime,
) -> Outgoing | None:  # fmt: skip
    device = await db.get(Device, run.device_id)
    assert device is not None  # noqa: S101 -- a foreign key
    if (problem := _device_problem(device)) is not None:
        await _finish(db, run, "refused", problem.code, now=now)
        return None
    row = await db.get(PreAuthorisationRecord, run.pre_authorisation_id)
    document = verified_pre_authorisation(device, row) if row is not None else None
    if row is None or document is None:
        await _finish(db, run, "refused", "automation.pre_authorisation_invalid", now=now)
        return None
    if row.revoked_at is not None:
        await _finish(db, run, "refused", "automation.pre_authorisation_revoked", now=now)
        return None
    if now >= document.window.not_after:
        await _finish(db, run, "refused", "automation.pre_authorisation_expired", now=now)
        return None
    until = document.window.open_until(now)
    if until is None:
        # Shut now: the run was due while it was open (or at its opening) and is past it.
        await _finish(db, run, "expired", "automation.window_passed", now=now)
        return None
    try:  # who scheduled it may lose the right meanwhile (deactivated, demoted)
        creator = await creator_actor(db, run)
    except AutomationRefused as exc:
        await _refuse(db, run, exc, now=now)
        return None
    if run.device_id not in online:
        return None  # waits: sent when the device connects, expired when the window shuts
    runbook = None
    timeout = DIAGNOSTICS_TIMEOUT
    if run.kind == "runbook":
        try:
            runbook, version, digest = await _pinned_runbook(
                db, organisation_id=run.organisation_id, runbook_id=run.spec["runbook_id"])
        except AutomationRefused as exc:
            await _finish(db, run, "refused", exc.code, now=now)
            return None
        if (version, digest) != (run.spec.get("version"), run.spec.get("sha256")):
            await _finish(db, run, "refused", "automation.runbook_changed", now=now)
            return None
        timeout = timedelta(seconds=read_runbook(server_key.public_key(),
                                                 runbook).timeout_seconds)  # fmt: skip
    try:  # the active policy now, at the run's time, for its creator as they are now
        policy_version = await check_policy(
            db, actor=creator, device=device, kind=run.kind, runbook_id=run.spec.get("runbook_id"),
            ticket_id=run.ticket_id, pre_authorised_at=document.created_at, run_id=run.id,
            now=now, recorded_as=Actor.system(run.organisation_id),
        )  # fmt: skip
    except AutomationRefused as exc:
        await _refuse(db, run, exc, now=now)
        return None
    ticket = await db.get(Ticket, run.ticket_id) if run.ticket_id else None
    order = _build_order(run, device, ticket_ref=ticket_ref(ticket), runbook=runbook,
                         issued_at=now, not_after=min(until, now + ORDER_TTL))  # fmt: skip
    signed = sign_order(server_key, order)
    run.order = signed.model_dump(mode="json")
    run.state, run.sent_at = "sent", now
    run.spec = {**run.spec, "nonce": order.nonce,
                "answer_by": (order.not_after + timeout + RESULT_GRACE).isoformat()}
    await _audit(db, AuditAction.AUTOMATION_RUN_SENT, run, Actor.system(run.organisation_id),
                 not_after=order.not_after.isoformat(),
                 policy_version=policy_version)  # fmt: skip
    return Outgoing(run.device_id, AutomationRun(id=uuid.uuid4().hex, order=signed))


async def send_due(
    db: AsyncSession, *, server_key: Ed25519PrivateKey, online: set[uuid.UUID],
    now: datetime | None = None, limit: int = 200,
) -> list[Outgoing]:  # fmt: skip
    """One round: due runs checked again and, for online devices, signed and marked sent
    (the caller forwards the messages after commit); runs whose result never came expire.
    Rows are locked and skipped when another node holds them."""
    now = now or utcnow()
    sent_rows = await db.execute(
        select(Run).where(Run.state == "sent").with_for_update(skip_locked=True).limit(limit)
    )
    for run in sent_rows.scalars():
        answer_by = run.spec.get("answer_by")
        if answer_by is None or now >= datetime.fromisoformat(answer_by):
            await _finish(db, run, "expired", "automation.no_result", now=now)
    due = await db.execute(
        select(Run).where(Run.state == "scheduled", Run.due_at <= now)
        .order_by(Run.due_at).with_for_update(skip_locked=True).limit(limit)
    )  # fmt: skip
    runs = list(due.scalars())
    if not runs:
        return []
    emergencies: dict[uuid.UUID, bool] = {}
    outgoing = []
    for run in runs:
        org = run.organisation_id
        if org not in emergencies:
            emergencies[org] = await emergency_active(db, organisation_id=org)
        if emergencies[org]:
            # No run is sent during an emergency; one whose window passes meanwhile expires.
            device = await db.get(Device, run.device_id)
            row = await db.get(PreAuthorisationRecord, run.pre_authorisation_id)
            document = verified_pre_authorisation(device, row) if device and row else None
            if document is None or document.window.open_until(now) is None:
                await _finish(db, run, "expired", "automation.emergency", now=now)
            continue
        sent = await _send_one(db, run, server_key=server_key, online=online, now=now)
        if sent is not None:
            outgoing.append(sent)
    return outgoing


async def due_device_ids(db: AsyncSession, *, now: datetime | None = None) -> set[uuid.UUID]:
    now = now or utcnow()
    rows = await db.execute(
        select(Run.device_id).where(Run.state == "scheduled", Run.due_at <= now).distinct()
    )
    return set(rows.scalars())


# -- the device's result --------------------------------------------------------------------------


def _attachment_content(run: Run, outcome: AutomationOutcome, signed: SignedDocument) -> str:
    return orjson.dumps({
        "automation_run_id": str(run.id), "device_id": str(run.device_id), "kind": run.kind,
        "runbook_id": run.spec.get("runbook_id"), "version": run.spec.get("version"),
        "status": outcome.status, "code": outcome.code, "exit_code": outcome.exit_code,
        "started_at": outcome.started_at.isoformat(),
        "finished_at": outcome.finished_at.isoformat(), "truncated": outcome.truncated,
        "output_sha256": outcome.output_sha256, "output": outcome.output,
        # The device's signature over all of it, for anyone to check with the device's key.
        "signed": signed.model_dump(mode="json"),
    }).decode()  # fmt: skip


async def _attach(db: AsyncSession, run: Run, outcome: AutomationOutcome,
                  signed: SignedDocument) -> uuid.UUID | None:  # fmt: skip
    if run.ticket_id is None:
        return None
    ticket = await db.get(Ticket, run.ticket_id)
    author = await db.get(User, run.created_by)
    if ticket is None or author is None:
        return None
    actor = Actor(id=author.id, display_name=author.display_name,
                  organisation_id=author.organisation_id, role=Role(author.role))  # fmt: skip
    name = (f"automated {run.spec.get('runbook_id')} v{run.spec.get('version')}"
            if run.kind == "runbook" else "automated diagnostics")  # fmt: skip
    attachment = await attachments.add_attachment(
        db, ticket=ticket, kind="runbook_result" if run.kind == "runbook" else "diagnostics",
        name=name, media_type="application/json",
        content=_attachment_content(run, outcome, signed), support_session_id=None, actor=actor,
        device_verified=True,
    )  # fmt: skip
    return attachment.id


async def _refuse_result(db: AsyncSession, device: Device, run_id: str, code: str,
                         message: str) -> ResultRefused:  # fmt: skip
    await record(db, action=AuditAction.AUTOMATION_RESULT_REFUSED,
                 actor=Actor.system(device.organisation_id),
                 organisation_id=device.organisation_id, target_type="device",
                 target_id=device.id, details={"run_id": run_id[:100], "code": code})  # fmt: skip
    # Committed here: the caller's transaction ends in the refusal's exception, which would
    # roll the record of it back (nothing else was written before a refusal).
    await db.commit()
    return ResultRefused(code, message, run_id=run_id[:100])


async def record_result(
    db: AsyncSession, *, device: Device, run_id: str, signed: SignedDocument,
) -> None:  # fmt: skip
    """Verify and store the device-signed outcome of one run (called by the device's WS).

    Refused (``ResultRefused``, audited ``automation:result:refused`` and committed before it
    is raised; the caller answers the agent with the code): ``automation.result_unknown_run``
    (no such run sent to this device), ``automation.result_invalid`` (not signed by this
    device's key, or not a valid outcome: a tampered output fails its hash),
    ``automation.result_mismatch`` (another run's id or nonce), ``automation.result_replayed``
    (the run already has its answer or was cancelled or expired)."""
    now = utcnow()
    try:
        key = uuid.UUID(run_id)
    except ValueError:
        key = None
    run = (await db.execute(select(Run).where(Run.id == key).with_for_update())
           ).scalar_one_or_none() if key is not None else None  # fmt: skip
    if run is None or run.device_id != device.id or run.order is None:
        raise await _refuse_result(db, device, run_id, "automation.result_unknown_run",
                                   "No such run was sent to this device.")  # fmt: skip
    if device.public_key is None:
        raise await _refuse_result(db, device, run_id, "automation.result_invalid",
                                   "The device has no key.")  # fmt: skip
    try:
        outcome = verify_outcome(decode_ed25519_public_key(device.public_key), signed)
    except (CryptoError, AutomationInvalid) as exc:
        raise await _refuse_result(db, device, run_id, "automation.result_invalid",
                                   str(exc)) from exc  # fmt: skip
    nonce = run.spec.get("nonce")
    if outcome.run_id != str(run.id) or outcome.nonce != nonce:
        raise await _refuse_result(db, device, run_id, "automation.result_mismatch",
                                   "The result answers another order.")  # fmt: skip
    if run.state != "sent":
        raise await _refuse_result(db, device, run_id, "automation.result_replayed",
                                   f"The run is {run.state} already.")  # fmt: skip
    run.result = {"signed": signed.model_dump(mode="json"), "status": outcome.status,
                  "code": outcome.code, "exit_code": outcome.exit_code,
                  "output_sha256": outcome.output_sha256, "truncated": outcome.truncated,
                  "started_at": outcome.started_at.isoformat(),
                  "finished_at": outcome.finished_at.isoformat()}  # fmt: skip
    attachment_id = await _attach(db, run, outcome, signed)
    if attachment_id is not None:
        run.result = {**run.result, "attachment_id": str(attachment_id)}
    state = {"done": "done", "failed": "failed", "refused": "refused"}[outcome.status]
    run.state, run.error_code, run.finished_at = state, outcome.code, now
    action = {"done": AuditAction.AUTOMATION_RUN_DONE, "failed": AuditAction.AUTOMATION_RUN_FAILED,
              "refused": AuditAction.AUTOMATION_RUN_REFUSED}[state]  # fmt: skip
    await _audit(db, action, run, Actor.system(run.organisation_id), code=outcome.code,
                 exit_code=outcome.exit_code, output_sha256=outcome.output_sha256,
                 attachment_id=str(attachment_id) if attachment_id else None,
                 by="device")  # fmt: skip
    await _repeat(db, run)


async def _repeat(db: AsyncSession, run: Run) -> None:
    """A repeating run schedules its next occurrence once this one has its answer."""
    if run.repeat_seconds is None:
        return
    step = timedelta(seconds=run.repeat_seconds)
    due = run.due_at + step
    now = utcnow()
    while due <= now:
        due += step
    spec = {k: v for k, v in run.spec.items() if k not in ("answer_by", "nonce")}
    following = Run(
        organisation_id=run.organisation_id, device_id=run.device_id, ticket_id=run.ticket_id,
        pre_authorisation_id=run.pre_authorisation_id, kind=run.kind, spec=spec,
        state="scheduled", due_at=due, repeat_seconds=run.repeat_seconds,
        policy_version=run.policy_version, created_by=run.created_by, created_at=now,
    )  # fmt: skip
    db.add(following)
    await db.flush()
    await _audit(db, AuditAction.AUTOMATION_RUN_SCHEDULED, following,
                 Actor.system(run.organisation_id), due_at=due.isoformat(),
                 repeat_of=str(run.id))  # fmt: skip
