"""Automated runs on the server: scheduling, sending to the device, recording the signed result
(docs/unattended.md, "Automated runs").

A run is what an attended session does with a runbook or a diagnostics report, with no
technician attached: the same approved, signed and pinned runbook, the same collection, inside
the owner's pre-authorisation instead of a prompt.

- ``create_run`` asks the policy (mode ``automated`` for the technician and the capability, the
  ``unattended`` rules for the device's group, the runbook's approval) and finds a live
  pre-authorisation of the device with automated runs and the capability in scope whose window
  covers the due time. A refusal raises ``AutomationRefused`` with its code; nothing is kept.
- ``sending.send_due`` (the scheduler's round) re-checks the pre-authorisation, the device, the
  pinned runbook, the person who scheduled the run as identity knows them now
  (``creator_actor``) and the active policy at the run's time (``check_policy``, as the
  request), signs the order and forwards it to the device's connection; a run whose window
  shuts while its device is offline expires. No run is sent during an emergency.
- ``results.record_result`` verifies the device's signature, the run id and the nonce, stores the
  outcome and attaches it to the ticket as a verified attachment.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.crypto.automation import (
    DIAGNOSTICS_SECTIONS,
    AutomationOrder,
    sign_order,
)
from auxilio.crypto.errors import CryptoError
from auxilio.crypto.keys import b64url_encode, decode_ed25519_public_key
from auxilio.crypto.preauth import PreAuthorisation, verify_pre_authorisation
from auxilio.crypto.runbooks import ParameterInvalid, read_runbook, validate_parameters
from auxilio.policy.decision import Decision, Effect
from auxilio.policy.engine import explain
from auxilio.policy.requests import EvaluationContext, StartSupportSession, UseCapability
from auxilio.policy.roles import Permission, role_has_permission
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


async def pinned_runbook(
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


def device_problem(device: Device) -> AutomationRefused | None:
    if device.revoked_at is not None:
        return AutomationRefused("automation.device_revoked", "The device was revoked.")
    if device.enrolled_at is None or device.public_key is None:
        return AutomationRefused("automation.device_not_enrolled",
                                 "Only an enrolled device runs automated work.")  # fmt: skip
    return None


def build_order(
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
    if (problem := device_problem(device)) is not None:
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
        runbook, number, digest = await pinned_runbook(
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
    probe = build_order(run, device, ticket_ref=ticket_ref(ticket), runbook=runbook,
                         issued_at=now, not_after=now + ORDER_TTL)  # fmt: skip
    if not _fits(probe, server_key):
        raise AutomationOrderTooLarge(field="runbook_id")
    db.add(run)
    await db.flush()
    await audit_run(db, AuditAction.AUTOMATION_RUN_SCHEDULED, run, actor,
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
    await audit_run(db, AuditAction.AUTOMATION_RUN_CANCELLED, run, actor, previous_state=was)
    return run


async def audit_run(db: AsyncSession, action: AuditAction, run: Run, actor: Actor,
                    **details: Any) -> None:  # fmt: skip
    await record(db, action=action, actor=actor, organisation_id=run.organisation_id,
                 target_type="automation_run", target_id=run.id,
                 details={"device_id": str(run.device_id), "kind": run.kind,
                          "runbook_id": run.spec.get("runbook_id"),
                          "version": run.spec.get("version"),
                          "ticket_id": str(run.ticket_id) if run.ticket_id else None,
                          **details})  # fmt: skip


async def schedule_repeat(db: AsyncSession, run: Run) -> None:
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
    await audit_run(db, AuditAction.AUTOMATION_RUN_SCHEDULED, following,
                    Actor.system(run.organisation_id), due_at=due.isoformat(),
                    repeat_of=str(run.id))  # fmt: skip
