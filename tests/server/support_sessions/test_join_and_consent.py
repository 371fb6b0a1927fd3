"""Join codes and consent receipts: every refusal has its code, is audited, loses nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import update

from auxilio.protocol.types import Capability, ConsentDecision
from auxilio.server.support_sessions.models import JoinCode
from tests.server.support_sessions.conftest import World
from tests.server.support_sessions.flow import offered, request
from tests.server.support_sessions.peers import FakeAgent, FakeTechnician, mid

REFUSED, TIMED_OUT = ConsentDecision.REFUSED, ConsentDecision.TIMED_OUT


async def _agent(http: httpx.AsyncClient) -> FakeAgent:
    agent = FakeAgent(http.live.url)  # type: ignore[attr-defined]
    await agent.connect()
    await agent.authenticate()
    return agent


async def test_join_codes_that_are_wrong_used_or_expired_are_refused_and_audited(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    from auxilio.protocol.frames import SessionJoin

    running = await offered(http, world, signing_key)
    stranger = await _agent(http)
    await stranger.send(SessionJoin(id=mid(), join_code="AAA-AAA-AAA"))
    await stranger.expect_error("join_code.invalid")
    await stranger.send(SessionJoin(id=mid(), join_code=running.created["join_code"]))
    await stranger.expect_error("join_code.used")

    second = (await request(http, world, FakeTechnician(http.live.url))).json()  # type: ignore[attr-defined]
    async with world.app.state.sessionmaker() as db, db.begin():
        await db.execute(update(JoinCode).where(
            JoinCode.support_session_id == uuid.UUID(second["id"])
        ).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    await stranger.send(SessionJoin(id=mid(), join_code=second["join_code"]))
    await stranger.expect_error("join_code.expired")

    rejected = await world.events("support_session:join_code:rejected")
    assert [e["code"] for e in rejected] == ["join_code.invalid", "join_code.used",
                                             "join_code.expired"]
    assert (await world.row(second["id"])).state == "requested"
    # Two more wrong codes make five: the connection is closed.
    for _ in range(2):
        await stranger.send(SessionJoin(id=mid(), join_code="AAA-AAA-AAA"))
        await stranger.expect_error("join_code.invalid")
    await stranger.closed.wait()
    assert stranger.close_code == 1008


async def test_a_receipt_with_a_bad_signature_or_for_another_grant_is_refused(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    running = await offered(http, world, signing_key)
    agent = running.agent
    await agent.decide({Capability.CHAT: ConsentDecision.GRANTED},
                       key=Ed25519PrivateKey.generate())
    await agent.expect_error("receipt.bad_signature")
    await agent.decide({Capability.CHAT: ConsentDecision.GRANTED},
                       nonce="A" * 22)
    await agent.expect_error("receipt.wrong_grant")
    assert (await world.row(running.sid)).state == "awaiting_consent"
    codes = [e["code"] for e in await world.events("support_session:receipt:rejected")]
    assert codes == ["receipt.bad_signature", "receipt.wrong_grant"]
    # The session still takes a good receipt afterwards.
    await agent.decide({Capability.CHAT: ConsentDecision.GRANTED})
    await agent.expect_state("consented")


async def test_consent_refused_for_everything_rejects_the_session(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    running = await offered(http, world, signing_key, ("chat", "terminal"))
    await running.agent.decide({Capability.CHAT: REFUSED, Capability.TERMINAL: REFUSED})
    end = await running.agent.expect("session.end")
    assert (end.ended_by, end.reason) == ("end_user", "consent_refused")
    row = await world.row(running.sid)
    assert (row.state, row.end_reason) == ("rejected", "consent_refused")
    receipts = await http.get(f"/api/v1/support-sessions/{running.sid}/receipts",
                              headers=world.technician.headers)
    assert receipts.json()[0]["decisions"] == {"chat": "refused", "terminal": "refused"}


async def test_a_prompt_that_timed_out_expires_the_session(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    running = await offered(http, world, signing_key)
    await running.agent.decide({Capability.CHAT: TIMED_OUT})
    end = await running.agent.expect("session.end")
    assert end.reason == "consent_timed_out"
    assert (await world.row(running.sid)).state == "expired"


async def test_partial_consent_grants_only_what_the_person_accepted(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    running = await offered(http, world, signing_key, ("chat", "terminal"))
    grant = running.agent.grant
    assert grant is not None
    assert [c.limits.shell for c in grant.capabilities if c.capability == "terminal"] == ["bash"]
    await running.agent.decide({Capability.CHAT: ConsentDecision.GRANTED,
                                Capability.TERMINAL: REFUSED})
    state = await running.agent.expect_state("consented")
    assert state.granted == ("chat",)
