"""The scheduler's round: due automated runs checked again at send time, signed and sent.

A run was checked when it was scheduled (``service.create_run``); by the time it is due the
device, its owner's pre-authorisation, the window, the runbook, the creator's rights and the
active policy may all have changed, so each is checked again here, against the request as it
was made, and a run that no longer holds is refused with the rule's code. Runs whose result
never came expire; during an emergency nothing is sent.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.crypto.automation import sign_order
from auxilio.crypto.runbooks import read_runbook
from auxilio.protocol.frames import AutomationRun
from auxilio.server.audit.actions import AuditAction
from auxilio.server.automation import service
from auxilio.server.automation.models import AutomationRun as Run
from auxilio.server.context import Actor
from auxilio.server.db.base import utcnow
from auxilio.server.devices.models import Device, PreAuthorisationRecord
from auxilio.server.emergency.state import is_active as emergency_active
from auxilio.server.tickets.models import Ticket


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
    await service.audit_run(db, action, run, Actor.system(run.organisation_id), code=code, **why)
    if state == "expired":
        await service.schedule_repeat(db, run)


async def _refuse(db: AsyncSession, run: Run, refused: service.AutomationRefused, *,
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
    if (problem := service.device_problem(device)) is not None:
        await _finish(db, run, "refused", problem.code, now=now)
        return None
    row = await db.get(PreAuthorisationRecord, run.pre_authorisation_id)
    document = service.verified_pre_authorisation(device, row) if row is not None else None
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
        creator = await service.creator_actor(db, run)
    except service.AutomationRefused as exc:
        await _refuse(db, run, exc, now=now)
        return None
    if run.device_id not in online:
        return None  # waits: sent when the device connects, expired when the window shuts
    runbook = None
    timeout = service.DIAGNOSTICS_TIMEOUT
    if run.kind == "runbook":
        try:
            runbook, version, digest = await service.pinned_runbook(
                db, organisation_id=run.organisation_id, runbook_id=run.spec["runbook_id"])
        except service.AutomationRefused as exc:
            await _finish(db, run, "refused", exc.code, now=now)
            return None
        if (version, digest) != (run.spec.get("version"), run.spec.get("sha256")):
            await _finish(db, run, "refused", "automation.runbook_changed", now=now)
            return None
        timeout = timedelta(seconds=read_runbook(server_key.public_key(),
                                                 runbook).timeout_seconds)  # fmt: skip
    try:  # the active policy now, at the run's time, for its creator as they are now
        policy_version = await service.check_policy(
            db, actor=creator, device=device, kind=run.kind, runbook_id=run.spec.get("runbook_id"),
            ticket_id=run.ticket_id, pre_authorised_at=document.created_at, run_id=run.id,
            now=now, recorded_as=Actor.system(run.organisation_id),
        )  # fmt: skip
    except service.AutomationRefused as exc:
        await _refuse(db, run, exc, now=now)
        return None
    ticket = await db.get(Ticket, run.ticket_id) if run.ticket_id else None
    order = service.build_order(run, device, ticket_ref=service.ticket_ref(ticket),
                                runbook=runbook, issued_at=now,
                                not_after=min(until, now + service.ORDER_TTL))  # fmt: skip
    signed = sign_order(server_key, order)
    run.order = signed.model_dump(mode="json")
    run.state, run.sent_at = "sent", now
    run.spec = {**run.spec, "nonce": order.nonce,
                "answer_by": (order.not_after + timeout + service.RESULT_GRACE).isoformat()}
    await service.audit_run(db, AuditAction.AUTOMATION_RUN_SENT, run,
                            Actor.system(run.organisation_id),
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
            document = service.verified_pre_authorisation(device, row) if device and row else None
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
