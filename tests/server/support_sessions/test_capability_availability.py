"""Consent only for what exists: a request for a capability no agent delivers is refused before
anyone is asked, and a device that does not announce a requested capability is never prompted."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select

from auxilio.protocol.frames import AGENT_CAPABILITIES, AgentHello, SessionJoin
from auxilio.protocol.types import Capability
from auxilio.server.support_sessions.models import SupportSession
from tests.server.support_sessions.conftest import World
from tests.server.support_sessions.flow import request
from tests.server.support_sessions.peers import FakeAgent, FakeTechnician, mid


async def _sessions(world: World) -> int:
    async with world.app.state.sessionmaker() as db:
        return int(
            (await db.execute(select(func.count()).select_from(SupportSession))).scalar_one()
        )


def test_this_agent_version_delivers_every_capability_including_input_and_the_clipboard() -> None:
    delivered = {Capability.CHAT, Capability.TERMINAL, Capability.FILES, Capability.DIAGNOSTICS,
                 Capability.RUNBOOKS, Capability.SCREEN, Capability.INPUT,
                 Capability.CLIPBOARD}  # fmt: skip
    assert delivered == AGENT_CAPABILITIES == set(Capability)


@pytest.mark.parametrize("capability", [Capability.INPUT, Capability.SCREEN, Capability.CLIPBOARD])
async def test_a_request_for_a_capability_no_agent_delivers_is_refused_naming_it(
    http: httpx.AsyncClient, world: World, capability: Capability,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every capability is delivered by this agent version, so the check is shown with a server
    # whose agents lack one (as it was for screen and input before they were built).
    monkeypatch.setattr(
        "auxilio.server.support_sessions.service.AGENT_CAPABILITIES",
        AGENT_CAPABILITIES - {capability},
    )
    before = await _sessions(world)
    technician = FakeTechnician(http.live.url)  # type: ignore[attr-defined]
    response = await request(http, world, technician, ("chat", str(capability)))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "capability_unavailable"
    assert error["details"]["capabilities"] == [str(capability)]
    assert str(capability) in error["message"]
    # Nothing was kept: no session, no join code anyone could be asked with.
    assert await _sessions(world) == before


async def test_a_device_without_a_requested_capability_is_refused_and_the_technician_told(
    http: httpx.AsyncClient, world: World
) -> None:
    technician = FakeTechnician(http.live.url)  # type: ignore[attr-defined]
    created = (await request(http, world, technician, ("chat", "terminal"))).json()
    await technician.connect()
    await technician.attach(created["id"], world.technician.token)
    await technician.expect_state("attached")
    chat_only = FakeAgent(http.live.url, capabilities=(Capability.CHAT,))  # type: ignore[attr-defined]
    await chat_only.connect()
    await chat_only.authenticate()
    await chat_only.send(SessionJoin(id=mid(), join_code=created["join_code"]))
    refused = await chat_only.expect_error("capability.unavailable")
    assert "terminal" in refused.message
    told = await technician.expect_error("capability.unavailable")
    assert "terminal" in told.message
    # Nothing was prompted, and the session still waits for a device that can deliver it.
    assert chat_only.texts_of("session.offer") == []
    assert (await world.row(created["id"])).state == "requested"
    rejected = await world.events("support_session:join_code:rejected")
    assert rejected[-1]["code"] == "capability.unavailable"
    able = FakeAgent(http.live.url)  # type: ignore[attr-defined]
    await able.connect()
    await able.authenticate()
    offer = await able.join(created["join_code"])
    assert offer.support_session_id == created["id"]


def test_an_agent_that_announces_nothing_is_taken_to_deliver_chat_only() -> None:
    hello = AgentHello(
        id=mid(), device_public_key="A" * 43, agent_version="old", platform="linux",
        protocol_version=1, min_protocol_version=1,
    )  # fmt: skip
    assert hello.capabilities == (Capability.CHAT,)
