"""Bad input gets a clear error code and writes nothing; SQL-like text is just text."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from auxilio.policy.roles import Role
from tests.factories import Person, make_org, make_technician, make_ticket, make_user, snapshot

SQL = "'; DROP TABLE tickets; -- \" OR 1=1 /*"
HOSTILE = {
    "nul": "bad\x00text",
    "escape": "bad\x1b[31mred",
    "rtl_override": "invoice\u202egnp.exe",
    "bidi_isolate": "name\u2066hidden\u2069",
}


async def _people(app: FastAPI) -> tuple[Person, Person, str]:
    org = await make_org(app)
    tech = await make_technician(app, org)
    user = await make_user(app, org)
    return tech, user, str(await make_ticket(app, user))


def _text_fields(ticket_id: str) -> list[tuple[str, str, str, dict[str, Any], str]]:
    """(who, method, url, body without the field, field) for every free-text field."""
    t = f"/api/v1/tickets/{ticket_id}"
    return [
        ("user", "POST", "/api/v1/tickets", {"category": "other"}, "title"),
        ("user", "POST", "/api/v1/tickets", {"title": "ok", "category": "other"}, "description"),
        ("tech", "PATCH", t, {}, "title"),
        ("user", "POST", f"{t}/comments", {}, "body"),
        ("tech", "POST", f"{t}/comments", {"internal": True}, "body"),
        ("tech", "POST", f"{t}/time", {"minutes": 5}, "note"),
        ("user", "POST", "/api/v1/devices", {"platform": "linux"}, "name"),
        ("user", "POST", "/api/v1/devices", {"name": "ok", "platform": "linux"}, "device_group"),
    ]


@pytest.mark.parametrize("kind", sorted(HOSTILE))
async def test_it_refuses_control_and_bidi_characters_in_every_text_field(
    app: FastAPI, client: httpx.AsyncClient, kind: str
) -> None:
    tech, user, ticket_id = await _people(app)
    people = {"tech": tech, "user": user}
    before = await snapshot(app)
    for who, method, url, body, field in _text_fields(ticket_id):
        response = await client.request(method, url, headers=people[who].headers,
                                         json={**body, field: HOSTILE[kind]})
        assert response.status_code == 422, (url, field, response.text)
        error = response.json()["error"]
        assert error["code"] == "validation_failed"
        assert error["details"]["problems"][0]["loc"] == ["body", field]
    assert await snapshot(app) == before


async def test_it_stores_sql_like_text_verbatim(app: FastAPI, client: httpx.AsyncClient) -> None:
    tech, user, ticket_id = await _people(app)
    people = {"tech": tech, "user": user}
    for who, method, url, body, field in _text_fields(ticket_id):
        response = await client.request(method, url, headers=people[who].headers,
                                         json={**body, field: SQL})
        assert response.status_code in (200, 201), (url, field, response.text)
        stored = response.json()
        assert stored[field] == SQL, (url, field)
    page = (await client.get("/api/v1/tickets", headers=tech.headers)).json()
    assert page["total"] == 3


async def test_it_normalises_odd_but_harmless_unicode(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    _tech, user, _ticket = await _people(app)
    response = await client.post("/api/v1/tickets", headers=user.headers,
                                 json={"title": "Cafe\u0301 \U0001f5a8 \u05e9\u05dc\u05d5\u05dd",
                                       "description": "line one\nline\ttwo",
                                       "category": "other"})
    assert response.status_code == 201
    assert response.json()["title"] == "Caf\u00e9 \U0001f5a8 \u05e9\u05dc\u05d5\u05dd"
    assert response.json()["description"] == "line one\nline\ttwo"


BAD_BODIES: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "", {"title": 123, "category": "other"}),
    ("POST", "", {"title": "x", "category": "food"}),
    ("POST", "", {"title": "x", "category": "other", "priority": "urgent"}),
    ("POST", "", {"title": "x", "category": "other", "status": "closed"}),
    ("POST", "", {"title": "x", "category": "other", "number": 7}),
    ("POST", "", {"title": "   ", "category": "other"}),
    ("POST", "", {"title": "x" * 201, "category": "other"}),
    ("POST", "", {"title": "x", "category": "other", "description": "d" * 20_001}),
    ("POST", "", {"title": "x", "category": "other", "device_id": "not-a-uuid"}),
    ("POST", "", {"category": "other"}),
    ("POST", "", []),
    ("PATCH", "/{id}", {}),
    ("PATCH", "/{id}", {"title": None}),
    ("PATCH", "/{id}", {"status": "closed"}),
    ("POST", "/{id}/transition", {"to": "archived"}),
    ("POST", "/{id}/transition", {"to": "resolved", "reason": "x"}),
    ("POST", "/{id}/comments", {"body": ""}),
    ("POST", "/{id}/comments", {"body": "x", "internal": "yes"}),
    ("POST", "/{id}/time", {"minutes": "30"}),
    ("POST", "/{id}/time", {"minutes": 0}),
    ("POST", "/{id}/time", {"minutes": 24 * 60 + 1}),
    ("POST", "/{id}/time", {"minutes": 1.5}),
    ("POST", "/{id}/assign", {"assignee_id": 42}),
    ("POST", "/{id}/assign", {}),
]


@pytest.mark.parametrize(("method", "path", "body"), BAD_BODIES)
async def test_it_refuses_wrong_types_and_unknown_fields(
    app: FastAPI, client: httpx.AsyncClient, method: str, path: str, body: Any
) -> None:
    org = await make_org(app)
    admin = await make_user(app, org, Role.ADMIN, enrol_totp=False)
    ticket_id = await make_ticket(app, admin, category="other")
    before = await snapshot(app)

    url = "/api/v1/tickets" + path.replace("{id}", ticket_id.hex)
    response = await client.request(method, url, headers=admin.headers, json=body)

    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_failed"
    assert await snapshot(app) == before


async def test_it_refuses_malformed_json(app: FastAPI, client: httpx.AsyncClient) -> None:
    _tech, user, ticket_id = await _people(app)
    before = await snapshot(app)
    for url in ("/api/v1/tickets", f"/api/v1/tickets/{ticket_id}/comments", "/api/v1/devices"):
        response = await client.post(url, headers={**user.headers,
                                                   "content-type": "application/json"},
                                     content=b'{"title": "unterminated')
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "malformed_json"
    assert await snapshot(app) == before


async def test_it_refuses_an_oversized_body(app: FastAPI, client: httpx.AsyncClient) -> None:
    _tech, user, ticket_id = await _people(app)
    before = await snapshot(app)
    huge = "x" * (2 * 1024 * 1024)
    for url, body in (("/api/v1/tickets", {"title": "x", "category": "other", "description": huge}),
                      (f"/api/v1/tickets/{ticket_id}/comments", {"body": huge})):
        response = await client.post(url, headers=user.headers, json=body)
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "payload_too_large"
    assert await snapshot(app) == before


async def test_it_answers_unknown_ids_clearly(app: FastAPI, client: httpx.AsyncClient) -> None:
    tech, user, _ticket = await _people(app)
    before = await snapshot(app)
    missing = uuid.uuid4()

    ticket = await client.get(f"/api/v1/tickets/{missing}", headers=tech.headers)
    device = await client.get(f"/api/v1/devices/{missing}", headers=tech.headers)
    garbled = await client.get("/api/v1/tickets/1%20OR%201=1", headers=tech.headers)
    linked = await client.post("/api/v1/tickets", headers=user.headers,
                               json={"title": "x", "category": "other", "device_id": str(missing)})
    assignee = await client.post(f"/api/v1/tickets/{_ticket}/assign", headers=tech.headers,
                                 json={"assignee_id": str(missing)})

    assert (ticket.status_code, ticket.json()["error"]["code"]) == (404, "ticket_not_found")
    assert (device.status_code, device.json()["error"]["code"]) == (404, "device_not_found")
    assert (garbled.status_code, garbled.json()["error"]["code"]) == (422, "validation_failed")
    assert (linked.status_code, linked.json()["error"]["code"]) == (404, "device_not_found")
    assert assignee.status_code == 403  # a plain technician may not assign at all
    assert (await snapshot(app))["tickets"] == before["tickets"]
