"""Revocation ends what is live (issue 7 §3): what identity takes away from a technician reaches
the support sessions already running, over real sockets, within a few scheduler ticks.

Each test runs a session with chat relayed end to end, takes something away through the REST
API as an administrator would, and shows that both peers get ``session.end`` naming the reason,
that the technician's connection is closed and that nothing more reaches the device.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import websockets
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auxilio.policy.roles import Role
from auxilio.protocol.app import ChatMessage, encode_app_message
from auxilio.protocol.binary import ChannelId
from auxilio.protocol.types import Capability, ConsentDecision
from auxilio.server.context import Actor
from auxilio.server.identity import auth
from auxilio.server.identity import service as identity
from auxilio.server.identity.models import User
from tests.factories import Person, make_user
from tests.server.support_sessions.conftest import World, mfa_token, policy_text
from tests.server.support_sessions.flow import Running, active, offered
from tests.server.support_sessions.peers import FakeTechnician

TRAINED = policy_text().replace(
    "  mfa_required: true",
    "  mfa_required: true\n  trainings_required:\n    - {id: privacy, max_age: 365d}",
)


def chat(text: str) -> bytes:
    return encode_app_message(ChatMessage(text=text, sent_at=datetime.now(UTC)))


async def _admin(world: World) -> Person:
    return await make_user(world.app, world.org, Role.ADMIN)


async def _relaying(http: httpx.AsyncClient, world: World, key: Ed25519PrivateKey) -> Running:
    """An active session in which one chat message has reached the device."""
    running = await active(http, world, key)
    assert running.technician.e2e is not None
    await running.technician.ws.send(running.technician.e2e.seal(ChannelId.CHAT, chat("hi")))
    await running.agent.next_where(lambda f: isinstance(f, bytes))
    return running


async def _assert_ended_for_access(world: World, running: Running, detail: str) -> None:
    for peer in (running.agent, running.technician):
        end = await peer.expect("session.end")
        assert (end.ended_by, end.reason, end.detail) == ("server", "access_revoked", detail)
    await running.technician.closed.wait()
    await running.agent.closed.wait()
    relayed = [f for f in running.agent.frames if isinstance(f, bytes)]
    # The technician's connection is gone: a chat frame sent now cannot be relayed.
    assert running.technician.e2e is not None
    with pytest.raises(websockets.ConnectionClosed):
        await running.technician.ws.send(
            running.technician.e2e.seal(ChannelId.CHAT, chat("still here?"))
        )
    assert [f for f in running.agent.frames if isinstance(f, bytes)] == relayed == relayed[:1]
    row = await world.row(running.sid)
    assert (row.state, row.end_reason, row.end_detail) == ("ended", "access_revoked", detail)
    ended = [
        e
        for e in await world.events("support_session:session:ended")
        if e["reason"] == "access_revoked"
    ]
    assert [(e["ended_by"], e["detail"]) for e in ended] == [("server", detail)]


async def test_logging_out_the_technicians_token_ends_the_live_session(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    running = await _relaying(http, world, signing_key)
    response = await http.post("/api/v1/auth/logout", headers=world.technician.headers)
    assert response.status_code == 204, response.text
    await _assert_ended_for_access(world, running, "token_revoked")


async def test_revoking_another_token_of_the_technician_ends_the_live_session(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    created = await http.post(
        "/api/v1/me/tokens",
        headers=world.technician.headers,
        json={"name": "laptop", "ttl_days": 30},
    )
    assert created.status_code == 201, created.text
    running = await _relaying(http, world, signing_key)
    revoked = await http.delete(
        f"/api/v1/me/tokens/{created.json()['id']}", headers=world.technician.headers
    )
    assert revoked.status_code == 204, revoked.text
    await _assert_ended_for_access(world, running, "token_revoked")


async def test_a_token_revoked_before_the_session_was_requested_does_not_end_it(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    # The warning comes due a second after activation; the scheduler sends it only for a session
    # whose access check passed, so receiving it shows that a round looked and let it be.
    await world.use_policy(policy_text(max_duration="1h", warn_before="3599s"))
    created = await http.post(
        "/api/v1/me/tokens", headers=world.technician.headers, json={"name": "old", "ttl_days": 30}
    )
    revoked = await http.delete(
        f"/api/v1/me/tokens/{created.json()['id']}", headers=world.technician.headers
    )
    assert revoked.status_code == 204
    running = await _relaying(http, world, signing_key)
    await running.agent.expect("session.warning")
    assert running.agent.texts_of("session.end") == []
    assert (await world.row(running.sid)).state == "active"


async def test_deactivating_the_technician_ends_the_live_session(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    admin = await _admin(world)
    running = await _relaying(http, world, signing_key)
    response = await http.patch(
        f"/api/v1/users/{world.technician.user.id}",
        headers=admin.headers,
        json={"is_active": False},
    )
    assert response.status_code == 200, response.text
    await _assert_ended_for_access(world, running, "user_deactivated")


async def test_taking_the_technician_role_away_ends_the_live_session(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    admin = await _admin(world)
    running = await _relaying(http, world, signing_key)
    response = await http.patch(
        f"/api/v1/users/{world.technician.user.id}",
        headers=admin.headers,
        json={"role": "end_user"},
    )
    assert response.status_code == 200, response.text
    await _assert_ended_for_access(world, running, "role_removed")


async def test_a_role_the_policy_does_not_allow_for_a_granted_capability_ends_the_session(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    # An admin may request sessions (support_session:request) but the policy names no admin
    # for chat: the role change keeps the permission and still loses the capability.
    admin = await _admin(world)
    running = await _relaying(http, world, signing_key)
    response = await http.patch(
        f"/api/v1/users/{world.technician.user.id}", headers=admin.headers, json={"role": "admin"}
    )
    assert response.status_code == 200, response.text
    await _assert_ended_for_access(world, running, "role_removed")


async def _trained(world: World, *, expires_at: datetime | None = None) -> uuid.UUID:
    async with world.app.state.sessionmaker() as db, db.begin():
        user = await db.get(User, world.technician.user.id)
        assert user is not None
        row = await identity.record_training(
            db,
            user=user,
            training_id="privacy",
            title="Privacy",
            completed_at=datetime.now(UTC) - timedelta(days=1),
            expires_at=expires_at,
            actor=Actor.system(world.org.id),
        )
        return row.id


async def test_removing_a_training_the_policy_requires_ends_the_live_session(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    await world.use_policy(TRAINED)
    record_id = await _trained(world)
    admin = await _admin(world)
    running = await _relaying(http, world, signing_key)
    response = await http.delete(
        f"/api/v1/users/{world.technician.user.id}/trainings/{record_id}", headers=admin.headers
    )
    assert response.status_code == 204, response.text
    await _assert_ended_for_access(world, running, "training_missing:privacy")
    removed = await world.events("identity:training:removed")
    assert [e["training_id"] for e in removed] == ["privacy"]


async def test_a_required_training_that_expires_mid_session_ends_it(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    await world.use_policy(TRAINED)
    await _trained(world, expires_at=datetime.now(UTC) + timedelta(seconds=3))
    running = await _relaying(http, world, signing_key)
    await _assert_ended_for_access(world, running, "training_expired:privacy")


async def test_revocation_also_ends_a_session_still_waiting_for_consent(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    running = await offered(http, world, signing_key)
    response = await http.post("/api/v1/auth/logout", headers=world.technician.headers)
    assert response.status_code == 204
    end = await running.agent.expect("session.end")
    assert (end.reason, end.detail) == ("access_revoked", "token_revoked")
    row = await world.row(running.sid)
    assert (row.state, row.end_reason) == ("ended", "access_revoked")


async def test_a_connection_whose_token_expires_is_no_longer_served(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    running = await offered(http, world, signing_key)
    await running.agent.decide({Capability.CHAT: ConsentDecision.GRANTED})
    await running.agent.expect_state("consented")
    async with world.app.state.sessionmaker() as db, db.begin():
        user = await db.get(User, world.technician.user.id)
        assert user is not None
        short, _ = await auth.issue_token(
            db,
            user=user,
            kind="login",
            name="short",
            ttl=timedelta(seconds=2),
            mfa_verified=True,
            actor=auth.actor_for(user),
        )
    # A second connection of the technician with the short token replaces the first one.
    technician = FakeTechnician(http.live.url)  # type: ignore[attr-defined]
    technician.e2e_key = running.technician.e2e_key
    await technician.connect()
    await technician.attach(running.sid, short)
    await technician.expect_state("attached")
    error = await technician.expect_error("auth.token_expired")
    assert "no longer works" in error.message
    await technician.closed.wait()
    # The session itself goes on: the technician may log in again and attach with a new token.
    assert (await world.row(running.sid)).state == "active"
    again = FakeTechnician(http.live.url)  # type: ignore[attr-defined]
    again.e2e_key = technician.e2e_key
    await again.connect()
    await again.attach(running.sid, await mfa_token(world.app, world.technician))
    state = await again.expect("session.state")
    assert state.reason == "attached"
