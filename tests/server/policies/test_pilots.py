"""Policy pilots (R21): a version tried on one device group decides that group's sessions and
tickets, the others keep the active policy, and a session keeps the version it was decided by."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from auxilio.crypto.keys import encode_public_key, generate_auditor_key
from auxilio.policy.roles import Role
from auxilio.server.audit.models import AuditEvent
from auxilio.server.db.base import utcnow
from auxilio.server.identity import auth
from auxilio.server.policies import pilots, service
from auxilio.server.policies.models import PolicyPilot
from auxilio.server.support_sessions.models import SupportSession
from auxilio.server.tickets.models import Ticket
from tests.factories import Person, make_org, make_user
from tests.server.support_sessions.conftest import policy_text

ACTIVE = policy_text(max_duration="1h")
PILOTED = policy_text(max_duration="30m")
GROUP = "pilot-lab"


async def upload(client: httpx.AsyncClient, admin: Person, document: str) -> dict[str, str]:
    response = await client.post(
        "/api/v1/policies", json={"document": document}, headers=admin.headers
    )
    assert response.status_code == 201, response.text
    body: dict[str, str] = response.json()
    return body


async def two_versions(client: httpx.AsyncClient, admin: Person) -> tuple[str, str]:
    """v1 active (sessions of 1 h), v2 stored (30 min); their labels."""
    v1 = await upload(client, admin, ACTIVE)
    v2 = await upload(client, admin, PILOTED)
    activated = await client.post("/api/v1/policies/1/activate", headers=admin.headers)
    assert activated.status_code == 200
    return f"v1:{v1['sha256'][:12]}", f"v2:{v2['sha256'][:12]}"


async def start(
    client: httpx.AsyncClient, admin: Person, number: int = 2, **body: str | None
) -> httpx.Response:
    return await client.post(
        f"/api/v1/policies/versions/{number}/pilots",
        json={"device_group": GROUP, **body},
        headers=admin.headers,
    )


async def device_in(app: FastAPI, owner: Person, group: str | None) -> uuid.UUID:
    from auxilio.server.devices import service as devices

    async with app.state.sessionmaker() as db, db.begin():
        device = await devices.register_device(
            db, name="Laptop", platform="linux", device_group=group,
            actor=auth.actor_for(owner.user),
        )  # fmt: skip
        return device.id


async def ticket_for(client: httpx.AsyncClient, person: Person, device_id: uuid.UUID) -> str:
    response = await client.post(
        "/api/v1/tickets",
        json={"title": "Slow laptop", "category": "hardware", "device_id": str(device_id)},
        headers=person.headers,
    )
    assert response.status_code == 201, response.text
    ticket_id: str = response.json()["id"]
    return ticket_id


async def stamped(app: FastAPI, ticket_id: str) -> str | None:
    async with app.state.sessionmaker() as db:
        ticket = await db.get(Ticket, uuid.UUID(ticket_id))
        assert ticket is not None
        return ticket.policy_version


async def request_session(client: httpx.AsyncClient, tech: Person, ticket_id: str) -> dict:  # type: ignore[type-arg]
    response = await client.post(
        "/api/v1/support-sessions",
        json={"ticket_id": ticket_id, "mode": "attended", "capabilities": ["chat"],
              "technician_e2e_key": encode_public_key(generate_auditor_key().public_key())},
        headers=tech.headers,
    )  # fmt: skip
    assert response.status_code == 201, response.text
    body: dict = response.json()  # type: ignore[type-arg]
    return body


async def test_a_pilot_decides_its_groups_sessions_and_tickets_and_no_others(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    admin = await make_user(app, org, Role.ADMIN)
    # A supervisor: the policy lets only the assignee or a supervisor help on a ticket.
    tech = await make_user(app, org, Role.SUPERVISOR)
    person = await make_user(app, org, Role.END_USER)
    v1, v2 = await two_versions(client, admin)
    started = await start(client, admin)
    assert started.status_code == 201, started.text
    pilot = started.json()
    assert pilot["state"] == "running" and pilot["version_label"] == v2

    piloted_ticket = await ticket_for(client, person, await device_in(app, person, GROUP))
    other_ticket = await ticket_for(client, person, await device_in(app, person, "office"))
    assert await stamped(app, piloted_ticket) == v2
    assert await stamped(app, other_ticket) == v1

    piloted = await request_session(client, tech, piloted_ticket)
    assert piloted["policy_version"] == v2
    assert piloted["max_duration_seconds"] == 30 * 60  # the pilot's sessions.max_duration
    other = await request_session(client, tech, other_ticket)
    assert other["policy_version"] == v1
    assert other["max_duration_seconds"] == 60 * 60

    # Every decision of the piloted session was evaluated on the pilot's version.
    async with app.state.sessionmaker() as db:
        rows = await db.execute(
            select(AuditEvent.details).where(
                AuditEvent.action == "policy:decision:made",
                AuditEvent.target_id == uuid.UUID(piloted["id"]).hex,
            )
        )
        versions = {details["policy_version"] for (details,) in rows}
    assert versions == {v2}

    stopped = await client.post(
        f"/api/v1/policies/pilots/{pilot['id']}/stop", headers=admin.headers
    )
    assert stopped.status_code == 200 and stopped.json()["state"] == "stopped"
    after = await ticket_for(client, person, await device_in(app, person, GROUP))
    assert await stamped(app, after) == v1
    assert (await request_session(client, tech, after))["policy_version"] == v1

    # The session decided during the pilot keeps its version for its later checks.
    async with app.state.sessionmaker() as db:
        row = await db.get(SupportSession, uuid.UUID(piloted["id"]))
        assert row is not None
        kept = await service.policy_for_session(db, row)
    assert kept.version_label == v2
    assert kept.policy.sessions.max_duration == timedelta(minutes=30)


async def test_a_ticket_without_a_device_is_stamped_with_the_active_version(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    admin = await make_user(app, org, Role.ADMIN)
    person = await make_user(app, org, Role.END_USER)
    v1, _ = await two_versions(client, admin)
    assert (await start(client, admin)).status_code == 201
    response = await client.post(
        "/api/v1/tickets", json={"title": "No device", "category": "hardware"},
        headers=person.headers,
    )  # fmt: skip
    assert response.status_code == 201
    assert await stamped(app, response.json()["id"]) == v1


async def test_the_active_version_cannot_be_piloted(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    admin = await make_user(app, org, Role.ADMIN)
    await two_versions(client, admin)
    response = await start(client, admin, number=1)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "pilot_version_active"
    missing = await start(client, admin, number=9)
    assert missing.status_code == 404
    async with app.state.sessionmaker() as db:
        assert (await db.execute(select(PolicyPilot))).first() is None


async def test_two_pilots_of_one_group_may_not_overlap(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    admin = await make_user(app, org, Role.ADMIN)
    await two_versions(client, admin)
    await upload(client, admin, policy_text(max_duration="45m"))
    now = utcnow()
    first = await start(
        client, admin, starts_at=now.isoformat(), ends_at=(now + timedelta(days=7)).isoformat()
    )
    assert first.status_code == 201
    overlapping = await start(
        client, admin, number=3, starts_at=(now + timedelta(days=6)).isoformat(), ends_at=None
    )
    assert overlapping.status_code == 409
    assert overlapping.json()["error"]["code"] == "pilot_overlap"
    # Right after the first one ends, and on another group at the same time: both fine.
    later = await start(
        client, admin, number=3, starts_at=(now + timedelta(days=7)).isoformat(), ends_at=None
    )
    assert later.status_code == 201, later.text
    elsewhere = await client.post(
        "/api/v1/policies/versions/3/pilots", json={"device_group": "office"},
        headers=admin.headers,
    )  # fmt: skip
    assert elsewhere.status_code == 201
    listed = (await client.get("/api/v1/policies/pilots", headers=admin.headers)).json()
    assert sorted(p["state"] for p in listed) == ["running", "running", "scheduled"]


async def test_a_stopped_pilot_frees_its_group_and_cannot_be_stopped_twice(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    admin = await make_user(app, org, Role.ADMIN)
    await two_versions(client, admin)
    pilot = (await start(client, admin)).json()
    url = f"/api/v1/policies/pilots/{pilot['id']}/stop"
    assert (await client.post(url, headers=admin.headers)).status_code == 200
    again = await client.post(url, headers=admin.headers)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "pilot_not_running"
    assert (await start(client, admin)).status_code == 201
    unknown = await client.post(f"/api/v1/policies/pilots/{uuid.uuid4()}/stop",
                                headers=admin.headers)  # fmt: skip
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "pilot_not_found"
    async with app.state.sessionmaker() as db:
        actions = [
            a for (a,) in await db.execute(
                select(AuditEvent.action).where(AuditEvent.action.like("policy:pilot:%"))
                .order_by(AuditEvent.seq)
            )
        ]  # fmt: skip
    assert actions == ["policy:pilot:started", "policy:pilot:stopped", "policy:pilot:started"]


async def test_bad_pilot_bodies_are_refused_with_their_codes(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    admin = await make_user(app, org, Role.ADMIN)
    await two_versions(client, admin)
    now = utcnow()
    backwards = await start(
        client, admin, starts_at=now.isoformat(), ends_at=(now - timedelta(hours=1)).isoformat()
    )
    assert backwards.status_code == 422
    assert backwards.json()["error"]["code"] == "pilot_period_invalid"
    blank = await client.post(
        "/api/v1/policies/versions/2/pilots", json={"device_group": "   "},
        headers=admin.headers,
    )  # fmt: skip
    assert blank.status_code == 422
    assert blank.json()["error"]["code"] == "pilot_group_invalid"
    naive = await start(client, admin, starts_at="2026-01-01T00:00:00")
    assert naive.status_code == 422
    async with app.state.sessionmaker() as db:
        assert (await db.execute(select(PolicyPilot))).first() is None


async def test_only_those_who_may_activate_a_policy_may_pilot_one(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    admin = await make_user(app, org, Role.ADMIN)
    supervisor = await make_user(app, org, Role.SUPERVISOR)
    await two_versions(client, admin)
    refused = await start(client, supervisor)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "forbidden"
    pilot = (await start(client, admin)).json()
    stop = await client.post(
        f"/api/v1/policies/pilots/{pilot['id']}/stop", headers=supervisor.headers
    )
    assert stop.status_code == 403
    # Reading the pilots is policy:read, as reading the versions.
    readable = await client.get("/api/v1/policies/pilots", headers=supervisor.headers)
    assert readable.status_code == 200
    # Another organisation's admin does not find the pilot.
    other_admin = await make_user(app, await make_org(app), Role.ADMIN)
    foreign = await client.post(
        f"/api/v1/policies/pilots/{pilot['id']}/stop", headers=other_admin.headers
    )
    assert foreign.status_code == 404


async def test_two_starts_at_once_for_one_group_leave_one_pilot(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    admin = await make_user(app, org, Role.ADMIN)
    await two_versions(client, admin)
    actor = auth.actor_for(admin.user)

    async def attempt() -> object:
        async with app.state.sessionmaker() as db, db.begin():
            return await pilots.start_pilot(
                db, actor, version_number=2, device_group=GROUP, starts_at=utcnow(), ends_at=None
            )

    outcomes = await asyncio.gather(attempt(), attempt(), return_exceptions=True)
    assert sorted(type(o).__name__ for o in outcomes) == ["PilotOverlap", "PolicyPilot"]
    async with app.state.sessionmaker() as db:
        assert len((await db.execute(select(PolicyPilot))).all()) == 1
