"""Steps of the flow shared by the tests: request, join, consent, attach, handshake."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auxilio.protocol.types import Capability, ConsentDecision
from tests.server.support_sessions.conftest import World
from tests.server.support_sessions.peers import FakeAgent, FakeTechnician

GRANTED = ConsentDecision.GRANTED


async def request(
    http: httpx.AsyncClient, world: World, technician: FakeTechnician,
    capabilities: tuple[str, ...] = ("chat",), *, token: str | None = None, mode: str = "attended",
) -> httpx.Response:
    return await http.post(
        "/api/v1/support-sessions",
        headers={"Authorization": f"Bearer {token or world.technician.token}"},
        json={"ticket_id": str(world.ticket_id), "mode": mode,
              "capabilities": list(capabilities), "technician_e2e_key": technician.public_key},
    )


@dataclass
class Running:
    sid: str
    agent: FakeAgent
    technician: FakeTechnician
    created: dict[str, Any]


async def offered(
    http: httpx.AsyncClient, world: World, server_key: Ed25519PrivateKey,
    capabilities: tuple[str, ...] = ("chat",),
) -> Running:
    """Requested, the technician attached (a join code works only while they are), and joined:
    the agent holds a verified grant, consent not given yet."""
    technician = FakeTechnician(http.live.url)  # type: ignore[attr-defined]
    response = await request(http, world, technician, capabilities)
    assert response.status_code == 201, response.text
    created = response.json()
    await technician.connect()
    await technician.attach(created["id"], world.technician.token)
    await technician.expect_state("attached")
    # The device announces what is asked, as an agent that can deliver it does.
    agent = FakeAgent(http.live.url, capabilities=tuple(Capability(c) for c in dict.fromkeys(  # type: ignore[attr-defined]
        ("chat", "terminal", *capabilities))))
    await agent.connect()
    await agent.authenticate()
    await agent.join(created["join_code"])
    agent.verify(server_key)
    return Running(sid=created["id"], agent=agent, technician=technician, created=created)


async def active(
    http: httpx.AsyncClient, world: World, server_key: Ed25519PrivateKey,
    capabilities: tuple[str, ...] = ("chat",), *, handshake: bool = True,
) -> Running:
    """Consented, the technician attached, and (by default) the E2E keys agreed."""
    running = await offered(http, world, server_key, capabilities)
    await running.agent.decide({Capability(c): GRANTED for c in capabilities})
    await running.agent.expect_state("consented")
    await running.technician.expect_state("consented")
    await running.agent.expect_state("technician_ready")
    if handshake:
        assert running.agent.grant is not None
        await asyncio.gather(running.agent.start_e2e(),
                             running.technician.answer_e2e(running.agent.grant))
    return running
