"""The policy judges what was requested, and each capability keeps its own obligations (issue 9,
section 0): the shell, the direction and the runbooks asked for; per-capability consent
timeouts; the personal-data zones of the device's platform signed into the files grant; the
terminal where zones must be protected."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auxilio.policy.templates import load_template
from auxilio.protocol.frames import SessionJoin
from auxilio.protocol.types import Capability
from tests.server.support_sessions.conftest import World, policy_text
from tests.server.support_sessions.peers import FakeAgent, FakeTechnician, mid

FILES_POLICY = policy_text(extra="""
personal_data_zones:
  on_access: require_consent
  terminal: require_consent
  zones:
    - {name: payroll, linux: ["/srv/payroll/**"]}
  exceptions:
    linux: ["/home/*/Documents/IT-Shared/**"]
""").replace(
    "  terminal: {roles: [technician, senior_technician, supervisor], shells: [bash]}",
    "  terminal: {roles: [technician, senior_technician, supervisor], shells: [bash, zsh]}\n"
    "  file_transfer: {roles: [technician, senior_technician, supervisor], direction: upload,"
    " max_size: 1MB}",
)


async def ask(
    http: httpx.AsyncClient, world: World, capabilities: tuple[str, ...], **details: Any
) -> httpx.Response:
    technician = FakeTechnician(http.live.url)  # type: ignore[attr-defined]
    return await http.post(
        "/api/v1/support-sessions",
        headers={"Authorization": f"Bearer {world.technician.token}"},
        json={"ticket_id": str(world.ticket_id), "mode": "attended",
              "capabilities": list(capabilities), "technician_e2e_key": technician.public_key,
              **details},
    )  # fmt: skip


def refusal(response: httpx.Response) -> tuple[str, str]:
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    return error["details"]["rule"], error["message"]


async def test_a_named_shell_the_policy_does_not_list_is_refused_by_its_rule(
    http: httpx.AsyncClient, world: World
) -> None:
    await world.use_policy(FILES_POLICY)
    rule, message = refusal(await ask(http, world, ("chat", "terminal"), terminal_shell="fish"))
    assert rule == "capabilities.terminal.shells"
    assert "fish" in message
    assert (await ask(http, world, ("chat", "terminal"), terminal_shell="zsh")).status_code == 201


async def test_every_direction_asked_is_judged_both_being_two_questions(
    http: httpx.AsyncClient, world: World
) -> None:
    await world.use_policy(FILES_POLICY)
    for direction in ("download", "both", None):
        details = {"files_direction": direction} if direction else {}
        rule, message = refusal(await ask(http, world, ("chat", "files"), **details))
        assert rule == "capabilities.file_transfer.direction", direction
        assert "download" in message
    created = await ask(http, world, ("chat", "files"), files_direction="upload")
    assert created.status_code == 201, created.text
    row = await world.row(created.json()["id"])
    entry = row.capability_limits["files"]
    assert entry["limits"] == {"direction": "upload", "max_bytes": 1_000_000}
    # One question (upload), answered "the person must consent", which the prompt then asks.
    assert [(d["effect"], d["rule"]) for d in entry["decisions"]] == [
        ("require_consent", "consent.required")]


async def test_runbooks_must_be_named_and_in_the_catalogue(
    http: httpx.AsyncClient, world: World
) -> None:
    await world.use_policy(FILES_POLICY.replace(
        "  chat: {roles:",
        "  runbooks: {roles: [technician], approved: [flush-dns]}\n  chat: {roles:",
    ))  # fmt: skip
    unnamed = await ask(http, world, ("chat", "runbooks"))
    assert unnamed.status_code == 422, unnamed.text
    assert unnamed.json()["error"]["details"]["field"] == "runbooks"
    rule, _ = refusal(await ask(http, world, ("chat", "runbooks"), runbooks=["rm-rf"]))
    assert rule == "capabilities.runbooks.approved"
    # Approved by the policy, but the catalogue holds no approved version of it yet.
    rule, message = refusal(await ask(http, world, ("chat", "runbooks"), runbooks=["flush-dns"]))
    assert rule == "capabilities.runbooks.approved"
    assert "flush-dns" in message


async def test_the_prompt_timeout_is_the_strictest_of_the_session_and_each_capability(
    http: httpx.AsyncClient, world: World
) -> None:
    await world.use_policy(FILES_POLICY.replace(
        "  on_timeout: deny\n",
        "  on_timeout: deny\n  capabilities:\n    terminal: {timeout: 12s}\n",
    ))  # fmt: skip
    chat_only = await ask(http, world, ("chat",))
    assert (await world.row(chat_only.json()["id"])).consent_timeout_seconds == 30
    with_terminal = await ask(http, world, ("chat", "terminal"), terminal_shell="bash")
    assert with_terminal.status_code == 201, with_terminal.text
    assert (await world.row(with_terminal.json()["id"])).consent_timeout_seconds == 12


@pytest.mark.parametrize("template", ["school", "strict-privacy"])
async def test_a_template_that_protects_zones_from_the_terminal_denies_it(
    http: httpx.AsyncClient, world: World, template: str
) -> None:
    """The newcomer's `cat ~/Documents/taxes.txt`: under the school template no terminal is ever
    opened, whatever the catalogue says; the refusal names the rule."""
    document = yaml.safe_load(load_template(template))
    # Any time of day, no trainings (the test technician has none): only the zones may refuse.
    document.pop("support_hours", None)
    document["staff"] = {"mfa_required": True}
    # A terminal in the catalogue, so that only the zones rule can refuse it.
    document["capabilities"]["terminal"] = {"roles": ["technician"], "shells": ["bash"]}
    assert document["personal_data_zones"]["terminal"] == "deny"
    text = yaml.safe_dump(document, sort_keys=False)
    await world.use_policy(text)
    rule, message = refusal(await ask(http, world, ("chat", "terminal"), terminal_shell="bash"))
    assert rule == "personal_data_zones.terminal"
    assert "cannot be confined" in message


async def test_the_files_grant_carries_the_zones_of_the_device_platform(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    await world.use_policy(FILES_POLICY)
    created = (await ask(http, world, ("chat", "files"), files_direction="upload")).json()
    technician = FakeTechnician(http.live.url)  # type: ignore[attr-defined]
    await technician.connect()
    await technician.attach(created["id"], world.technician.token)
    await technician.expect_state("attached")
    agent = FakeAgent(http.live.url, capabilities=(Capability.CHAT, Capability.FILES))  # type: ignore[attr-defined]
    await agent.connect()
    await agent.authenticate()
    await agent.join(created["join_code"])
    grant = agent.verify(signing_key)
    files = grant.capability(Capability.FILES, now=grant.issued_at)
    assert files is not None
    limits = files.limits
    assert limits.platform == "linux" and limits.on_zone_access == "require_consent"
    assert limits.zones is not None
    zones = {zone.name: zone.patterns for zone in limits.zones}
    assert zones["payroll"] == ("/srv/payroll/**",)
    assert zones["documents"] == ("/home/*/Documents/**",)
    assert limits.zone_exceptions == ("/home/*/Documents/IT-Shared/**",)
    # The person is told that personal folders stay closed, and a terminal would say its risk.
    purposes = {p.capability: p.purpose for p in grant.terms.purposes}
    assert "asked separately" in purposes[Capability.FILES]


async def test_a_device_whose_zones_cannot_be_told_is_not_offered_files(
    http: httpx.AsyncClient, world: World
) -> None:
    await world.use_policy(FILES_POLICY)
    created = (await ask(http, world, ("chat", "files"), files_direction="upload")).json()
    technician = FakeTechnician(http.live.url)  # type: ignore[attr-defined]
    await technician.connect()
    await technician.attach(created["id"], world.technician.token)
    await technician.expect_state("attached")
    agent = FakeAgent(http.live.url, capabilities=(Capability.CHAT, Capability.FILES))  # type: ignore[attr-defined]
    agent.platform = "plan9"
    await agent.connect()
    await agent.authenticate()
    await agent.send(SessionJoin(id=mid(), join_code=created["join_code"]))
    refused = await agent.expect_error("capability.unavailable")
    assert "personal-data zones" in refused.message
    assert agent.texts_of("session.offer") == []
    assert (await world.row(created["id"])).state == "requested"


async def test_the_terminal_purpose_names_the_risk_where_zones_exist(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    await world.use_policy(FILES_POLICY)
    created = (await ask(http, world, ("chat", "terminal"), terminal_shell="bash")).json()
    technician = FakeTechnician(http.live.url)  # type: ignore[attr-defined]
    await technician.connect()
    await technician.attach(created["id"], world.technician.token)
    await technician.expect_state("attached")
    agent = FakeAgent(http.live.url)  # type: ignore[attr-defined]
    await agent.connect()
    await agent.authenticate()
    await agent.join(created["join_code"])
    grant = agent.verify(signing_key)
    purposes = {p.capability: p.purpose for p in grant.terms.purposes}
    assert "can read your documents" in purposes[Capability.TERMINAL]
    terminal = grant.capability(Capability.TERMINAL, now=grant.issued_at)
    assert terminal is not None and terminal.limits.shell == "bash"
