"""Revoking the device of a live support session, on a real server (uvicorn on 127.0.0.1) with
a device and a technician on WebSockets: the session ends at once with reason device_revoked
through the ordinary end path, both peers hear it, and a second revocation is refused."""

from __future__ import annotations

import asyncio

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auxilio.policy.roles import Role
from tests.factories import make_user

# The shared live-server fixtures, imported under their own names so that pytest finds them.
from tests.server.support_sessions.conftest import World, mfa_token
from tests.server.support_sessions.conftest import _close_peers as _close_peers
from tests.server.support_sessions.conftest import http as http
from tests.server.support_sessions.conftest import server_settings as server_settings
from tests.server.support_sessions.conftest import settings as settings
from tests.server.support_sessions.conftest import start_server as start_server
from tests.server.support_sessions.conftest import world as world
from tests.server.support_sessions.flow import active


async def test_revoking_the_device_ends_its_live_session_and_both_peers_hear_why(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    running = await active(http, world, signing_key)
    row = await world.row(running.sid)
    assert row.device_id is not None
    supervisor = await make_user(world.app, world.org, Role.SUPERVISOR, enrol_totp=False)
    headers = {"Authorization": f"Bearer {await mfa_token(world.app, supervisor)}"}

    response = await http.post(f"/api/v1/devices/{row.device_id}/revoke", headers=headers,
                               json={"reason": "Compromised"})

    assert response.status_code == 200, response.text
    for peer in (running.agent, running.technician):
        end = await peer.expect("session.end")
        assert (end.reason, end.ended_by) == ("device_revoked", "supervisor")
    await asyncio.wait_for(running.technician.closed.wait(), 15)
    ended = await world.row(running.sid)
    assert (ended.state, ended.end_reason) == ("ended", "device_revoked")
    actions = await world.actions(running.sid)
    assert actions[-1] == "support_session:session:ended"
    [revoked] = await world.events("device:device:revoked")
    assert revoked["support_sessions_ended"] == [running.sid]
    again = await http.post(f"/api/v1/devices/{row.device_id}/revoke", headers=headers,
                            json={"reason": "Compromised"})
    assert (again.status_code, again.json()["error"]["code"]) == (409, "device.already_revoked")
