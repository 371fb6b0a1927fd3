"""Devices: end users register and see their own; staff see the organisation's; no leaks."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from auxilio.policy.roles import Role
from auxilio.server.audit.models import AuditEvent
from tests.factories import make_device, make_org, make_technician, make_user, snapshot


async def test_it_registers_a_device_to_its_owner(app: FastAPI, client: httpx.AsyncClient) -> None:
    org = await make_org(app)
    user = await make_user(app, org)

    response = await client.post("/api/v1/devices", headers=user.headers,
                                 json={"name": "Reception PC", "platform": "windows",
                                       "device_group": "front-desk"})

    assert response.status_code == 201, response.text
    device = response.json()
    assert device["owner_id"] == str(user.user.id)
    assert (device["platform"], device["device_group"]) == ("windows", "front-desk")
    assert device["created_at"].endswith(("Z", "+00:00"))
    async with app.state.sessionmaker() as db:
        latest = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)
        event = (await db.execute(latest)).scalar_one()
    assert event.action == "device:device:registered"
    assert event.target_id == device["id"].replace("-", "")


async def test_it_shows_end_users_only_their_own_devices(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    alice, bob = await make_user(app, org), await make_user(app, org)
    tech = await make_technician(app, org)
    alices = await make_device(app, alice, name="Alice laptop")
    bobs = await make_device(app, bob, name="Bob desktop")

    mine = (await client.get("/api/v1/devices", headers=alice.headers)).json()
    staff = (await client.get("/api/v1/devices", headers=tech.headers)).json()
    by_owner = (await client.get("/api/v1/devices", params={"owner_id": str(bob.user.id)},
                                 headers=tech.headers)).json()
    peek = await client.get(f"/api/v1/devices/{bobs}", headers=alice.headers)

    assert [d["id"] for d in mine["items"]] == [str(alices)]
    assert staff["total"] == 2
    assert [d["id"] for d in by_owner["items"]] == [str(bobs)]
    assert (peek.status_code, peek.json()["error"]["code"]) == (404, "device_not_found")
    assert (await client.get(f"/api/v1/devices/{bobs}", headers=tech.headers)).status_code == 200


async def test_it_answers_404_for_another_organisations_device(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    home, away = await make_org(app), await make_org(app)
    owner = await make_user(app, home)
    device_id = await make_device(app, owner)
    admin = await make_user(app, away, Role.ADMIN, enrol_totp=False)

    response = await client.get(f"/api/v1/devices/{device_id}", headers=admin.headers)

    assert (response.status_code, response.json()["error"]["code"]) == (404, "device_not_found")
    assert (await client.get("/api/v1/devices", headers=admin.headers)).json()["total"] == 0


async def test_it_lets_only_end_users_register_devices(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    tech = await make_technician(app, org)
    before = await snapshot(app)

    response = await client.post("/api/v1/devices", headers=tech.headers,
                                 json={"name": "x", "platform": "linux"})

    assert response.status_code == 403
    assert response.json()["error"]["details"] == {"permission": "device:register_own"}
    assert (await snapshot(app))["devices"] == before["devices"]


async def test_it_refuses_bad_device_bodies(app: FastAPI, client: httpx.AsyncClient) -> None:
    org = await make_org(app)
    user = await make_user(app, org)
    before = await snapshot(app)
    for body in ({"name": "x", "platform": "amiga"}, {"name": "x"},
                 {"name": "x", "platform": "linux", "owner_id": str(user.user.id)},
                 {"name": "x", "platform": "linux", "device_group": "g" * 65},
                 {"name": 5, "platform": "linux"}):
        response = await client.post("/api/v1/devices", headers=user.headers, json=body)
        assert response.status_code == 422, body
        assert response.json()["error"]["code"] == "validation_failed"
    assert await snapshot(app) == before


async def test_it_pages_the_device_list(app: FastAPI, client: httpx.AsyncClient) -> None:
    org = await make_org(app)
    user = await make_user(app, org)
    for n in range(3):
        await make_device(app, user, name=f"Device {n}")
    page = (await client.get("/api/v1/devices", params={"limit": 2, "offset": 2},
                             headers=user.headers)).json()
    assert (page["total"], len(page["items"]), page["limit"], page["offset"]) == (3, 1, 2, 2)
    too_big = await client.get("/api/v1/devices", params={"limit": 10_000}, headers=user.headers)
    assert too_big.status_code == 422
