"""Policy decisions on a request, REST state changes, visibility and technician attach errors."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auxilio.policy.reasons import params_complete
from auxilio.policy.roles import Role
from auxilio.protocol.types import ConsentDecision
from auxilio.server.context import Actor
from auxilio.server.identity import service as identity
from auxilio.server.identity.models import User
from auxilio.server.support_sessions.models import SupportSession
from tests.factories import make_org, make_technician, make_user
from tests.server.support_sessions.conftest import World, mfa_token, policy_text
from tests.server.support_sessions.flow import active, request
from tests.server.support_sessions.peers import FakeTechnician

DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _tech(http: httpx.AsyncClient) -> FakeTechnician:
    return FakeTechnician(http.live.url)  # type: ignore[attr-defined]


async def _denied(response: httpx.Response, world: World, rule: str) -> None:
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["code"] == "policy_denied"
    assert error["details"]["rule"] == rule and error["details"]["policy_version"]
    # The reason by its code too (docs/policy.md, "Reason codes"), with what fills it.
    assert params_complete(error["details"]["reason_code"], error["details"]["params"])
    denied = await world.events("support_session:session:denied")
    assert [d["rule"] for d in denied] == [rule]


async def test_a_technician_without_mfa_is_denied_with_the_rule_path(
    http: httpx.AsyncClient, world: World
) -> None:
    token = await mfa_token(world.app, world.technician, mfa=False)
    response = await request(http, world, _tech(http), token=token)
    await _denied(response, world, "staff.mfa_required")
    listed = await http.get("/api/v1/support-sessions", headers=world.technician.headers)
    assert [i["state"] for i in listed.json()["items"]] == ["denied"]
    # The stored session keeps the reason's code and parameters, for pages in any language.
    async with world.app.state.sessionmaker() as db:
        row = await db.get(SupportSession, uuid.UUID(listed.json()["items"][0]["id"]))
    assert row is not None
    details = response.json()["error"]["details"]
    assert (row.decision_reason_code, row.decision_params) == (
        details["reason_code"], details["params"]
    )


async def test_only_the_assignee_or_a_supervisor_opens_a_session_on_a_ticket(
    http: httpx.AsyncClient, world: World
) -> None:
    # Observed: any trained technician could open a session on a ticket assigned to another.
    other = await make_technician(world.app, world.org, skills=["hardware"])
    other.token = await mfa_token(world.app, other)
    response = await request(http, world, _tech(http), token=other.token)
    await _denied(response, world, "sessions.ticket_access")
    assert "assigned to another technician" in response.json()["error"]["message"]
    supervisor = await make_user(world.app, world.org, Role.SUPERVISOR, enrol_totp=False)
    supervisor.token = await mfa_token(world.app, supervisor)
    allowed = await request(http, world, _tech(http), token=supervisor.token)
    assert allowed.status_code == 201, allowed.text
    mine = await request(http, world, _tech(http))
    assert mine.status_code == 201, mine.text


async def test_a_technician_without_a_required_training_is_denied(
    http: httpx.AsyncClient, world: World
) -> None:
    await world.use_policy(policy_text().replace(
        "  mfa_required: true", "  mfa_required: true\n  trainings_required:\n"
        "    - {id: privacy, max_age: 365d}"))
    response = await request(http, world, _tech(http))
    assert response.json()["error"]["details"]["rule"].startswith("staff.trainings_required")
    assert response.status_code == 403


async def test_a_technician_whose_training_expired_is_told_when(
    http: httpx.AsyncClient, world: World
) -> None:
    await world.use_policy(policy_text().replace(
        "  mfa_required: true", "  mfa_required: true\n  trainings_required:\n"
        "    - {id: privacy, max_age: 365d}"))  # fmt: skip
    lapsed = datetime.now(UTC) - timedelta(days=2)
    async with world.app.state.sessionmaker() as db, db.begin():
        user = await db.get(User, world.technician.user.id)
        assert user is not None
        await identity.record_training(
            db, user=user, training_id="privacy", title="Privacy",
            completed_at=lapsed - timedelta(days=30), expires_at=lapsed,
            actor=Actor.system(world.org.id),
        )  # fmt: skip
    response = await request(http, world, _tech(http))
    assert response.status_code == 403
    assert f"expired on {lapsed:%Y-%m-%d}" in response.json()["error"]["message"]


async def test_a_request_outside_support_hours_is_denied(
    http: httpx.AsyncClient, world: World
) -> None:
    other_day = DAYS[(datetime.now(UTC).weekday() + 3) % 7]
    await world.use_policy(policy_text(extra=(
        "support_hours:\n  timezone: UTC\n  weekly:\n"
        f"    {other_day}: [\"09:00-10:00\"]\n  outside_hours: deny\n")))
    response = await request(http, world, _tech(http))
    assert response.status_code == 403
    assert response.json()["error"]["details"]["rule"].startswith("support_hours")


async def test_illegal_transitions_answer_409(
    http: httpx.AsyncClient, world: World
) -> None:
    created = (await request(http, world, _tech(http))).json()
    url = f"/api/v1/support-sessions/{created['id']}"
    headers = world.technician.headers
    early = await http.post(f"{url}/summary", headers=headers, json={"summary": "too soon"})
    assert early.status_code == 409
    assert (await http.post(f"{url}/end", headers=headers)).status_code == 200
    again = await http.post(f"{url}/end", headers=headers)
    assert again.status_code == 409 and again.json()["error"]["code"] == "illegal_transition"
    extension = await http.post(f"{url}/extensions", headers=headers,
                                json={"minutes": 5, "reason": "more time"})
    assert extension.status_code == 409


async def test_end_users_see_only_their_own_sessions_and_other_organisations_see_nothing(
    http: httpx.AsyncClient, world: World
) -> None:
    created = (await request(http, world, _tech(http))).json()
    url = f"/api/v1/support-sessions/{created['id']}"
    assert (await http.get(url, headers=world.requester.headers)).status_code == 200
    neighbour = await make_user(world.app, world.org, Role.END_USER, enrol_totp=False)
    assert (await http.get(url, headers=neighbour.headers)).status_code == 404
    other_org = await make_org(world.app)
    outsider = await make_technician(world.app, other_org)
    assert (await http.get(url, headers=outsider.headers)).status_code == 404
    mine = await http.get("/api/v1/support-sessions", headers=neighbour.headers)
    assert mine.json()["total"] == 0
    key = await http.get("/api/v1/server-key")
    assert key.status_code == 200 and key.json()["fingerprint"].startswith("SHA256:")
    bad = await http.post("/api/v1/support-sessions", headers=world.technician.headers,
                          json={"ticket_id": str(world.ticket_id), "mode": "chat_only",
                                "capabilities": ["terminal"],
                                "technician_e2e_key": _tech(http).public_key})
    assert bad.status_code == 422


async def test_technician_attach_refuses_bad_tokens_other_technicians_and_unknown_sessions(
    http: httpx.AsyncClient, world: World
) -> None:
    created = (await request(http, world, _tech(http))).json()
    colleague = await make_technician(world.app, world.org)
    cases = [
        (created["id"], "not-a-valid-token-at-all", "auth.invalid_token"),
        (created["id"], colleague.token, "session.not_yours"),
        (str(uuid.uuid4()), world.technician.token, "session.not_found"),
    ]
    for sid, token, code in cases:
        technician = _tech(http)
        await technician.connect()
        await technician.attach(sid, token)
        await technician.expect_error(code)
        await technician.closed.wait()


async def test_an_extension_needing_approval_waits_for_a_senior_technician(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    running = await active(http, world, signing_key, handshake=False)
    url = f"/api/v1/support-sessions/{running.sid}/extensions"
    asked = await http.post(url, headers=world.technician.headers,
                            json={"minutes": 10, "reason": "the update is still running"})
    assert asked.status_code == 202, asked.text
    before = (await world.row(running.sid)).not_after
    senior = await make_technician(world.app, world.org, role=Role.SENIOR_TECHNICIAN)
    approved = await http.post(f"{url}/{asked.json()['id']}/approve", headers=senior.headers)
    assert approved.status_code == 200, approved.text
    decision = await running.agent.expect("session.extend.decision")
    assert decision.approved and decision.grant is not None
    # Approved by the policy and the senior, but the end moves only once the person accepts.
    assert (await world.row(running.sid)).not_after == before
    await running.technician.expect_state("extension_awaiting_person")
    new = await running.agent.answer_extension(decision, ConsentDecision.GRANTED,
                                               server_key=signing_key)
    assert new.extension is not None and new.extension.reason == "the update is still running"
    await running.agent.expect_state("extended")
    told = await running.technician.expect("session.extend.decision")
    assert (told.approved, told.decided_by) == (True, "end_user")
    after = (await world.row(running.sid)).not_after
    assert before is not None and after == before + timedelta(minutes=10)
    actions = await world.actions(running.sid)
    assert "support_session:extension:requested" in actions
    assert "support_session:extension:approved" in actions
    assert "support_session:extension:accepted" in actions


async def test_an_extension_the_person_refuses_leaves_the_end_where_it_was(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    running = await active(http, world, signing_key, handshake=False)
    url = f"/api/v1/support-sessions/{running.sid}/extensions"
    before = (await world.row(running.sid)).not_after
    asked = await http.post(url, headers=world.technician.headers,
                            json={"minutes": 10, "reason": "the update is still running"})
    senior = await make_technician(world.app, world.org, role=Role.SENIOR_TECHNICIAN)
    await http.post(f"{url}/{asked.json()['id']}/approve", headers=senior.headers)
    decision = await running.agent.expect("session.extend.decision")
    again = await http.post(url, headers=world.technician.headers,
                            json={"minutes": 5, "reason": "one more"})
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "extension_in_progress"
    await running.agent.answer_extension(decision, ConsentDecision.REFUSED,
                                         server_key=signing_key)
    told = await running.technician.expect("session.extend.decision")
    assert (told.approved, told.decided_by) == (False, "end_user")
    assert (await world.row(running.sid)).not_after == before
    assert "support_session:extension:declined" in await world.actions(running.sid)
    # A replayed answer changes nothing and is refused with its code.
    await running.agent.answer_extension(decision, ConsentDecision.GRANTED,
                                         server_key=signing_key)
    await running.agent.expect_error("extension.not_offered")
    assert (await world.row(running.sid)).not_after == before
