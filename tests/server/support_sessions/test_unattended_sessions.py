"""Unattended sessions over real sockets: the request, the offer made to the enrolled device,
its automatic receipt, the owner's revocation, the window, emergencies and device revocation
(docs/unattended.md)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from auxilio.crypto.grants import Grant
from auxilio.policy.roles import Role
from auxilio.protocol.app import ChatMessage, decode_app_message, encode_app_message
from auxilio.protocol.binary import ChannelId
from auxilio.protocol.frames import AgentHeartbeat, EndReason, ErrorMessage, Party, SessionEnd
from auxilio.protocol.types import Capability, ConsentDecision
from auxilio.server.db.base import utcnow
from auxilio.server.devices.channel import close_device
from auxilio.server.devices.models import PreAuthorisationRecord
from auxilio.server.emergency.models import Emergency
from auxilio.server.support_sessions import clock
from auxilio.server.support_sessions.models import JoinCode
from tests.factories import make_ticket, make_user
from tests.server.support_sessions.conftest import ServerFactory, World
from tests.server.support_sessions.peers import FakeTechnician, mid
from tests.server.support_sessions.unattended_helpers import (
    Enrolled,
    EnrolledAgent,
    ask,
    enrol,
    error_code,
    on_server,
    policy,
    window,
)

GRANTED = ConsentDecision.GRANTED


async def _published(
    http: httpx.AsyncClient, world: World, key: Ed25519PrivateKey, **document: object
) -> tuple[Enrolled, EnrolledAgent, str]:
    """An enrolled device online, its owner's pre-authorisation stored through its agent."""
    enrolled = await enrol(world, key)
    agent = EnrolledAgent(http.live.url, enrolled)  # type: ignore[attr-defined]
    await agent.ready()
    made = enrolled.document(**document)  # type: ignore[arg-type]
    await agent.publish(enrolled.sign(made))
    await agent.expect("preauth.ack")
    return enrolled, agent, made.id


async def _offered(
    http: httpx.AsyncClient, world: World, agent: EnrolledAgent, device_id: uuid.UUID,
    server_key: Ed25519PrivateKey, capabilities: tuple[str, ...] = ("chat",),
) -> tuple[str, FakeTechnician, Grant]:
    technician = FakeTechnician(http.live.url)  # type: ignore[attr-defined]
    response = await ask(http, world, technician, device_id, capabilities)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["join_code"] is None and created["device_id"] == str(device_id)
    await technician.connect()
    await technician.attach(created["id"], world.technician.token)
    await technician.expect_state("attached")
    agent.offer = await agent.expect("session.offer")
    grant = agent.verify(server_key)
    await technician.expect_state("offered")
    return created["id"], technician, grant


async def _consent(agent: EnrolledAgent, grant: Grant) -> None:
    await agent.decide({item.capability: GRANTED for item in grant.capabilities},
                       timeout_default="granted")


async def test_an_enrolled_device_is_helped_with_nobody_there_and_the_owner_revokes(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    await world.use_policy(policy())
    enrolled, agent, pre_id = await _published(http, world, signing_key)
    sid, technician, grant = await _offered(http, world, agent, enrolled.device_id, signing_key)
    assert grant.terms.mode == "unattended" and grant.terms.pre_authorisation_id == pre_id
    assert grant.terms.on_timeout == "granted" and grant.extensions.max_count == 0
    async with world.app.state.sessionmaker() as db:
        codes = list((await db.execute(select(JoinCode).where(
            JoinCode.support_session_id == uuid.UUID(sid)))).scalars())
    assert codes == []  # no join code: nobody types one

    await _consent(agent, grant)
    await agent.expect_state("consented")
    await technician.expect_state("consented")
    await agent.expect_state("technician_ready")
    await asyncio.gather(agent.start_e2e(), technician.answer_e2e(grant))
    assert agent.e2e is not None and technician.e2e is not None
    text = encode_app_message(ChatMessage(text="hello from support", sent_at=datetime.now(UTC)))
    await technician.ws.send(technician.e2e.seal(ChannelId.CHAT, text))
    frame = await agent.next_where(lambda f: isinstance(f, bytes))
    assert isinstance(frame, bytes)
    assert decode_app_message(agent.e2e.open(frame)[1]).text == "hello from support"  # type: ignore[union-attr]
    row = await world.row(sid)
    assert row.state == "active" and str(row.pre_authorisation_id) == pre_id
    assert row.device_id == enrolled.device_id and row.granted_capabilities == ["chat"]

    # The owner revokes on the device: the session ends at once, on both sides.
    await agent.revoke(enrolled.revocation(pre_id))
    for peer in (agent, technician):
        end = await peer.expect("session.end")
        assert (end.reason, end.ended_by) == ("pre_authorisation_revoked", "end_user")
    ack = await agent.expect("preauth.ack")
    assert (ack.pre_authorisation_id, ack.state) == (pre_id, "revoked")
    await technician.closed.wait()
    row = await world.wait_for_state(sid, "ended")
    assert row.end_reason == "pre_authorisation_revoked"
    # The device's connection is idle again, not closed (after the report's dispute window).
    await asyncio.sleep(1.8)
    await agent.send(AgentHeartbeat(id=mid(), sent_at=utcnow()))
    await asyncio.sleep(0.3)
    assert not agent.closed.is_set()
    await agent.publish(enrolled.sign(enrolled.document()))
    assert (await agent.expect("preauth.ack")).state == "stored"
    actions = await world.actions(sid)
    assert "support_session:session:offered" in actions
    assert "support_session:consent:recorded" in actions


async def test_the_grant_never_outlives_the_window(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    await world.use_policy(policy(max_duration="4h"))
    access = window(end=dt.timedelta(minutes=20))
    enrolled, agent, _ = await _published(http, world, signing_key, access=access)
    _, _, grant = await _offered(http, world, agent, enrolled.device_id, signing_key)
    assert grant.not_after == access.not_after
    assert all(item.expires_at <= access.not_after for item in grant.capabilities)


async def test_the_grant_ends_with_the_daily_hours(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    await world.use_policy(policy(max_duration="4h"))
    now = utcnow()
    end = now + dt.timedelta(minutes=30)
    if end.date() != now.date():  # the daily span cannot cross midnight
        end = now.replace(hour=23, minute=59, second=0, microsecond=0)
    access = window(daily_start=dt.time(0, 0), daily_end=end.time().replace(microsecond=0))
    enrolled, agent, _ = await _published(http, world, signing_key, access=access)
    _, _, grant = await _offered(http, world, agent, enrolled.device_id, signing_key)
    assert grant.not_after == access.open_until(now)
    assert grant.not_after <= now + dt.timedelta(minutes=31)


async def test_requests_the_pre_authorisation_does_not_cover_are_refused_by_code(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    await world.use_policy(policy())
    technician = FakeTechnician(http.live.url)  # type: ignore[attr-defined]
    enrolled = await enrol(world, signing_key)

    response = await ask(http, world, technician, enrolled.device_id)
    assert response.status_code == 403 and error_code(response) == "pre_authorisation.none"

    agent = EnrolledAgent(http.live.url, enrolled)  # type: ignore[attr-defined]
    await agent.ready()
    later = window(start=dt.timedelta(hours=2), end=dt.timedelta(days=3))
    await agent.publish(enrolled.sign(enrolled.document(scope=("chat",), access=later)))
    await agent.expect("preauth.ack")
    response = await ask(http, world, technician, enrolled.device_id)
    assert response.status_code == 403
    assert error_code(response) == "pre_authorisation.outside_window"
    assert response.json()["error"]["details"]["next_opening"] == later.not_before.isoformat()
    assert later.not_before.isoformat() in response.json()["error"]["message"]

    document = enrolled.document(scope=("chat",))
    await agent.publish(enrolled.sign(document))
    await agent.expect("preauth.ack")
    response = await ask(http, world, technician, enrolled.device_id, ("chat", "terminal"))
    assert response.status_code == 403 and error_code(response) == "unattended.scope.not_covered"
    assert (await ask(http, world, technician, enrolled.device_id)).status_code == 201

    await agent.revoke(enrolled.revocation(document.id))
    await agent.expect("preauth.ack")
    response = await ask(http, world, technician, enrolled.device_id)
    assert response.status_code == 403
    assert error_code(response) == "pre_authorisation.outside_window"


async def test_an_expired_pre_authorisation_covers_nothing(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The window ends a minute from now; the sessions' clock is moved past it (sleeping through
    a two-second window once lost the race to a loaded machine: it was over before published)."""
    await world.use_policy(policy())
    enrolled, _, pre_id = await _published(http, world, signing_key,
                                           access=window(end=dt.timedelta(minutes=1)))
    technician = FakeTechnician(http.live.url)  # type: ignore[attr-defined]
    later = utcnow() + dt.timedelta(minutes=1, seconds=1)
    monkeypatch.setattr(clock, "now", lambda: later)
    response = await ask(http, world, technician, enrolled.device_id)
    assert response.status_code == 403 and error_code(response) == "pre_authorisation.none"
    assert pre_id


async def test_revoked_or_unenrolled_devices_and_other_peoples_tickets_are_refused(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    await world.use_policy(policy())
    enrolled, _, _ = await _published(http, world, signing_key)
    technician = FakeTechnician(http.live.url)  # type: ignore[attr-defined]
    someone = await make_user(world.app, world.org, Role.END_USER, enrol_totp=False)
    their_ticket = await make_ticket(world.app, someone)
    response = await ask(http, world, technician, enrolled.device_id, ticket_id=their_ticket)
    assert response.status_code == 422
    assert error_code(response) == "unattended.ticket_device_mismatch"

    response = await ask(http, world, technician, uuid.uuid4())
    assert response.status_code == 404 and error_code(response) == "device_not_found"

    await enrolled.update(enrolled_at=None)
    response = await ask(http, world, technician, enrolled.device_id)
    assert response.status_code == 409 and error_code(response) == "device.not_enrolled"

    await enrolled.update(enrolled_at=utcnow(), revoked_at=utcnow(), revoke_reason="lost")
    response = await ask(http, world, technician, enrolled.device_id)
    assert response.status_code == 409 and error_code(response) == "device.revoked"

    # device_id belongs to unattended sessions, and an unattended one needs it.
    attended = await http.post(
        "/api/v1/support-sessions", headers={"Authorization": f"Bearer {world.technician.token}"},
        json={"ticket_id": str(world.ticket_id), "mode": "attended", "capabilities": ["chat"],
              "device_id": str(enrolled.device_id), "technician_e2e_key": technician.public_key})
    assert attended.status_code == 422 and error_code(attended) == "validation_failed"
    missing = await http.post(
        "/api/v1/support-sessions", headers={"Authorization": f"Bearer {world.technician.token}"},
        json={"ticket_id": str(world.ticket_id), "mode": "unattended", "capabilities": ["chat"],
              "technician_e2e_key": technician.public_key})
    assert missing.status_code == 422 and error_code(missing) == "validation_failed"


async def test_a_device_group_the_policy_does_not_approve_is_denied_by_the_policy(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    await world.use_policy(policy())
    enrolled = await enrol(world, signing_key, group="laptops")
    agent = EnrolledAgent(http.live.url, enrolled)  # type: ignore[attr-defined]
    await agent.ready()
    await agent.publish(enrolled.sign(enrolled.document()))
    await agent.expect("preauth.ack")
    response = await ask(http, world, FakeTechnician(http.live.url), enrolled.device_id)  # type: ignore[attr-defined]
    assert response.status_code == 403 and error_code(response) == "policy_denied"
    assert response.json()["error"]["details"]["rule"] == "unattended.allowed_device_groups"


async def _declare(world: World) -> None:
    async with world.app.state.sessionmaker() as db, db.begin():
        db.add(Emergency(organisation_id=world.org.id, declared_by=world.technician.user.id,
                         reason="test", actions=["lock_unattended"], escalate_to=[]))


async def test_during_an_emergency_the_policy_locks_unattended_access(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    await world.use_policy(policy())
    enrolled, _, _ = await _published(http, world, signing_key)
    await _declare(world)
    response = await ask(http, world, FakeTechnician(http.live.url), enrolled.device_id)  # type: ignore[attr-defined]
    assert response.status_code == 403 and error_code(response) == "policy_denied"
    assert response.json()["error"]["details"]["rule"] == "emergency.actions.lock_unattended"


async def test_a_server_restarted_during_an_emergency_tells_the_device_and_offers_nothing(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey,
    start_server: ServerFactory,
) -> None:
    # A policy that does not lock unattended access itself: the server still never offers.
    await world.use_policy(policy(lock="false"))
    enrolled, agent, _ = await _published(http, world, signing_key)
    await _declare(world)
    http.live.stop()  # type: ignore[attr-defined]
    await agent.closed.wait()
    live = start_server()
    async with httpx.AsyncClient(base_url=live.url, timeout=20) as client:
        again = EnrolledAgent(live.url, enrolled)
        ready = await again.ready()
        assert ready.emergency_active is True
        technician = FakeTechnician(live.url)
        response = await ask(client, world, technician, enrolled.device_id)
        assert response.status_code == 201, response.text
        sid = response.json()["id"]
        await technician.connect()
        await technician.attach(sid, world.technician.token)
        await technician.expect_error("emergency.unattended_locked")
        end = await technician.expect("session.end")
        assert end.reason == "emergency"
        await asyncio.sleep(0.3)
        assert again.texts_of("session.offer") == []
        row = await world.wait_for_state(sid, "ended")
        assert row.grant_body is None


async def test_an_offline_device_is_offered_the_session_when_it_connects(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    await world.use_policy(policy())
    enrolled, agent, _ = await _published(http, world, signing_key)
    await agent.close()
    technician = FakeTechnician(http.live.url)  # type: ignore[attr-defined]
    response = await ask(http, world, technician, enrolled.device_id)
    sid = response.json()["id"]
    await technician.connect()
    await technician.attach(sid, world.technician.token)
    await technician.expect_error("device.offline")
    assert (await world.row(sid)).state == "requested"
    back = EnrolledAgent(http.live.url, enrolled)  # type: ignore[attr-defined]
    await back.ready()
    offer = await back.expect("session.offer")
    assert offer.support_session_id == sid
    await technician.expect_state("offered")


async def test_a_receipt_after_the_owner_revoked_ends_the_session(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    await world.use_policy(policy())
    enrolled, agent, pre_id = await _published(http, world, signing_key)
    sid, technician, grant = await _offered(http, world, agent, enrolled.device_id, signing_key)
    # Revoked where the server did not hear it from this connection (another node, say).
    async with world.app.state.sessionmaker() as db, db.begin():
        row = await db.get(PreAuthorisationRecord, uuid.UUID(pre_id))
        assert row is not None
        row.revoked_at = utcnow()
    await _consent(agent, grant)
    await agent.expect_error("pre_authorisation.revoked")
    end = await technician.expect("session.end")
    assert end.reason == "pre_authorisation_revoked"
    found = await world.wait_for_state(sid, "ended")
    assert found.granted_capabilities == []


async def test_a_receipt_granting_beyond_the_offer_or_an_attended_style_one_is_refused(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    await world.use_policy(policy())
    enrolled, agent, _ = await _published(http, world, signing_key, scope=("chat",))
    sid, _, _ = await _offered(http, world, agent, enrolled.device_id, signing_key)
    await agent.decide({Capability.CHAT: GRANTED, Capability.TERMINAL: GRANTED},
                       timeout_default="granted")
    await agent.expect_error("receipt.mismatch")
    found = await world.wait_for_state(sid, "ended")
    assert found.end_reason == "protocol_error"


async def test_the_agent_refusing_the_offer_ends_the_session_and_the_technician_hears_why(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    await world.use_policy(policy())
    enrolled, agent, _ = await _published(http, world, signing_key)
    sid, technician, grant = await _offered(http, world, agent, enrolled.device_id, signing_key)
    await agent.send(ErrorMessage(id=mid(), code="pre_authorisation.unknown",
                                  message="not known on this device"))
    await technician.expect_error("pre_authorisation.unknown")
    await agent.decide({item.capability: ConsentDecision.REFUSED for item in grant.capabilities},
                       timeout_default="granted")
    end = await technician.expect("session.end")
    assert (end.reason, end.ended_by) == ("consent_refused", "agent")
    await world.wait_for_state(sid, "rejected")


async def test_a_revoked_device_s_connection_closes_and_its_session_ends(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    await world.use_policy(policy())
    enrolled, agent, _ = await _published(http, world, signing_key)
    sid, technician, grant = await _offered(http, world, agent, enrolled.device_id, signing_key)
    await _consent(agent, grant)
    await technician.expect_state("consented")
    live = http.live  # type: ignore[attr-defined]
    bus = live.app.state.support_sessions.hub.bus
    assert await on_server(live, close_device(bus, enrolled.device_id, "device revoked"))
    await agent.closed.wait()
    assert agent.close_code == 4403
    end = await technician.expect("session.end")
    assert end.reason == "device_revoked"
    assert (await world.wait_for_state(sid, "ended")).end_reason == "device_revoked"


async def test_a_revoked_pre_authorisation_covers_nothing(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    await world.use_policy(policy())
    enrolled, agent, pre_id = await _published(http, world, signing_key)
    technician = FakeTechnician(http.live.url)  # type: ignore[attr-defined]
    assert (await ask(http, world, technician, enrolled.device_id)).status_code == 201
    await agent.revoke(enrolled.revocation(pre_id))
    await agent.expect("preauth.ack")
    response = await ask(http, world, technician, enrolled.device_id)
    assert response.status_code == 403 and error_code(response) == "pre_authorisation.none"


async def test_a_busy_device_is_offered_the_next_session_when_its_session_ends(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    await world.use_policy(policy())
    enrolled, agent, _ = await _published(http, world, signing_key)
    first, technician, grant = await _offered(http, world, agent, enrolled.device_id, signing_key)
    await _consent(agent, grant)
    await technician.expect_state("consented")
    second = FakeTechnician(http.live.url)  # type: ignore[attr-defined]
    response = await ask(http, world, second, enrolled.device_id)
    sid = response.json()["id"]
    await second.connect()
    await second.attach(sid, world.technician.token)
    await second.expect_error("device.busy")
    assert (await world.row(sid)).state == "requested"
    await technician.send(SessionEnd(id=mid(), support_session_id=first, ended_by=Party.TECHNICIAN,
                                     reason=EndReason.TECHNICIAN_ENDED))
    await agent.expect("session.end")
    # After the report's dispute window the device is idle again and takes the next one.
    offer = await agent.expect("session.offer", within=15)
    assert offer.support_session_id == sid
    await second.expect_state("offered")
