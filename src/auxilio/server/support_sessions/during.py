"""What happens while a support session runs and after it ends: activity reports, warnings,
capability revocations, the technician's summary and the session report. Extensions have their
own module, ``extensions``."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.protocol.frames import ActivityKind, Party
from auxilio.protocol.frames import SessionActivity as ActivityMessage
from auxilio.protocol.report import CapabilityUse, FileFacts, RunbookRunNote, SessionReport
from auxilio.protocol.states import SupportSessionState
from auxilio.protocol.types import Capability
from auxilio.server.audit.actions import AuditAction
from auxilio.server.audit.service import record
from auxilio.server.context import Actor
from auxilio.server.errors import (
    Forbidden,
    SummaryNotApplicable,
    SupportSessionNotActive,
    SupportSessionNotEnded,
)
from auxilio.server.identity import service as identity
from auxilio.server.policies import service as policies
from auxilio.server.support_sessions import clock
from auxilio.server.support_sessions.models import SessionActivity, SupportSession
from auxilio.server.support_sessions.service import audit_target, is_final
from auxilio.server.tickets import service as tickets

S = SupportSessionState


def _require_active(support_session: SupportSession) -> None:
    if support_session.state != S.ACTIVE:
        raise SupportSessionNotActive(state=support_session.state)


def _require_technician(support_session: SupportSession, actor: Actor) -> None:
    if actor.id != support_session.technician_id:
        raise Forbidden("Only the session's technician can do this.")


# ---- activity and warnings -------------------------------------------------------------------


async def report_activity(
    db: AsyncSession, *, support_session: SupportSession, message: ActivityMessage, actor: Actor
) -> SessionActivity:
    """Keep an activity report as it came: kind, time, source and count in clear, the details
    only as the agent sealed them. The audit chain holds the SHA-256 of the sealed box, so the
    box the auditor later opens is provably the one reported; never the details themselves."""
    _require_active(support_session)
    digest = (hashlib.sha256(message.sealed_details.encode("ascii")).hexdigest()
              if message.sealed_details is not None else None)
    row = SessionActivity(support_session_id=support_session.id, at=message.at,
                          capability=str(message.capability), kind=str(message.kind),
                          source=str(message.source) if message.source else None,
                          count=message.count, sealed_details=message.sealed_details,
                          details_sha256=digest, size=message.size, sha256=message.sha256,
                          zone=message.zone, runbook_id=message.runbook_id,
                          exit_code=message.exit_code)
    db.add(row)
    facts = {name: value for name in ("size", "sha256", "zone", "runbook_id", "exit_code")
             if (value := getattr(message, name)) is not None}
    await record(db, action=AuditAction.ACTIVITY_REPORTED, actor=actor,
                 details={"capability": str(message.capability), "kind": str(message.kind),
                          "source": row.source, "count": message.count,
                          "at": message.at.isoformat(), "details_sha256": digest,
                          "granted": str(message.capability)
                          in support_session.granted_capabilities, **facts},
                 **audit_target(support_session))
    return row


async def record_activity_gap(
    db: AsyncSession, *, support_session: SupportSession, expected: int, received: int,
    actor: Actor,
) -> None:
    """Activity reports are numbered on the device; one out of sequence means the ones between
    were lost or dropped on the way."""
    await record(db, action=AuditAction.ACTIVITY_GAP, actor=actor,
                 details={"expected": expected, "received": received},
                 **audit_target(support_session))


async def record_report_mismatch(
    db: AsyncSession, *, support_session: SupportSession, differences: Sequence[str],
    actor: Actor,
) -> None:
    """The device disputes the one report: what it says differs, on record."""
    await record(db, action=AuditAction.REPORT_MISMATCH, actor=actor,
                 details={"differences": list(differences)}, **audit_target(support_session))


async def mark_warned(db: AsyncSession, *, support_session: SupportSession) -> int:
    """Note the warning as sent; the seconds left."""
    now = clock.now()
    assert support_session.not_after is not None  # noqa: S101 -- active sessions have one
    support_session.warned_at = now
    remaining = max(0, int((support_session.not_after - now).total_seconds()))
    await record(db, action=AuditAction.SUPPORT_SESSION_WARNING_SENT, actor=Actor.system(
        support_session.organisation_id), details={
            "ends_at": support_session.not_after.isoformat(), "remaining_seconds": remaining},
        **audit_target(support_session))
    return remaining


async def revoke_capability(
    db: AsyncSession, *, support_session: SupportSession, capability: Capability,
    revoked_by: Party, reason: str, actor: Actor,
) -> None:
    _require_active(support_session)
    if str(capability) in support_session.granted_capabilities:
        # Kept for the report: it was granted, then revoked, by whom and when.
        support_session.revoked_capabilities = {
            **(support_session.revoked_capabilities or {}),
            str(capability): {"at": clock.now().isoformat(), "by": str(revoked_by)},
        }
    support_session.granted_capabilities = [
        c for c in support_session.granted_capabilities if c != str(capability)
    ]
    await record(db, action=AuditAction.CAPABILITY_REVOKED, actor=actor,
                 details={"capability": str(capability), "revoked_by": str(revoked_by),
                          "reason": reason, "remaining": support_session.granted_capabilities},
                 **audit_target(support_session))


# ---- extensions ------------------------------------------------------------------------------


# ---- after the end ---------------------------------------------------------------------------


async def write_summary(
    db: AsyncSession, *, support_session: SupportSession, summary: str, actor: Actor
) -> SupportSession:
    _require_technician(support_session, actor)
    if not is_final(support_session):
        raise SupportSessionNotEnded(state=support_session.state)
    if support_session.activated_at is None:
        # Refused, expired or never joined: nothing was done, so there is nothing to summarise.
        raise SummaryNotApplicable(state=support_session.state)
    support_session.summary = summary
    support_session.summary_at = clock.now()
    await record(db, action=AuditAction.SUMMARY_WRITTEN, actor=actor,
                 details={"length": len(summary)}, **audit_target(support_session))
    # Into the ticket's history: an internal note, and for the person too where the policy says.
    active = await policies.policy_for_session(db, support_session)
    await tickets.record_session_summary(
        db, ticket_id=support_session.ticket_id, technician=actor, summary=summary,
        public=active.policy.post_session.summary_to_user, now=support_session.summary_at,
    )
    return support_session


async def list_activities(db: AsyncSession, support_session_id: uuid.UUID) -> list[SessionActivity]:
    rows = await db.execute(
        select(SessionActivity).where(SessionActivity.support_session_id == support_session_id)
        .order_by(SessionActivity.at)
    )
    return list(rows.scalars())


DETAILS_NOTE = (
    "Activity details (command lines, paths) are sealed on the device to the organisation's "
    "auditor key; the server shows kinds, counts and times only. An auditor with the private "
    "key can open them; the person saw them in clear on the device."
)


def _duration(start: datetime | None, end: datetime | None) -> float | None:
    return (end - start).total_seconds() if start and end else None


async def build_session_report(
    db: AsyncSession, *, support_session: SupportSession
) -> SessionReport:
    """The one report of a session (``protocol.report``), from what the server recorded: the
    consent, revocations, the agent's activity reports, the end and the summary."""
    org = support_session.organisation_id
    technician = await identity.get_user(db, organisation_id=org,
                                         user_id=support_session.technician_id)
    organisation = await identity.get_organisation(db, organisation_id=org)
    activities = await list_activities(db, support_session.id)
    revoked = support_session.revoked_capabilities or {}
    granted = set(support_session.granted_capabilities) | set(revoked)
    used = {a.capability for a in activities}
    capabilities = tuple(
        CapabilityUse(
            capability=Capability(name), granted=name in granted, used=name in used,
            revoked_at=datetime.fromisoformat(revoked[name]["at"]) if name in revoked else None,
            revoked_by=revoked[name]["by"] if name in revoked else None,
        )
        for name in support_session.requested_capabilities
    )  # fmt: skip
    summary_state: Literal["written", "pending", "not_required"]
    if support_session.summary:
        summary_state = "written"
    elif support_session.activated_at is None:
        summary_state = "not_required"  # nothing happened to summarise
    else:
        active = await policies.policy_for_session(db, support_session)
        summary_state = "pending" if active.policy.post_session.summary_to_user else "not_required"
    return SessionReport(
        support_session_id=str(support_session.id),
        ticket_ref=support_session.ticket_ref or None,
        technician_name=technician.display_name if technician else "?",
        organisation_name=organisation.name if organisation else "?",
        state=str(support_session.state),
        started_at=support_session.activated_at,
        ended_at=support_session.ended_at,
        duration_seconds=_duration(support_session.activated_at, support_session.ended_at),
        capabilities=capabilities,
        commands_run=sum(a.count for a in activities if a.kind == "command_run"),
        **activity_facts(activities),
        recorded=support_session.recorded,
        ended_by=support_session.ended_by,
        end_reason=support_session.end_reason,
        end_detail=support_session.end_detail or "",
        summary_state=summary_state,
        summary=support_session.summary or None,
        summary_at=support_session.summary_at if support_session.summary else None,
    )


def activity_facts(activities: Sequence[SessionActivity]) -> dict[str, Any]:
    """Files, zones, diagnostics and runbooks of the one report, from the activity reports."""
    def of(kind: ActivityKind) -> list[SessionActivity]:
        return [a for a in activities if a.kind == str(kind)]

    read, written = of(ActivityKind.FILE_READ), of(ActivityKind.FILE_WRITTEN)
    return {
        "files": FileFacts(read=len(read), read_bytes=sum(a.size or 0 for a in read),
                           written=len(written), written_bytes=sum(a.size or 0 for a in written)),
        "zones_opened": tuple(dict.fromkeys(a.zone for a in of(ActivityKind.ZONE_ALLOWED)
                                            if a.zone)),
        "zones_refused": tuple(dict.fromkeys(
            a.zone for a in of(ActivityKind.ZONE_REFUSED) + of(ActivityKind.ZONE_DENIED)
            if a.zone)),
        "diagnostics_sent": len(of(ActivityKind.DIAGNOSTICS_COLLECTED)),
        "clipboard_set": len(of(ActivityKind.CLIPBOARD_SET)),
        "clipboard_read": len(of(ActivityKind.CLIPBOARD_READ)),
        "runbooks_run": tuple(RunbookRunNote(runbook_id=a.runbook_id, exit_code=a.exit_code)
                              for a in of(ActivityKind.RUNBOOK_RUN) if a.runbook_id),
    }


async def build_report(db: AsyncSession, *, support_session: SupportSession) -> dict[str, Any]:
    """The REST report: the one report, plus the activity list (details sealed)."""
    report = await build_session_report(db, support_session=support_session)
    activities = await list_activities(db, support_session.id)
    return {
        **report.model_dump(),
        "activities": [{"at": a.at, "capability": a.capability, "kind": a.kind,
                        "source": a.source, "count": a.count, "size": a.size,
                        "sha256": a.sha256, "zone": a.zone, "runbook_id": a.runbook_id,
                        "exit_code": a.exit_code,
                        "details": "sealed" if a.sealed_details else "not sent",
                        "details_sha256": a.details_sha256} for a in activities],
        "details": DETAILS_NOTE,
    }
