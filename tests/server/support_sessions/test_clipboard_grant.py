"""The clipboard on the server: the technician may ask for ``clipboard`` only where the policy's
``clipboard`` rule allows it (its roles, the person's consent), and the signed grant carries it;
a policy without the rule (every template's default) denies the request naming it."""

from __future__ import annotations

from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auxilio import policy
from auxilio.policy.loader import parse_policy
from auxilio.protocol.types import Capability
from tests.server.support_sessions.conftest import World, policy_text
from tests.server.support_sessions.flow import offered, request
from tests.server.support_sessions.peers import FakeTechnician

CHAT_RULE = "  chat: {roles: [technician, senior_technician, supervisor]}\n"
WITH_CLIPBOARD = CHAT_RULE + "  clipboard: {roles: [technician, senior_technician, supervisor]}\n"


async def test_a_policy_without_the_clipboard_rule_denies_it_naming_the_rule(
    http: httpx.AsyncClient, world: World
) -> None:
    await world.use_policy(policy_text())
    technician = FakeTechnician(http.live.url)  # type: ignore[attr-defined]
    response = await request(http, world, technician, ("chat", "clipboard"))
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["code"] == "policy_denied"
    assert "clipboard" in error["details"]["rule"]


async def test_a_role_the_rule_does_not_list_is_denied(
    http: httpx.AsyncClient, world: World
) -> None:
    only_seniors = CHAT_RULE + "  clipboard: {roles: [senior_technician]}\n"
    await world.use_policy(policy_text().replace(CHAT_RULE, only_seniors))
    technician = FakeTechnician(http.live.url)  # type: ignore[attr-defined]
    response = await request(http, world, technician, ("chat", "clipboard"))
    assert response.status_code == 403, response.text
    assert "clipboard" in response.json()["error"]["details"]["rule"]


async def test_where_the_policy_allows_it_the_signed_grant_carries_the_clipboard(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    assert CHAT_RULE in policy_text()
    await world.use_policy(policy_text().replace(CHAT_RULE, WITH_CLIPBOARD))
    running = await offered(http, world, signing_key, ("chat", "clipboard"))
    grant = running.agent.grant
    assert grant is not None
    assert {c.capability for c in grant.capabilities} == {Capability.CHAT, Capability.CLIPBOARD}


def test_no_template_allows_the_clipboard() -> None:
    templates = sorted((Path(policy.__file__).parent / "templates").glob("*.yaml"))
    assert len(templates) >= 4
    for template in templates:
        parsed = parse_policy(template.read_text(encoding="utf-8"))
        assert parsed.capabilities.clipboard is None, template.name
