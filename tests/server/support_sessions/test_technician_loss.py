"""When the technician is gone: the person is told at once, the session ends ``technician_lost``
after the grace period unless they come back, a join code is usable only while its technician
is attached, and a session that never became active has no summary."""

from __future__ import annotations

import asyncio
import uuid

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from auxilio.protocol.frames import EndReason, Party, SessionEnd, SessionJoin
from auxilio.protocol.types import Capability, ConsentDecision
from auxilio.server.support_sessions.models import JoinCode
from tests.server.support_sessions.conftest import ServerFactory, World
from tests.server.support_sessions.flow import active, offered, request
from tests.server.support_sessions.peers import FakeAgent, FakeTechnician, mid


def _client(live: object) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=live.url, timeout=20)  # type: ignore[attr-defined]
    client.live = live  # type: ignore[attr-defined]
    return client


async def _agent(url: str, **kwargs: object) -> FakeAgent:
    agent = FakeAgent(url, **kwargs)  # type: ignore[arg-type]
    await agent.connect()
    await agent.authenticate()
    return agent


async def _code_used(world: World, support_session_id: str) -> bool:
    async with world.app.state.sessionmaker() as db:
        row = (
            await db.execute(
                select(JoinCode).where(JoinCode.support_session_id == uuid.UUID(support_session_id))
            )
        ).scalar_one()
        return row.used_at is not None


async def test_a_technician_who_drops_is_announced_at_once_and_lost_after_the_grace(
    start_server: ServerFactory, world: World, signing_key: Ed25519PrivateKey
) -> None:
    live = start_server(technician_grace_seconds=1.0)
    async with _client(live) as http:
        running = await active(http, world, signing_key)
    await running.technician.close()
    notice = await running.agent.expect_state("technician_lost")
    assert notice.state == "active"
    assert notice.wait_seconds == 1
    end = await running.agent.expect("session.end")
    assert (end.ended_by, end.reason, end.detail) == (
        "server",
        "technician_lost",
        "technician_connection_lost",
    )
    row = await world.row(running.sid)
    assert (row.state, row.end_reason, row.ended_by) == ("ended", "technician_lost", "server")
    ended = await world.events("support_session:session:ended")
    assert ended[-1]["reason"] == "technician_lost"
    assert (await world.actions(running.sid))[-1] == "support_session:session:ended"


async def test_a_technician_who_reattaches_within_the_grace_keeps_the_session(
    start_server: ServerFactory, world: World, signing_key: Ed25519PrivateKey
) -> None:
    live = start_server(technician_grace_seconds=600.0)
    async with _client(live) as http:
        running = await active(http, world, signing_key)
    await running.technician.close()
    await running.agent.expect_state("technician_lost")
    again = FakeTechnician(live.url)
    again.e2e_key = running.technician.e2e_key  # the same `auxilio connect <id>` key
    await again.connect()
    await again.attach(running.sid, world.technician.token)
    await again.expect_state("attached")
    await running.agent.expect_state("technician_back")
    await running.agent.expect_state("technician_ready")
    # A fresh end-to-end handshake, as on any reattach: the old keys are gone with the socket.
    old_channel = running.agent.e2e
    assert running.agent.grant is not None
    await asyncio.gather(running.agent.start_e2e(), again.answer_e2e(running.agent.grant))
    assert running.agent.e2e is not old_channel and again.e2e is not None
    row = await world.row(running.sid)
    assert (row.state, row.end_reason) == ("active", None)


async def test_consent_given_while_the_technician_is_away_tells_the_person_at_once(
    start_server: ServerFactory, world: World, signing_key: Ed25519PrivateKey
) -> None:
    live = start_server(technician_grace_seconds=600.0)
    async with _client(live) as http:
        running = await offered(http, world, signing_key)
    await running.technician.close()  # during the prompt, which shows nothing of it
    await running.agent.expect_state("technician_lost")
    await running.agent.decide({Capability.CHAT: ConsentDecision.GRANTED})
    await running.agent.expect_state("consented")
    notice = await running.agent.expect_state("technician_lost")
    assert notice.state == "active"
    assert notice.wait_seconds is not None and 0 < notice.wait_seconds <= 600
    assert not any(m.reason == "technician_ready" for m in running.agent.texts_of("session.state"))


async def test_a_join_is_refused_while_the_technician_is_absent_and_the_code_survives(
    http: httpx.AsyncClient, world: World
) -> None:
    technician = FakeTechnician(http.live.url)  # type: ignore[attr-defined]
    created = (await request(http, world, technician)).json()
    agent = await _agent(http.live.url)  # type: ignore[attr-defined]
    await agent.send(SessionJoin(id=mid(), join_code=created["join_code"]))
    refused = await agent.expect_error("join_code.technician_absent")
    assert "not connected right now" in refused.message
    assert agent.texts_of("session.offer") == []
    assert (await world.row(created["id"])).state == "requested"
    assert not await _code_used(world, created["id"])
    rejected = await world.events("support_session:join_code:rejected")
    assert rejected[-1]["code"] == "join_code.technician_absent"
    # Once the technician is attached the same code, on the same connection, is offered.
    await technician.connect()
    await technician.attach(created["id"], world.technician.token)
    await technician.expect_state("attached")
    offer = await agent.join(created["join_code"])
    assert offer.support_session_id == created["id"]
    await technician.expect_state("offered")


async def test_the_code_of_a_technician_who_left_before_the_join_cannot_be_used(
    start_server: ServerFactory, world: World
) -> None:
    live = start_server(technician_grace_seconds=1.0)
    technician = FakeTechnician(live.url)
    async with _client(live) as http:
        created = (await request(http, world, technician)).json()
    await technician.connect()
    await technician.attach(created["id"], world.technician.token)
    await technician.expect_state("attached")
    await technician.close()  # `auxilio connect` killed while showing the code
    agent = await _agent(live.url)
    await agent.send(SessionJoin(id=mid(), join_code=created["join_code"]))
    await agent.expect_error("join_code.technician_absent")
    row = await world.wait_for_state(created["id"], "ended")
    assert (row.end_reason, row.device_id) == ("technician_lost", None)
    assert not await _code_used(world, created["id"])


async def test_no_summary_for_a_session_that_never_became_active(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    running = await offered(http, world, signing_key)
    await running.agent.decide({Capability.CHAT: ConsentDecision.REFUSED})
    end = await running.technician.expect("session.end")
    assert end.reason == "consent_refused"
    response = await http.post(
        f"/api/v1/support-sessions/{running.sid}/summary",
        headers=world.technician.headers,
        json={"summary": "Nothing to do: refused."},
    )
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "summary_not_applicable"
    row = await world.row(running.sid)
    assert (row.summary, row.summary_at) == (None, None)
    assert "support_session:summary:written" not in await world.actions(running.sid)


async def test_a_summary_after_an_active_session_is_still_taken(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    running = await active(http, world, signing_key, handshake=False)
    await running.technician.send(
        SessionEnd(
            id=mid(),
            support_session_id=running.sid,
            ended_by=Party.TECHNICIAN,
            reason=EndReason.TECHNICIAN_ENDED,
        )
    )
    await running.agent.expect("session.end")
    response = await http.post(
        f"/api/v1/support-sessions/{running.sid}/summary",
        headers=world.technician.headers,
        json={"summary": "Checked the printer queue."},
    )
    assert response.status_code == 200, response.text
