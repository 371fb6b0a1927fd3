"""Files, zones, diagnostics and runbooks in the audit and the one report: the clear facts (size,
hash, zone, runbook, exit code) are kept and counted; the names stay sealed."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from auxilio.protocol.frames import ActivityKind, EndReason, Party, SessionActivity, SessionEnd
from auxilio.protocol.report import SessionReport, file_lines
from auxilio.server.support_sessions.models import SessionActivity as ActivityRow
from tests.server.support_sessions.conftest import World
from tests.server.support_sessions.flow import active
from tests.server.support_sessions.peers import mid

CONTENT_HASH = hashlib.sha256(b"the file").hexdigest()


def activity(sid: str, capability: str, kind: ActivityKind, **facts: object) -> SessionActivity:
    return SessionActivity(id=mid(), support_session_id=sid, at=datetime.now(UTC),
                           capability=capability, kind=kind, **facts)  # type: ignore[arg-type]


async def test_file_zone_diagnostics_and_runbook_facts_reach_the_audit_and_the_report(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    await world.use_policy(world_policy())
    running = await active(http, world, signing_key, ("chat", "files", "diagnostics"))
    sid, agent = running.sid, running.agent
    for message in (
        activity(sid, "files", ActivityKind.FILE_READ, size=8, sha256=CONTENT_HASH),
        activity(sid, "files", ActivityKind.FILE_WRITTEN, size=1200, sha256=CONTENT_HASH),
        activity(sid, "files", ActivityKind.ZONE_REFUSED, zone="pictures"),
        activity(sid, "files", ActivityKind.ZONE_ALLOWED, zone="documents"),
        activity(sid, "files", ActivityKind.FILE_READ, size=100, sha256=CONTENT_HASH),
        activity(sid, "diagnostics", ActivityKind.DIAGNOSTICS_COLLECTED, size=5000),
        activity(sid, "runbooks", ActivityKind.RUNBOOK_RUN, runbook_id="flush-dns", exit_code=0),
        activity(sid, "runbooks", ActivityKind.RUNBOOK_RUN, runbook_id="collect-logs"),
    ):
        await agent.send(message)
    await agent.send(SessionEnd(id=mid(), support_session_id=sid, ended_by=Party.END_USER,
                                reason=EndReason.USER_ENDED))
    await world.wait_for_state(sid, "ended")

    events = await world.events("support_session:activity:reported")
    reads = [e for e in events if e["kind"] == "file_read"]
    assert [(e["size"], e["sha256"]) for e in reads] == [(8, CONTENT_HASH), (100, CONTENT_HASH)]
    assert [e["zone"] for e in events if e["kind"].startswith("zone_")] == ["pictures",
                                                                             "documents"]
    assert [(e["runbook_id"], e.get("exit_code")) for e in events
            if e["kind"] == "runbook_run"] == [("flush-dns", 0), ("collect-logs", None)]

    auth = {"Authorization": f"Bearer {world.technician.token}"}
    body = (await http.get(f"/api/v1/support-sessions/{sid}/report", headers=auth)).json()
    report = SessionReport.model_validate({k: v for k, v in body.items()
                                           if k in SessionReport.model_fields})
    assert report.files.model_dump() == {"read": 2, "read_bytes": 108, "written": 1,
                                         "written_bytes": 1200}  # fmt: skip
    assert report.zones_opened == ("documents",) and report.zones_refused == ("pictures",)
    assert report.diagnostics_sent == 1
    assert [(n.runbook_id, n.exit_code) for n in report.runbooks_run] == [
        ("flush-dns", 0), ("collect-logs", None)]
    assert file_lines(report) == [
        "Files: 2 read (108 bytes), 1 written (1200 bytes)",
        "Personal folders opened: documents (refused: pictures)",
        "Diagnostics sent: 1",
        "Runbooks run: flush-dns (exit 0), collect-logs (stopped at its time limit)",
    ]
    async with world.app.state.sessionmaker() as db:
        rows = (await db.execute(select(ActivityRow).where(
            ActivityRow.support_session_id == uuid.UUID(sid)))).scalars().all()
    # No name in clear anywhere in the rows: only the sealed box (none here: no auditor key).
    assert all(row.sealed_details is None for row in rows)
    assert {row.zone for row in rows} == {None, "pictures", "documents"}


def world_policy() -> str:
    from tests.server.support_sessions.conftest import policy_text

    return policy_text(extra="""
personal_data_zones:
  on_access: require_consent
""").replace(
        "  chat: {roles:",
        "  file_transfer: {roles: [technician, senior_technician, supervisor], direction: both}\n"
        "  diagnostics: {roles: [technician, senior_technician, supervisor]}\n"
        "  chat: {roles:",
    )


async def test_a_gap_in_the_activity_sequence_and_a_disputed_report_are_audited(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    from auxilio.protocol.frames import SessionReportMismatch

    await world.use_policy(world_policy())
    running = await active(http, world, signing_key, ("chat", "files"))
    sid, agent = running.sid, running.agent
    for seq in (1, 2, 5):  # 3 and 4 lost on the way
        await agent.send(activity(sid, "files", ActivityKind.FILE_LISTED, seq=seq))
    await agent.send(SessionEnd(id=mid(), support_session_id=sid, ended_by=Party.END_USER,
                                reason=EndReason.USER_ENDED))
    await world.wait_for_state(sid, "ended")
    await agent.send(SessionReportMismatch(
        id=mid(), support_session_id=sid,
        differences=("files read: this device saw 1, the server says 0",)))
    for _ in range(100):
        if await world.events("support_session:report:mismatch"):
            break
        await asyncio.sleep(0.05)
    assert await world.events("support_session:activity:gap") == [
        {"expected": 3, "received": 5}]
    assert await world.events("support_session:report:mismatch") == [
        {"differences": ["files read: this device saw 1, the server says 0"]}]
