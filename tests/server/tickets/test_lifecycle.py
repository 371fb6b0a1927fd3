"""A ticket's whole life through HTTP, and the KPI fields it leaves behind."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from auxilio.policy.roles import Role
from auxilio.server.audit.models import AuditEvent
from tests.factories import Person, make_org, make_technician, make_user


async def _post(client: httpx.AsyncClient, url: str, who: Person, body: Any = None) -> Any:
    response = await client.post(url, json=body, headers=who.headers)
    assert response.status_code in (200, 201), response.text
    return response.json()


async def _actions(app: FastAPI, target_id: str) -> list[str]:
    async with app.state.sessionmaker() as db:
        rows = await db.execute(
            select(AuditEvent.action).where(AuditEvent.target_id == uuid.UUID(target_id).hex)
            .order_by(AuditEvent.seq)
        )
        return list(rows.scalars())


async def test_it_runs_a_ticket_from_opening_to_closing(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    tech = await make_technician(app, org, skills=["hardware"])
    user = await make_user(app, org)

    ticket = await _post(client, "/api/v1/tickets", user,
                         {"title": "Laptop will not boot", "category": "hardware",
                          "priority": "high", "description": "Black screen since Monday."})
    url = f"/api/v1/tickets/{ticket['id']}"
    assert ticket["number"] == 1
    assert ticket["status"] == "new"
    assert ticket["assignee_id"] == str(tech.user.id)
    assert ticket["requester_id"] == ticket["created_by_id"] == str(user.user.id)
    assert ticket["contact_count"] == 1
    assert ticket["first_response_at"] is None

    await _post(client, f"{url}/comments", tech, {"body": "Does the power LED light up?"})
    await _post(client, f"{url}/comments", tech, {"body": "Probably the PSU.", "internal": True})
    await _post(client, f"{url}/comments", user, {"body": "Yes, it is orange."})
    await _post(client, f"{url}/transition", tech, {"to": "open"})
    resolved = await _post(client, f"{url}/transition", tech, {"to": "resolved"})
    assert resolved["resolved_at"] is not None
    first_resolution = resolved["resolved_at"]

    reopened = await _post(client, f"{url}/reopen", user)
    assert reopened["status"] == "open"
    assert reopened["reopen_count"] == 1
    # The last resolution is kept while reopened; the status says it is not resolved now.
    assert reopened["resolved_at"] == first_resolution

    await _post(client, f"{url}/time", tech, {"minutes": 30, "note": "Swapped the PSU."})
    logged = await _post(client, f"{url}/time", tech, {"minutes": 15})
    assert logged["ticket_time_spent_seconds"] == 45 * 60
    await _post(client, f"{url}/transition", tech, {"to": "resolved"})
    closed = await _post(client, f"{url}/close", user)

    assert closed["status"] == "closed"
    assert closed["closed_at"] is not None
    assert closed["resolved_at"] >= first_resolution
    assert closed["first_response_at"] is not None
    assert closed["first_response_at"] <= closed["resolved_at"] <= closed["closed_at"]
    # Opening + technician's public reply + requester's reply; the internal note is no contact.
    assert closed["contact_count"] == 3
    assert closed["time_spent_seconds"] == 2700
    assert closed["comment_count"] == 2
    assert (await client.get(url, headers=tech.headers)).json()["comment_count"] == 3

    assert await _actions(app, ticket["id"]) == [
        "ticket:ticket:opened", "ticket:assignment:changed",
        "ticket:comment:added", "ticket:comment:added", "ticket:comment:added",
        "ticket:status:changed", "ticket:status:changed", "ticket:status:changed",
        "ticket:time:logged", "ticket:time:logged",
        "ticket:status:changed", "ticket:status:changed",
    ]


async def test_it_sets_first_response_on_a_staff_status_change(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    tech = await make_technician(app, org)
    user = await make_user(app, org)
    ticket = await _post(client, "/api/v1/tickets", user, {"title": "VPN", "category": "network"})
    url = f"/api/v1/tickets/{ticket['id']}"

    await _post(client, f"{url}/comments", user, {"body": "Still broken."})
    after_requester = (await client.get(url, headers=user.headers)).json()
    assert after_requester["first_response_at"] is None
    assert after_requester["contact_count"] == 2

    moved = await _post(client, f"{url}/transition", tech, {"to": "pending"})
    assert moved["first_response_at"] is not None
    assert moved["contact_count"] == 2


async def test_it_does_not_count_a_technicians_own_ticket_as_a_response(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    tech = await make_technician(app, org)
    ticket = await _post(client, "/api/v1/tickets", tech,
                         {"title": "My mouse", "category": "other"})
    commented = await _post(client, f"/api/v1/tickets/{ticket['id']}/comments", tech,
                            {"body": "Also the keyboard."})
    assert commented["internal"] is False
    again = (await client.get(f"/api/v1/tickets/{ticket['id']}", headers=tech.headers)).json()
    assert again["first_response_at"] is None
    assert again["contact_count"] == 2


async def test_it_numbers_tickets_per_organisation_without_gaps(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    first_org, second_org = await make_org(app), await make_org(app)
    alice = await make_user(app, first_org)
    bob = await make_user(app, second_org)

    async def open_one(who: Person) -> int:
        body = {"title": "Concurrent", "category": "software"}
        return int((await _post(client, "/api/v1/tickets", who, body))["number"])

    numbers = await asyncio.gather(*(open_one(alice) for _ in range(6)))
    assert sorted(numbers) == [1, 2, 3, 4, 5, 6]
    assert await open_one(bob) == 1


async def test_it_lets_staff_open_a_ticket_on_behalf_of_an_end_user(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    tech = await make_technician(app, org)
    user = await make_user(app, org)
    ticket = await _post(client, "/api/v1/tickets", tech,
                         {"title": "Called in", "category": "account",
                          "requester_id": str(user.user.id)})
    assert ticket["requester_id"] == str(user.user.id)
    assert ticket["created_by_id"] == str(tech.user.id)
    listed = (await client.get("/api/v1/tickets", headers=user.headers)).json()
    assert [t["id"] for t in listed["items"]] == [ticket["id"]]


async def test_it_lists_with_filters_and_pages(app: FastAPI, client: httpx.AsyncClient) -> None:
    org = await make_org(app)
    tech = await make_technician(app, org)
    senior = await make_user(app, org, Role.SENIOR_TECHNICIAN)  # no working hours: never routed
    user = await make_user(app, org)
    ids = [(await _post(client, "/api/v1/tickets", user,
                        {"title": f"T{i}", "category": "other"}))["id"] for i in range(5)]
    await _post(client, f"/api/v1/tickets/{ids[0]}/assign", senior,
                {"assignee_id": str(senior.user.id)})
    await _post(client, f"/api/v1/tickets/{ids[1]}/transition", tech, {"to": "resolved"})

    async def listing(who: Person, **params: Any) -> Any:
        response = await client.get("/api/v1/tickets", params=params, headers=who.headers)
        assert response.status_code == 200, response.text
        return response.json()

    page = await listing(tech, limit=2, offset=1)
    assert page["total"] == 5
    assert [t["number"] for t in page["items"]] == [4, 3]
    assert (await listing(tech, status="resolved"))["total"] == 1
    assert [t["id"] for t in (await listing(senior, mine="true"))["items"]] == [ids[0]]
    assert (await listing(tech, mine="true"))["total"] == 4
    by_assignee = await listing(tech, assignee_id=str(tech.user.id), status="new")
    assert by_assignee["total"] == 3
    bad = await client.get("/api/v1/tickets", params={"status": "lost"}, headers=tech.headers)
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "validation_failed"
