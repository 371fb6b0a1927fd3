"""Illegal moves answer 409 with the table's view, and change nothing at all."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI

from auxilio.server.tickets.models import Ticket
from auxilio.server.tickets.states import TRANSITIONS, TicketStatus
from tests.factories import Person, make_org, make_technician, make_user, snapshot

# How to reach each state from new through legal moves.
PATHS = {
    TicketStatus.NEW: [],
    TicketStatus.OPEN: ["open"],
    TicketStatus.PENDING: ["pending"],
    TicketStatus.RESOLVED: ["resolved"],
    TicketStatus.CLOSED: ["resolved", "closed"],
}


async def _ticket_in(
    client: httpx.AsyncClient, state: TicketStatus, tech: Person, user: Person
) -> str:
    response = await client.post("/api/v1/tickets", headers=user.headers,
                                 json={"title": "Slow disk", "category": "hardware"})
    ticket_id: str = response.json()["id"]
    for step in PATHS[state]:
        moved = await client.post(f"/api/v1/tickets/{ticket_id}/transition", headers=tech.headers,
                                  json={"to": step})
        assert moved.status_code == 200, moved.text
    return ticket_id


async def _row(app: FastAPI, ticket_id: str) -> dict[str, object]:
    async with app.state.sessionmaker() as db:
        ticket = await db.get(Ticket, uuid.UUID(ticket_id))
        assert ticket is not None
        return {c.name: getattr(ticket, c.key) for c in Ticket.__table__.c}


@pytest.mark.parametrize("state", list(TicketStatus))
async def test_it_refuses_every_illegal_transition_and_writes_nothing(
    app: FastAPI, client: httpx.AsyncClient, state: TicketStatus
) -> None:
    org = await make_org(app)
    tech = await make_technician(app, org)
    user = await make_user(app, org)
    ticket_id = await _ticket_in(client, state, tech, user)
    allowed = sorted(s.value for s in TRANSITIONS[state])
    illegal = [s for s in TicketStatus if s not in TRANSITIONS[state]]
    assert illegal, "every state has at least one illegal target (itself)"

    before_row, before_counts = await _row(app, ticket_id), await snapshot(app)
    for target in illegal:
        response = await client.post(f"/api/v1/tickets/{ticket_id}/transition",
                                     headers=tech.headers, json={"to": target.value})
        assert response.status_code == 409, response.text
        error = response.json()["error"]
        assert error["code"] == "illegal_transition"
        assert error["details"] == {"from": state.value, "to": target.value, "allowed": allowed}
    assert await _row(app, ticket_id) == before_row
    assert await snapshot(app) == before_counts


@pytest.mark.parametrize("state", [TicketStatus.NEW, TicketStatus.OPEN, TicketStatus.PENDING])
async def test_it_lets_the_requester_reopen_only_resolved_or_closed_tickets(
    app: FastAPI, client: httpx.AsyncClient, state: TicketStatus
) -> None:
    org = await make_org(app)
    tech = await make_technician(app, org)
    user = await make_user(app, org)
    ticket_id = await _ticket_in(client, state, tech, user)
    before_row, before_counts = await _row(app, ticket_id), await snapshot(app)

    reopen = await client.post(f"/api/v1/tickets/{ticket_id}/reopen", headers=user.headers)
    close = await client.post(f"/api/v1/tickets/{ticket_id}/close", headers=user.headers)

    assert (reopen.status_code, close.status_code) == (409, 409)
    assert reopen.json()["error"]["code"] == close.json()["error"]["code"] == "illegal_transition"
    assert reopen.json()["error"]["details"]["from"] == state.value
    assert await _row(app, ticket_id) == before_row
    assert await snapshot(app) == before_counts


async def test_it_counts_a_reopen_from_closed(app: FastAPI, client: httpx.AsyncClient) -> None:
    org = await make_org(app)
    tech = await make_technician(app, org)
    user = await make_user(app, org)
    ticket_id = await _ticket_in(client, TicketStatus.CLOSED, tech, user)
    closed_at = (await _row(app, ticket_id))["closed_at"]

    reopened = await client.post(f"/api/v1/tickets/{ticket_id}/reopen", headers=user.headers)

    assert reopened.status_code == 200, reopened.text
    row = await _row(app, ticket_id)
    assert (row["status"], row["reopen_count"], row["closed_at"]) == ("open", 1, closed_at)


async def test_it_keeps_status_changes_for_staff(app: FastAPI, client: httpx.AsyncClient) -> None:
    org = await make_org(app)
    tech = await make_technician(app, org)
    user = await make_user(app, org)
    ticket_id = await _ticket_in(client, TicketStatus.NEW, tech, user)
    before = await snapshot(app)

    response = await client.post(f"/api/v1/tickets/{ticket_id}/transition", headers=user.headers,
                                 json={"to": "resolved"})

    assert response.status_code == 403
    assert response.json()["error"]["details"] == {"permission": "ticket:update"}
    after = await snapshot(app)
    # The denial itself is the one thing recorded.
    assert after == {**before, "audit_events": before["audit_events"] + 1}
