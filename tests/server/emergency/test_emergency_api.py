"""Declaring, reading and lifting an emergency through the API, on SQLite and PostgreSQL: who
may (the policy's emergency.declare_roles), what it ends, what it blocks, every bad input with
its code, two supervisors at once, and the state after a restart."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from auxilio.policy import Effect
from auxilio.policy.schema import SessionMode
from auxilio.protocol.types import Capability
from auxilio.server.app import create_app
from auxilio.server.emergency import service
from auxilio.server.emergency.errors import EmergencyAlreadyActive, EmergencyReasonTooLong
from auxilio.server.emergency.models import Emergency
from auxilio.server.identity.auth import actor_for
from auxilio.server.settings import Settings
from auxilio.server.support_sessions import service as sessions
from auxilio.server.support_sessions.models import SupportSession
from tests.server.emergency.helpers import Org, e2e_key, make_world, policy_text

API = "/api/v1/emergency"


@pytest.fixture
async def world(app: FastAPI) -> Org:
    return await make_world(app)


async def declare(client: httpx.AsyncClient, who: dict[str, str], reason: object = "Ransomware"
                  ) -> httpx.Response:
    return await client.post(API, headers=who, json={"reason": reason})


async def test_a_supervisor_declares_and_everyone_reads_it(
    client: httpx.AsyncClient, world: Org
) -> None:
    response = await declare(client, world.supervisor.headers, "  Ransomware on the file server ")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["active"] is True
    assert body["reason"] == "Ransomware on the file server"
    assert body["rule"] == "emergency.declare_roles"
    assert body["actions"] == ["end_all_sessions", "lock_unattended"]
    assert body["escalate_to"] == ["security-team", "ciso@example.test"]
    assert body["declared_by"] == str(world.supervisor.user.id)
    assert body["declared_by_name"] == world.supervisor.user.display_name
    # Everyone of the organisation reads the state, the person at the device too.
    for person in (world.requester, world.technician, world.admin):
        state = await client.get(API, headers=person.headers)
        assert state.status_code == 200
        assert state.json()["active"] is True
        assert state.json()["emergency"]["id"] == body["id"]
        assert state.json()["emergency"]["reason"] == "Ransomware on the file server"
        # Whom the organisation escalates to is for its staff, as on the banner.
        assert state.json()["emergency"]["escalate_to"] == (
            [] if person is world.requester else ["security-team", "ciso@example.test"])
    declared = await world.events("emergency:emergency:declared")
    assert [e.details["reason"] for e in declared] == ["Ransomware on the file server"]
    assert declared[0].actor_id == world.supervisor.user.id
    escalated = await world.events("emergency:escalation:notified")
    assert escalated[0].details == {"contacts": ["security-team", "ciso@example.test"],
                                    "channel": "console", "email": "not_built"}


async def test_nothing_declared_reads_as_inactive(client: httpx.AsyncClient, world: Org) -> None:
    state = await client.get(API, headers=world.requester.headers)
    assert state.json() == {"active": False, "emergency": None}


async def test_declaring_ends_every_live_session_of_the_organisation_only(
    client: httpx.AsyncClient, world: Org, app: FastAPI
) -> None:
    ours = [(await world.request_session(client)).json()["id"] for _ in range(3)]
    other = await make_world(app)
    theirs = (await other.request_session(client)).json()["id"]
    response = await declare(client, world.admin.headers)
    assert response.status_code == 201
    assert sorted(response.json()["ended_support_session_ids"]) == sorted(ours)
    assert response.json()["sessions_ended"] == 3
    for sid in ours:
        row = await world.session_row(sid)
        assert (row.state, row.end_reason, row.ended_by) == ("ended", "emergency", "supervisor")
        assert row.end_detail == f"emergency {response.json()['id']}"
    assert (await world.session_row(theirs)).state == "requested"
    ended = await world.events("support_session:session:ended")
    assert sorted(e.target_id for e in ended) == sorted(uuid.UUID(s).hex for s in ours)
    assert {e.details["reason"] for e in ended} == {"emergency"}


async def test_a_policy_without_end_all_sessions_leaves_sessions_running(
    client: httpx.AsyncClient, world: Org
) -> None:
    await world.use_policy(policy_text(end_all="false"))
    sid = (await world.request_session(client)).json()["id"]
    response = await declare(client, world.supervisor.headers)
    assert response.status_code == 201
    assert response.json()["actions"] == ["lock_unattended"]
    assert response.json()["ended_support_session_ids"] == []
    assert (await world.session_row(sid)).state == "requested"


async def test_a_role_the_policy_does_not_name_is_denied_by_the_rule_and_audited(
    client: httpx.AsyncClient, world: Org
) -> None:
    await world.use_policy(policy_text(roles="[admin]"))
    sid = (await world.request_session(client)).json()["id"]
    response = await declare(client, world.supervisor.headers)
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "policy_denied"
    assert error["details"]["rule"] == "emergency.declare_roles"
    assert error["details"]["reason_code"] == "emergency.declare.denied"
    assert error["details"]["params"] == {"role": "supervisor"}
    assert await world.emergencies() == []
    assert (await world.session_row(sid)).state == "requested"
    denied = await world.events("policy:decision:denied")
    assert [e.details["rule"] for e in denied] == ["emergency.declare_roles"]
    assert denied[0].actor_id == world.supervisor.user.id
    # Lifting is the same power: refused the same way.
    response = await client.post(f"{API}/lift", headers=world.supervisor.headers,
                                 json={"reason": "over"})
    assert response.status_code == 403
    assert response.json()["error"]["details"]["rule"] == "emergency.declare_roles"
    # The admin the policy names may.
    assert (await declare(client, world.admin.headers)).status_code == 201


async def test_roles_without_the_permission_are_forbidden(
    client: httpx.AsyncClient, world: Org
) -> None:
    for person in (world.technician, world.requester):
        response = await declare(client, person.headers)
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "forbidden"
        assert response.json()["error"]["details"]["permission"] == "emergency:declare"
    assert (await client.post(API, json={"reason": "x"})).status_code == 401
    assert (await client.get(API)).status_code == 401
    assert await world.emergencies() == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "validation_failed"),
        ({"reason": ""}, "validation_failed"),
        ({"reason": None}, "validation_failed"),
        ({"reason": 7}, "validation_failed"),
        ({"reason": "x" * 2001}, "validation_failed"),
        ({"reason": "ok", "end_all": False}, "validation_failed"),
        ({"reason": "   \n\t "}, "emergency.reason_required"),
        ({"reason": "bell\x07"}, "emergency.reason_invalid"),
        ({"reason": "nul\x00byte"}, "emergency.reason_invalid"),
        ({"reason": "admin\u202etxt.exe"}, "emergency.reason_invalid"),
    ],
    ids=["missing", "empty", "null", "number", "too-long", "unknown-field", "blank", "bell",
         "nul", "bidi"],
)
async def test_bad_reasons_get_their_codes(
    client: httpx.AsyncClient, world: Org, body: dict[str, object], code: str
) -> None:
    for path in (API, f"{API}/lift"):
        response = await client.post(path, headers=world.supervisor.headers, json=body)
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == code
    assert await world.emergencies() == []


async def test_bad_json_is_malformed(client: httpx.AsyncClient, world: Org) -> None:
    response = await client.post(API, headers={**world.supervisor.headers,
                                               "content-type": "application/json"},
                                 content=b"{reason")
    assert (response.status_code, response.json()["error"]["code"]) == (422, "malformed_json")


def test_the_service_refuses_a_reason_over_the_bound() -> None:
    with pytest.raises(EmergencyReasonTooLong) as caught:
        service.check_reason("x" * (service.REASON_MAX + 1))
    assert caught.value.code == "emergency.reason_too_long"
    assert service.check_reason(" line one\nline two\t ") == "line one\nline two"


async def test_a_second_declaration_is_refused_and_lifting_is_audited(
    client: httpx.AsyncClient, world: Org
) -> None:
    first = await declare(client, world.supervisor.headers, "Breach")
    assert first.status_code == 201
    again = await declare(client, world.admin.headers, "Breach again")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "emergency.already_active"
    lifted = await client.post(f"{API}/lift", headers=world.admin.headers,
                               json={"reason": "Contained; keys rotated"})
    assert lifted.status_code == 200, lifted.text
    body = lifted.json()
    assert body["active"] is False
    assert (body["lifted_by"], body["lift_reason"]) == (str(world.admin.user.id),
                                                        "Contained; keys rotated")
    assert body["lifted_by_name"] == world.admin.user.display_name
    events = await world.events("emergency:emergency:lifted")
    assert [e.details["reason"] for e in events] == ["Contained; keys rotated"]
    assert events[0].target_id == first.json()["id"].replace("-", "")
    state = (await client.get(API, headers=world.technician.headers)).json()
    assert state["active"] is False
    assert state["emergency"]["lift_reason"] == "Contained; keys rotated"
    # Nothing to lift now; a new emergency may be declared.
    none = await client.post(f"{API}/lift", headers=world.admin.headers, json={"reason": "x"})
    assert (none.status_code, none.json()["error"]["code"]) == (409, "emergency.not_active")
    assert (await declare(client, world.supervisor.headers, "Second")).status_code == 201
    assert len(await world.emergencies()) == 2


async def test_two_supervisors_declaring_at_once_make_one_emergency(
    client: httpx.AsyncClient, world: Org
) -> None:
    sids = [(await world.request_session(client)).json()["id"] for _ in range(2)]
    responses = await asyncio.gather(
        declare(client, world.supervisor.headers, "Outage A"),
        declare(client, world.supervisor2.headers, "Outage B"),
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [201, 409], [r.text for r in responses]
    loser = next(r for r in responses if r.status_code == 409)
    assert loser.json()["error"]["code"] == "emergency.already_active"
    rows = await world.emergencies()
    assert len(rows) == 1
    assert len(await world.events("emergency:emergency:declared")) == 1
    ended = await world.events("support_session:session:ended")
    assert sorted(e.target_id for e in ended) == sorted(uuid.UUID(s).hex for s in sids)


async def test_two_transactions_racing_past_the_check_meet_the_index(
    app: FastAPI, world: Org
) -> None:
    """Both check "no active emergency" before either commits: the database's partial unique
    index refuses the second insert (PostgreSQL), or the second transaction waits for the
    first and then sees it (SQLite's BEGIN IMMEDIATE): one emergency, one already_active."""
    started = asyncio.Event()

    async def first() -> None:
        async with app.state.sessionmaker() as db, db.begin():
            await service.declare(db, actor=actor_for(world.supervisor.user), reason="A")
            started.set()
            await asyncio.sleep(0.3)

    async def second() -> str:
        await started.wait()
        try:
            async with app.state.sessionmaker() as db, db.begin():
                await service.declare(db, actor=actor_for(world.supervisor2.user), reason="B")
        except EmergencyAlreadyActive as exc:
            return exc.code
        return "declared"

    _, outcome = await asyncio.gather(first(), second())
    assert outcome == "emergency.already_active"
    assert [r.reason for r in await world.emergencies()] == ["A"]


async def test_the_database_holds_at_most_one_active_emergency(app: FastAPI, world: Org) -> None:
    now = datetime.now(UTC)

    def row(**kw: object) -> Emergency:
        return Emergency(organisation_id=world.org.id, declared_by=world.admin.user.id,
                         declared_at=now, reason="r", actions=[], escalate_to=[],
                         sessions_ended=0, **kw)

    async with app.state.sessionmaker() as db, db.begin():
        db.add(row(lifted_at=now - timedelta(hours=1), lifted_by=world.admin.user.id))
        db.add(row(lifted_at=now - timedelta(hours=2), lifted_by=world.admin.user.id))
        db.add(row())
    with pytest.raises(IntegrityError):
        async with app.state.sessionmaker() as db, db.begin():
            db.add(row())


async def test_during_an_emergency_unattended_starts_are_locked_and_attended_are_not(
    app: FastAPI, client: httpx.AsyncClient, world: Org
) -> None:
    async def unattended() -> tuple[Effect, str]:
        async with app.state.sessionmaker() as db, db.begin():
            outcome = await sessions.request_support_session(
                db, ticket_id=world.ticket_id, mode=SessionMode.UNATTENDED,
                capabilities=[Capability.TERMINAL], technician_e2e_key=e2e_key(),
                actor=actor_for(world.technician.user), node_id="t")
            return outcome.decision.effect, outcome.decision.rule

    before = await unattended()
    assert before[1] != "emergency.actions.lock_unattended"
    assert (await declare(client, world.supervisor.headers)).status_code == 201
    assert await unattended() == (Effect.DENY, "emergency.actions.lock_unattended")
    attended = await world.request_session(client)
    assert attended.status_code == 201, attended.text
    requested = await world.events("support_session:session:requested")
    denied = await world.events("policy:decision:denied")
    assert any(e.details["rule"] == "emergency.actions.lock_unattended"
               and e.details["context"]["emergency_active"] is True for e in denied)
    assert requested[-1].target_id == attended.json()["id"].replace("-", "")
    await client.post(f"{API}/lift", headers=world.supervisor.headers, json={"reason": "over"})
    assert (await unattended())[1] != "emergency.actions.lock_unattended"


async def test_a_new_app_on_the_same_database_keeps_the_emergency(
    app: FastAPI, client: httpx.AsyncClient, world: Org, settings: Settings,
    signing_key: object,
) -> None:
    """The server restarted during an emergency: the state is the database's."""
    declared = (await declare(client, world.supervisor.headers, "Breach")).json()
    restarted = create_app(settings, signing_key=signing_key)  # type: ignore[arg-type]
    async with restarted.router.lifespan_context(restarted):
        transport = httpx.ASGITransport(app=restarted)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c2:
            state = (await c2.get(API, headers=world.technician.headers)).json()
            assert state["active"] is True and state["emergency"]["id"] == declared["id"]
            again = await declare(c2, world.admin.headers)
            assert again.json()["error"]["code"] == "emergency.already_active"
            async with restarted.state.sessionmaker() as db, db.begin():
                outcome = await sessions.request_support_session(
                    db, ticket_id=world.ticket_id, mode=SessionMode.UNATTENDED,
                    capabilities=[Capability.TERMINAL], technician_e2e_key=e2e_key(),
                    actor=actor_for(world.technician.user), node_id="t")
            assert outcome.decision.rule == "emergency.actions.lock_unattended"


async def test_sessions_ended_by_an_emergency_are_told_to_a_device_coming_back(
    app: FastAPI, client: httpx.AsyncClient, world: Org
) -> None:
    """find_lost_for_device: within the notice window as for a lost session, and at any time
    while the emergency that ended it is still active."""
    sid = (await world.request_session(client)).json()["id"]
    async with app.state.sessionmaker() as db, db.begin():
        await db.execute(update(SupportSession).where(SupportSession.id == uuid.UUID(sid))
                         .values(device_public_key="k" * 43))
    await declare(client, world.supervisor.headers)
    long_ago = datetime.now(UTC) - timedelta(days=3)
    async with app.state.sessionmaker() as db, db.begin():
        await db.execute(update(SupportSession).where(SupportSession.id == uuid.UUID(sid))
                         .values(ended_at=long_ago))

    async def told() -> uuid.UUID | None:
        async with app.state.sessionmaker() as db:
            found = await sessions.find_lost_for_device(
                db, device_public_key="k" * 43, since=datetime.now(UTC) - timedelta(minutes=10))
            return found.id if found else None

    assert await told() == uuid.UUID(sid)
    await client.post(f"{API}/lift", headers=world.supervisor.headers, json={"reason": "over"})
    assert await told() is None  # three days ago, and the emergency is over


async def test_the_banner_is_for_the_organisation_and_names_contacts(
    app: FastAPI, client: httpx.AsyncClient, world: Org
) -> None:
    await declare(client, world.supervisor.headers, "Breach")
    other = await make_world(app)
    async with app.state.sessionmaker() as db:
        for person, contact in ((world.requester, False), (world.admin, False)):
            found = await service.banner(db, user=person.user)
            assert found is not None and found.reason == "Breach"
            assert found.declared_by == world.supervisor.user.display_name
            assert found.you_are_contact is contact
        assert await service.banner(db, user=other.admin.user) is None
    assert service.is_contact(["Security-Team", "CISO@example.test"], email="ciso@example.TEST",
                              role="admin")
    assert service.is_contact(["supervisor"], email="a@b", role="supervisor")
    assert not service.is_contact(["security-team"], email="a@b", role="admin")
    async with app.state.sessionmaker() as db:
        assert (await db.execute(select(Emergency.sessions_ended))).scalar_one() == 0
