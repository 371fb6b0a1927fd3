"""Who sees what: own tickets only for end users, nothing across organisations, no internal
notes for end users, and 404 rather than 403 wherever a 403 would confirm an id exists."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from auxilio.policy.roles import Role
from tests.factories import make_device, make_org, make_technician, make_ticket, make_user, snapshot


async def test_it_hides_internal_notes_from_the_requester(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    tech = await make_technician(app, org)
    user = await make_user(app, org)
    ticket_id = await make_ticket(app, user)
    url = f"/api/v1/tickets/{ticket_id}"
    for body, internal in (("Reply", False), ("Note to self", True)):
        response = await client.post(f"{url}/comments", headers=tech.headers,
                                     json={"body": body, "internal": internal})
        assert response.status_code == 201, response.text

    mine = (await client.get(f"{url}/comments", headers=user.headers)).json()
    staff = (await client.get(f"{url}/comments", headers=tech.headers)).json()
    listed = (await client.get("/api/v1/tickets", headers=user.headers)).json()["items"]

    assert [c["body"] for c in mine] == ["Reply"]
    assert [c["body"] for c in staff] == ["Reply", "Note to self"]
    assert (await client.get(url, headers=user.headers)).json()["comment_count"] == 1
    assert listed[0]["comment_count"] == 1
    assert (await client.get(url, headers=tech.headers)).json()["comment_count"] == 2


async def test_it_refuses_an_internal_note_from_an_end_user_and_records_the_attempt(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    user = await make_user(app, org)
    ticket_id = await make_ticket(app, user)
    before = await snapshot(app)

    response = await client.post(f"/api/v1/tickets/{ticket_id}/comments", headers=user.headers,
                                 json={"body": "sneaky", "internal": True})

    assert response.status_code == 403
    assert response.json()["error"]["details"] == {"permission": "ticket:comment_internal"}
    assert await snapshot(app) == {**before, "audit_events": before["audit_events"] + 1}


async def test_it_answers_404_for_another_users_ticket(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    alice, mallory = await make_user(app, org), await make_user(app, org)
    ticket_id = await make_ticket(app, alice)
    url = f"/api/v1/tickets/{ticket_id}"
    before = await snapshot(app)

    attempts = [
        await client.get(url, headers=mallory.headers),
        await client.get(f"{url}/comments", headers=mallory.headers),
        await client.post(f"{url}/comments", headers=mallory.headers, json={"body": "hi"}),
        await client.post(f"{url}/reopen", headers=mallory.headers),
        await client.post(f"{url}/close", headers=mallory.headers),
    ]

    assert [r.status_code for r in attempts] == [404] * 5
    assert {r.json()["error"]["code"] for r in attempts} == {"ticket_not_found"}
    listed = (await client.get("/api/v1/tickets", headers=mallory.headers)).json()
    assert listed == {"items": [], "total": 0, "limit": 50, "offset": 0}
    assert await snapshot(app) == before


async def test_it_answers_404_for_another_organisations_ticket(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    home, away = await make_org(app), await make_org(app)
    user = await make_user(app, home)
    ticket_id = await make_ticket(app, user)
    url = f"/api/v1/tickets/{ticket_id}"
    admin = await make_user(app, away, Role.ADMIN, enrol_totp=False)
    before = await snapshot(app)

    attempts = [
        await client.get(url, headers=admin.headers),
        await client.patch(url, headers=admin.headers, json={"priority": "low"}),
        await client.post(f"{url}/transition", headers=admin.headers, json={"to": "open"}),
        await client.post(f"{url}/assign", headers=admin.headers, json={"assignee_id": None}),
        await client.post(f"{url}/auto-assign", headers=admin.headers),
        await client.post(f"{url}/comments", headers=admin.headers, json={"body": "x"}),
        await client.post(f"{url}/time", headers=admin.headers, json={"minutes": 5}),
    ]

    assert [r.status_code for r in attempts] == [404] * 7
    assert {r.json()["error"]["code"] for r in attempts} == {"ticket_not_found"}
    assert (await client.get("/api/v1/tickets", headers=admin.headers)).json()["total"] == 0
    assert await snapshot(app) == before


async def test_it_keeps_end_users_to_their_own_requests(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    alice, bob = await make_user(app, org), await make_user(app, org)
    tech = await make_technician(app, org)
    before = await snapshot(app)

    for_bob = await client.post("/api/v1/tickets", headers=alice.headers,
                                json={"title": "x", "category": "other",
                                      "requester_id": str(bob.user.id)})
    for_tech = await client.post("/api/v1/tickets", headers=tech.headers,
                                 json={"title": "x", "category": "other",
                                       "requester_id": str(tech.user.id)})

    assert for_bob.status_code == 403
    assert for_tech.status_code == 201  # a technician's own ticket, like anyone else's
    assert (await snapshot(app))["tickets"] == before["tickets"] + 1


async def test_it_refuses_a_requester_who_is_not_an_end_user_of_the_organisation(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    home, away = await make_org(app), await make_org(app)
    tech, colleague = await make_technician(app, home), await make_technician(app, home)
    stranger = await make_user(app, away)
    before = await snapshot(app)

    for requester in (colleague, stranger):
        response = await client.post("/api/v1/tickets", headers=tech.headers,
                                     json={"title": "x", "category": "other",
                                           "requester_id": str(requester.user.id)})
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "invalid_requester"
    assert await snapshot(app) == before


async def test_it_links_only_the_requesters_own_device(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    alice, bob = await make_user(app, org), await make_user(app, org)
    tech = await make_technician(app, org)
    alices, bobs = await make_device(app, alice), await make_device(app, bob)
    body = {"title": "Wi-Fi drops", "category": "network"}
    before = await snapshot(app)

    others = await client.post("/api/v1/tickets", headers=alice.headers,
                               json={**body, "device_id": str(bobs)})
    staff_wrong = await client.post("/api/v1/tickets", headers=tech.headers,
                                    json={**body, "device_id": str(bobs),
                                          "requester_id": str(alice.user.id)})
    assert (others.status_code, others.json()["error"]["code"]) == (404, "device_not_found")
    assert (staff_wrong.status_code, staff_wrong.json()["error"]["code"]) == (
        422, "device_not_owned")
    assert await snapshot(app) == before

    own = await client.post("/api/v1/tickets", headers=alice.headers,
                            json={**body, "device_id": str(alices)})
    assert own.status_code == 201
    assert own.json()["device_id"] == str(alices)
    ticket_id = own.json()["id"]
    relinked = await client.patch(f"/api/v1/tickets/{ticket_id}", headers=tech.headers,
                                  json={"device_id": str(bobs)})
    assert relinked.json()["error"]["code"] == "device_not_owned"
