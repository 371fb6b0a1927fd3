"""An emergency reaches the connected peers: a real server (uvicorn on 127.0.0.1), a device and
a technician on WebSockets. Declared, every live session ends at once with reason emergency and
both peers hear it; an agent away during the emergency is told when it comes back; the session
cannot be taken up again."""

from __future__ import annotations

import asyncio

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auxilio.policy.roles import Role
from auxilio.protocol.frames import SessionJoin
from tests.factories import make_user

# The shared live-server fixtures, imported under their own names so that pytest finds them.
from tests.server.support_sessions.conftest import World
from tests.server.support_sessions.conftest import _close_peers as _close_peers
from tests.server.support_sessions.conftest import http as http
from tests.server.support_sessions.conftest import server_settings as server_settings
from tests.server.support_sessions.conftest import settings as settings
from tests.server.support_sessions.conftest import start_server as start_server
from tests.server.support_sessions.conftest import world as world
from tests.server.support_sessions.flow import active, offered
from tests.server.support_sessions.peers import FakeAgent

API = "/api/v1/emergency"


async def supervisor_headers(world: World) -> dict[str, str]:
    return (await make_user(world.app, world.org, Role.SUPERVISOR, enrol_totp=False)).headers


async def test_declaring_ends_live_sessions_and_both_peers_hear_why(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    running = await active(http, world, signing_key)
    waiting = await offered(http, world, signing_key)  # awaiting the person's consent
    headers = await supervisor_headers(world)
    response = await http.post(API, headers=headers, json={"reason": "Security breach"})
    assert response.status_code == 201, response.text
    assert sorted(response.json()["ended_support_session_ids"]) == sorted(
        [running.sid, waiting.sid])
    for peer in (running.agent, running.technician, waiting.agent, waiting.technician):
        end = await peer.expect("session.end")
        assert (end.reason, end.ended_by) == ("emergency", "supervisor")
        assert end.detail == f"emergency {response.json()['id']}"
    report = await running.agent.expect("session.report")
    assert report.support_session_id == running.sid
    await asyncio.wait_for(running.technician.closed.wait(), 15)
    await asyncio.wait_for(running.agent.closed.wait(), 15)
    for sid in (running.sid, waiting.sid):
        row = await world.row(sid)
        assert (row.state, row.end_reason) == ("ended", "emergency")
        assert (await world.actions(sid))[-1] == "support_session:session:ended"


async def test_an_agent_away_during_the_emergency_is_told_when_it_comes_back(
    start_server: object, world: World, signing_key: Ed25519PrivateKey
) -> None:
    live = start_server(agent_grace_seconds=60.0)  # type: ignore[operator]
    async with httpx.AsyncClient(base_url=live.url, timeout=20) as http:
        http.live = live  # type: ignore[attr-defined]
        running = await active(http, world, signing_key)
        await running.agent.close()  # the device goes offline; the grace period runs
        await running.technician.expect_state("agent_lost")
        headers = await supervisor_headers(world)
        declared = await http.post(API, headers=headers, json={"reason": "Breach"})
        assert declared.status_code == 201
        end = await running.technician.expect("session.end")
        assert end.reason == "emergency"
        # Back with the same device key: told that the session ended, and why; not resumed.
        again = FakeAgent(live.url, device_key=running.agent.device_key)
        await again.connect()
        await again.authenticate()
        told = await again.expect("session.end")
        assert (told.support_session_id, told.reason) == (running.sid, "emergency")
        assert again.texts_of("session.state") == []
        await again.close()
        # A join code of a session the emergency ended is of no use any more.
        late = FakeAgent(live.url)
        await late.connect()
        await late.authenticate()
        await late.send(SessionJoin(id="j1", join_code=running.created["join_code"]))
        refused = await late.expect("error")
        assert refused.code.startswith("join_code.")
        await late.close()
        row = await world.row(running.sid)
        assert (row.state, row.end_reason) == ("ended", "emergency")
