"""Remote control on the server: the technician may ask for ``input`` only where the policy's
``remote_control`` rule allows it (its roles, the person's consent), and the signed grant carries
it; a policy without the rule denies the request naming it."""

from __future__ import annotations

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auxilio.protocol.types import Capability
from tests.server.support_sessions.conftest import World, policy_text
from tests.server.support_sessions.flow import offered, request
from tests.server.support_sessions.peers import FakeTechnician

CHAT_RULE = "  chat: {roles: [technician, senior_technician, supervisor]}\n"
WITH_SCREEN = CHAT_RULE + "  screen_view: {roles: [technician, senior_technician, supervisor]}\n"
WITH_CONTROL = WITH_SCREEN + (
    "  remote_control: {roles: [technician, senior_technician, supervisor]}\n"
)


async def test_a_policy_without_remote_control_denies_input_naming_the_rule(
    http: httpx.AsyncClient, world: World
) -> None:
    await world.use_policy(policy_text().replace(CHAT_RULE, WITH_SCREEN))
    technician = FakeTechnician(http.live.url)  # type: ignore[attr-defined]
    response = await request(http, world, technician, ("chat", "screen", "input"))
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["code"] == "policy_denied"
    assert "remote_control" in error["details"]["rule"]


async def test_a_role_the_rule_does_not_list_is_denied(
    http: httpx.AsyncClient, world: World
) -> None:
    only_seniors = WITH_SCREEN + "  remote_control: {roles: [senior_technician]}\n"
    await world.use_policy(policy_text().replace(CHAT_RULE, only_seniors))
    technician = FakeTechnician(http.live.url)  # type: ignore[attr-defined]
    response = await request(http, world, technician, ("chat", "screen", "input"))
    assert response.status_code == 403, response.text
    assert "remote_control" in response.json()["error"]["details"]["rule"]


async def test_where_the_policy_allows_it_the_signed_grant_carries_input(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    assert CHAT_RULE in policy_text()
    await world.use_policy(policy_text().replace(CHAT_RULE, WITH_CONTROL))
    running = await offered(http, world, signing_key, ("chat", "screen", "input"))
    grant = running.agent.grant
    assert grant is not None
    assert {c.capability for c in grant.capabilities} == {
        Capability.CHAT, Capability.SCREEN, Capability.INPUT,
    }  # fmt: skip
