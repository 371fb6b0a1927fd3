"""Assignment by hand and automatically, through HTTP."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from auxilio.policy.roles import Role
from auxilio.server.audit.models import AuditEvent
from auxilio.server.identity.models import User
from auxilio.server.tickets.models import Ticket
from tests.factories import make_org, make_technician, make_ticket, make_user, snapshot

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


async def _last_action(app: FastAPI) -> tuple[str, dict[str, object]]:
    async with app.state.sessionmaker() as db:
        event = (
            await db.execute(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1))
        ).scalar_one()
        return event.action, event.details


async def test_it_leaves_the_ticket_unassigned_when_nobody_is_on_duty(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    await make_technician(app, org, skills=["hardware"], working_hours={})
    await make_technician(app, org, skills=["network"])
    user = await make_user(app, org)

    response = await client.post("/api/v1/tickets", headers=user.headers,
                                 json={"title": "Broken screen", "category": "hardware"})

    assert response.status_code == 201
    assert response.json()["assignee_id"] is None
    action, details = await _last_action(app)
    assert action == "ticket:assignment:no_candidate"
    assert details["reason"] == {
        "category": "hardware", "skill_required": True, "technicians": 2, "with_skill": 1,
        "with_skill_in_hours": 0,
        "waiting_because": "no technician with the skill is in working hours",
    }  # fmt: skip


async def test_a_waiting_ticket_is_taken_once_someone_with_the_skill_comes_on_duty(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    skilled = await make_technician(app, org, skills=["account"], working_hours={})
    await make_technician(app, org, skills=["hardware"])
    user = await make_user(app, org)
    ticket_id = await make_ticket(app, user, category="account")
    url = f"/api/v1/tickets/{ticket_id}"
    assert (await client.get(url, headers=user.headers)).json()["assignee_id"] is None
    assert await app.state.ticket_queue.run_once() == 0  # still nobody skilled on duty
    async with app.state.sessionmaker() as db, db.begin():
        found = await db.get(User, skilled.user.id)
        assert found is not None
        found.working_hours = {d: ["00:00-24:00"] for d in DAYS}
    assert await app.state.ticket_queue.run_once() == 1
    assert (await client.get(url, headers=user.headers)).json()["assignee_id"] == str(
        skilled.user.id
    )
    action, details = await _last_action(app)
    assert (action, details["mode"]) == ("ticket:assignment:changed", "queue")
    assert details["reason"]["with_skill_in_hours"] == 1  # type: ignore[index]
    async with app.state.sessionmaker() as db:
        ticket = await db.get(Ticket, ticket_id)
        assert ticket is not None and ticket.assigned_at is not None


async def test_it_auto_assigns_to_the_least_loaded_technician(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    user = await make_user(app, org)
    first = await make_technician(app, org)
    await make_ticket(app, user, category="other")  # routed to the only technician
    second = await make_technician(app, org)
    # No working hours: never routed, so the choice below is between the two technicians.
    senior = await make_user(app, org, Role.SENIOR_TECHNICIAN, enrol_totp=False)
    ticket_id = await make_ticket(app, user, category="other")
    url = f"/api/v1/tickets/{ticket_id}"
    assert (await client.get(url, headers=first.headers)).json()["assignee_id"] == str(
        second.user.id)

    moved = await client.post(f"{url}/assign", headers=senior.headers,
                              json={"assignee_id": str(first.user.id)})
    assert moved.json()["assignee_id"] == str(first.user.id)
    # first now holds two; auto-assign ignores this ticket's own weight and picks second again.
    again = await client.post(f"{url}/auto-assign", headers=senior.headers)
    assert again.status_code == 200, again.text
    assert again.json()["assignee_id"] == str(second.user.id)
    action, details = await _last_action(app)
    assert action == "ticket:assignment:changed"
    assert details["mode"] == "auto"
    assert details["reason"]["open_tickets"] == 0  # type: ignore[index]


async def test_it_assigns_only_active_technicians_of_the_organisation(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    home, away = await make_org(app), await make_org(app)
    user = await make_user(app, home)
    senior = await make_user(app, home, Role.SENIOR_TECHNICIAN, enrol_totp=False)
    supervisor = await make_user(app, home, Role.SUPERVISOR, enrol_totp=False)
    foreign = await make_technician(app, away)
    ticket_id = await make_ticket(app, user)
    before = await snapshot(app)

    for person in (user, supervisor, foreign):
        response = await client.post(f"/api/v1/tickets/{ticket_id}/assign",
                                     headers=senior.headers,
                                     json={"assignee_id": str(person.user.id)})
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "invalid_assignee"
    assert await snapshot(app) == before


async def test_it_lets_only_assigners_assign(app: FastAPI, client: httpx.AsyncClient) -> None:
    org = await make_org(app)
    tech = await make_technician(app, org)
    user = await make_user(app, org)
    ticket_id = await make_ticket(app, user)

    response = await client.post(f"/api/v1/tickets/{ticket_id}/assign", headers=tech.headers,
                                 json={"assignee_id": str(tech.user.id)})

    assert response.status_code == 403
    assert response.json()["error"]["details"] == {"permission": "ticket:assign"}


async def test_it_does_not_assign_resolved_tickets(app: FastAPI, client: httpx.AsyncClient) -> None:
    org = await make_org(app)
    tech = await make_technician(app, org)
    senior = await make_user(app, org, Role.SENIOR_TECHNICIAN, enrol_totp=False)
    user = await make_user(app, org)
    ticket_id = await make_ticket(app, user)
    url = f"/api/v1/tickets/{ticket_id}"
    await client.post(f"{url}/transition", headers=tech.headers, json={"to": "resolved"})

    manual = await client.post(f"{url}/assign", headers=senior.headers, json={"assignee_id": None})
    auto = await client.post(f"{url}/auto-assign", headers=senior.headers)

    assert [manual.status_code, auto.status_code] == [409, 409]
    assert {manual.json()["error"]["code"], auto.json()["error"]["code"]} == {"ticket_not_active"}
