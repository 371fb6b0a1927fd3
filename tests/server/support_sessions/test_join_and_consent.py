"""Join codes and consent receipts: every refusal has its code, is audited, loses nothing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import update

from auxilio.protocol.types import Capability, ConsentDecision
from auxilio.server.support_sessions.models import JoinCode, SupportSession
from tests.server.support_sessions.conftest import World
from tests.server.support_sessions.flow import offered, request
from tests.server.support_sessions.peers import FakeAgent, FakeTechnician, mid

GRANTED, REFUSED, TIMED_OUT = (
    ConsentDecision.GRANTED, ConsentDecision.REFUSED, ConsentDecision.TIMED_OUT
)


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


async def _refused_receipt(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey, code: str,
    **receipt: Any,
) -> None:
    """The receipt is refused with ``code``, audited, and the session ends with that code: a
    receipt that does not answer the offer is never followed by a second try."""
    running = await offered(http, world, signing_key, ("chat", "terminal"))
    decisions = receipt.pop("decisions", {Capability.CHAT: GRANTED, Capability.TERMINAL: GRANTED})
    await running.agent.decide(decisions, **receipt)
    await running.agent.expect_error(code)
    end = await running.agent.expect("session.end")
    assert (end.reason, end.detail) == ("protocol_error", code)
    row = await world.row(running.sid)
    assert (row.state, row.end_detail, row.activated_at) == ("ended", code, None)
    rejected = await world.events("support_session:receipt:rejected")
    assert [e["code"] for e in rejected][-1] == code
    receipts = await http.get(f"/api/v1/support-sessions/{running.sid}/receipts",
                              headers=world.technician.headers)
    assert receipts.json() == []


async def test_a_receipt_with_a_bad_signature_ends_the_session(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    await _refused_receipt(http, world, signing_key, "receipt.bad_signature",
                           key=Ed25519PrivateKey.generate())


async def test_a_receipt_for_another_grant_ends_the_session(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    await _refused_receipt(http, world, signing_key, "receipt.wrong_grant", nonce="A" * 22)


@pytest.mark.parametrize(
    "case",
    ["silence_meant_yes", "other_timeout", "other_capabilities", "timed_out_too_soon",
     "decided_before_the_offer", "decided_after_answer_by"],
)  # fmt: skip
async def test_a_receipt_that_contradicts_the_offer_ends_the_session(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey, case: str
) -> None:
    # Observed: a proxy set the (then unsigned) timeout to 2 s and the default to granted; the
    # agent's receipt said "granted" and the server, whose offer said "refused after 120 s",
    # activated the session. The server now checks every receipt against its own offer.
    receipt: dict[str, Any] = {
        "silence_meant_yes": {"timeout_default": "granted", "timeout_seconds": 2},
        "other_timeout": {"timeout_seconds": 2},
        "other_capabilities": {"decisions": {Capability.CHAT: GRANTED}},
        "timed_out_too_soon": {
            "decisions": {Capability.CHAT: GRANTED, Capability.TERMINAL: ConsentDecision.TIMED_OUT}
        },
        "decided_before_the_offer": {"decided_at": datetime.now(UTC) - timedelta(hours=1)},
        "decided_after_answer_by": {"decided_at": datetime.now(UTC) + timedelta(hours=1)},
    }[case]
    await _refused_receipt(http, world, signing_key, "receipt.mismatch", **receipt)


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
    # The prompt waited out its 30 s: as if the offer had been made 31 s ago.
    async with world.app.state.sessionmaker() as db, db.begin():
        await db.execute(update(SupportSession).where(
            SupportSession.id == uuid.UUID(running.sid)
        ).values(offered_at=datetime.now(UTC) - timedelta(seconds=31)))
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
    # No shell named: the grant carries the policy's list, the device starts one of it.
    terminal = [c.limits for c in grant.capabilities if c.capability == "terminal"]
    assert [(limits.shell, limits.shells) for limits in terminal] == [(None, ("bash",))]
    await running.agent.decide({Capability.CHAT: ConsentDecision.GRANTED,
                                Capability.TERMINAL: REFUSED})
    state = await running.agent.expect_state("consented")
    assert state.granted == ("chat",)
