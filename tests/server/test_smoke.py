from __future__ import annotations

import httpx
from fastapi import FastAPI

from auxilio.policy.roles import Role
from tests.factories import make_org, make_user


async def test_health_and_readiness_answer(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ready"}


async def test_me_returns_the_caller(app: FastAPI, client: httpx.AsyncClient) -> None:
    org = await make_org(app)
    admin = await make_user(app, org, Role.ADMIN)
    response = await client.get("/api/v1/me", headers=admin.headers)
    assert response.status_code == 200, response.text
    assert response.json()["role"] == "admin"
    assert response.headers["x-request-id"]
