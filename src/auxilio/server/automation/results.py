"""The device's answer to an automated run: verified with the device's key, stored, attached.

``record_result`` is called by the enrolled device's connection (support_sessions/agent_ws.py)
with the ``automation.result`` it sent; a result the server does not take is refused with an
``automation.result_*`` code, audited and committed before the refusal is raised.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.crypto.automation import AutomationInvalid, AutomationOutcome, verify_outcome
from auxilio.crypto.errors import CryptoError
from auxilio.crypto.keys import decode_ed25519_public_key
from auxilio.policy.roles import Role
from auxilio.protocol.types import SignedDocument
from auxilio.server.audit.actions import AuditAction
from auxilio.server.audit.service import record
from auxilio.server.automation import service
from auxilio.server.automation.models import AutomationRun as Run
from auxilio.server.context import Actor
from auxilio.server.db.base import utcnow
from auxilio.server.devices.models import Device
from auxilio.server.errors import Conflict
from auxilio.server.identity.models import User
from auxilio.server.tickets import attachments
from auxilio.server.tickets.models import Ticket


class ResultRefused(Conflict):
    """A result the server does not take (``code``: ``automation.result_*``); audited."""

    code = "automation.result_refused"

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message, **details)
        self.code = code  # type: ignore[misc]


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
    await service.audit_run(db, action, run, Actor.system(run.organisation_id), code=outcome.code,
                            exit_code=outcome.exit_code, output_sha256=outcome.output_sha256,
                            attachment_id=str(attachment_id) if attachment_id else None,
                            by="device")  # fmt: skip
    await service.schedule_repeat(db, run)
