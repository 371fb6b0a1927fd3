"""What a support session does to its ticket: the inputs of the KPIs (issue 8, section 5)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select, update

from auxilio.protocol.frames import EndReason, Party, SessionEnd
from auxilio.protocol.types import Capability, ConsentDecision
from auxilio.server.audit.models import AuditEvent
from auxilio.server.support_sessions.models import SupportSession
from auxilio.server.tickets.models import Ticket, TicketComment, TimeEntry
from tests.server.support_sessions.conftest import World, policy_text
from tests.server.support_sessions.flow import Running, active, offered
from tests.server.support_sessions.peers import mid


async def _ticket(world: World) -> Ticket:
    async with world.app.state.sessionmaker() as db:
        found = await db.get(Ticket, world.ticket_id)
        assert found is not None
        return found


async def _end_after(world: World, running: Running, minutes: int) -> None:
    # As if the session had been active for ``minutes``: the time entry is its real duration.
    async with world.app.state.sessionmaker() as db, db.begin():
        await db.execute(
            update(SupportSession)
            .where(SupportSession.id == uuid.UUID(running.sid))
            .values(activated_at=datetime.now(UTC) - timedelta(minutes=minutes))
        )
    await running.agent.send(
        SessionEnd(
            id=mid(),
            support_session_id=running.sid,
            ended_by=Party.END_USER,
            reason=EndReason.USER_ENDED,
        )
    )
    await world.wait_for_state(running.sid, "ended")


async def test_an_active_session_opens_the_ticket_and_sets_its_first_response(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    # Observed: after two sessions ticket #1 was still new, with no first response.
    before = await _ticket(world)
    assert (before.status, before.first_response_at) == ("new", None)
    running = await offered(http, world, signing_key)
    assert (await _ticket(world)).status == "new"  # asked, not yet reached
    await running.agent.decide({Capability.CHAT: ConsentDecision.GRANTED})
    await running.agent.expect_state("consented")
    after = await _ticket(world)
    assert after.status == "open" and after.first_response_at is not None
    assert "ticket:status:changed" in await _ticket_actions(world)


async def _ticket_actions(world: World) -> list[str]:
    async with world.app.state.sessionmaker() as db:
        rows = await db.execute(
            select(AuditEvent.action).where(
                AuditEvent.target_id == str(world.ticket_id).replace("-", "")
            )
        )
        return [r for (r,) in rows]


async def test_the_sessions_duration_becomes_the_technicians_time_entry(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    running = await active(http, world, signing_key, handshake=False)
    await _end_after(world, running, 7)
    async with world.app.state.sessionmaker() as db:
        entries = (await db.execute(select(TimeEntry))).scalars().all()
    assert len(entries) == 1
    assert entries[0].technician_id == world.technician.user.id
    assert 7 * 60 <= entries[0].seconds <= 7 * 60 + 30
    assert entries[0].note == f"support session {running.sid}"
    assert (await _ticket(world)).time_spent_seconds == entries[0].seconds


async def test_a_session_that_never_started_logs_no_time(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    running = await offered(http, world, signing_key)
    await running.agent.send(
        SessionEnd(
            id=mid(),
            support_session_id=running.sid,
            ended_by=Party.END_USER,
            reason=EndReason.USER_ENDED,
        )
    )
    await world.wait_for_state(running.sid, "ended")
    async with world.app.state.sessionmaker() as db:
        assert (await db.execute(select(TimeEntry))).scalars().all() == []
    assert (await _ticket(world)).status == "new"


async def test_the_summary_goes_into_the_tickets_history(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    running = await active(http, world, signing_key, handshake=False)
    await _end_after(world, running, 1)
    auth = {"Authorization": f"Bearer {world.technician.token}"}
    url = f"/api/v1/support-sessions/{running.sid}/summary"
    empty = await http.post(url, headers=auth, json={"summary": "   "})
    assert empty.status_code == 422, empty.text
    written = await http.post(url, headers=auth, json={"summary": "Reset the network adapter."})
    assert written.status_code == 200, written.text
    async with world.app.state.sessionmaker() as db:
        comments = (
            (await db.execute(select(TicketComment).order_by(TicketComment.internal)))
            .scalars()
            .all()
        )
    assert [(c.body, c.internal) for c in comments] == [
        ("Reset the network adapter.", False),
        ("Reset the network adapter.", True),
    ]
    # The person sees the public one in their ticket.
    seen = await http.get(
        f"/api/v1/tickets/{world.ticket_id}/comments", headers=world.requester.headers
    )
    assert [c["body"] for c in seen.json() if not c["internal"]] == ["Reset the network adapter."]


async def test_the_summary_stays_internal_where_the_policy_says_so(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    await world.use_policy(policy_text(extra="post_session:\n  summary_to_user: false\n"))
    running = await active(http, world, signing_key, handshake=False)
    await _end_after(world, running, 1)
    auth = {"Authorization": f"Bearer {world.technician.token}"}
    await http.post(
        f"/api/v1/support-sessions/{running.sid}/summary",
        headers=auth,
        json={"summary": "Internal notes only."},
    )
    async with world.app.state.sessionmaker() as db:
        comments = (await db.execute(select(TicketComment))).scalars().all()
    assert [(c.body, c.internal) for c in comments] == [("Internal notes only.", True)]
