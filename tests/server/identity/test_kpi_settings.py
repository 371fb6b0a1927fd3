"""The organisation's KPI settings (costs, SLA targets) and a staff member's team and cost."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from auxilio.policy.roles import Role
from auxilio.server.audit.models import AuditEvent
from auxilio.server.identity.models import Organisation, User
from tests.factories import make_org, make_technician, make_user

URL = "/api/v1/admin/kpi-settings"
SETTINGS = {
    "cost_per_hour_by_role": {"technician": 4500, "senior_technician": 6000},
    "cost_per_session_cents": 150,
    "sla": {"high": {"first_response_seconds": 3600, "resolution_seconds": 86400}},
}


async def events(app: FastAPI, action: str) -> list[dict]:  # type: ignore[type-arg]
    async with app.state.sessionmaker() as db:
        rows = await db.execute(
            select(AuditEvent.details).where(AuditEvent.action == action).order_by(AuditEvent.seq)
        )
        return [details for (details,) in rows]


async def test_an_admin_puts_the_settings_and_reads_them_back_audited(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    admin = await make_user(app, org, Role.ADMIN)
    empty = await client.get(URL, headers=admin.headers)
    assert empty.status_code == 200
    assert empty.json() == {"cost_per_hour_by_role": {}, "cost_per_session_cents": 0, "sla": {}}
    put = await client.put(URL, json=SETTINGS, headers=admin.headers)
    assert put.status_code == 200, put.text
    got = (await client.get(URL, headers=admin.headers)).json()
    assert got["cost_per_hour_by_role"] == SETTINGS["cost_per_hour_by_role"]
    assert got["sla"]["high"] == {"first_response_seconds": 3600, "resolution_seconds": 86400}
    async with app.state.sessionmaker() as db:
        row = await db.get(Organisation, org.id)
        assert row is not None and row.kpi_settings["cost_per_session_cents"] == 150
    [changed] = await events(app, "identity:organisation:kpi_settings_changed")
    assert changed["before"]["cost_per_session_cents"] == 0
    assert changed["after"]["cost_per_session_cents"] == 150


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"cost_per_session_cents": -1}, "cost_per_session_cents"),
        ({"cost_per_session_cents": "12"}, "cost_per_session_cents"),
        ({"cost_per_hour_by_role": {"technician": 1.5}}, "cost_per_hour_by_role"),
        ({"sla": {"high": {"resolution_seconds": 0}}}, "sla"),
        ({"sla": {"high": {"respond_in": 60}}}, "sla"),
        ({"currency": "EUR"}, "currency"),
    ],
)
async def test_bad_settings_are_refused_and_nothing_changes(
    app: FastAPI, client: httpx.AsyncClient, body: dict, where: str  # type: ignore[type-arg]
) -> None:
    org = await make_org(app)
    admin = await make_user(app, org, Role.ADMIN, enrol_totp=False)
    response = await client.put(URL, json=body, headers=admin.headers)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    assert any(where in problem["loc"] for problem in error["details"]["problems"])
    assert (await client.get(URL, headers=admin.headers)).json()["cost_per_session_cents"] == 0
    assert await events(app, "identity:organisation:kpi_settings_changed") == []


async def test_only_an_admin_changes_the_settings_and_supervisors_read_them(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    supervisor = await make_user(app, org, Role.SUPERVISOR, enrol_totp=False)
    technician = await make_technician(app, org)
    refused = await client.put(URL, json=SETTINGS, headers=supervisor.headers)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert (await client.get(URL, headers=supervisor.headers)).status_code == 200
    assert (await client.get(URL, headers=technician.headers)).status_code == 403


async def test_a_staff_profile_takes_a_team_and_an_hourly_cost(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    supervisor = await make_user(app, org, Role.SUPERVISOR, enrol_totp=False)
    technician = await make_technician(app, org)
    url = f"/api/v1/users/{technician.user.id}/profile"
    put = await client.put(
        url, json={"team": "Field", "hourly_cost_cents": 5200}, headers=supervisor.headers
    )
    assert put.status_code == 200, put.text
    assert put.json()["team"] == "Field" and put.json()["hourly_cost_cents"] == 5200
    [updated] = await events(app, "identity:staff_profile:updated")
    assert updated["changed"] == ["hourly_cost_cents", "team"]
    assert updated["before"] == {"hourly_cost_cents": None, "team": None}
    cleared = await client.put(url, json={"team": None}, headers=supervisor.headers)
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["team"] is None
    for bad in ({"hourly_cost_cents": -5}, {"hourly_cost_cents": "50"}, {"team": "a\nb"},
                {"team": "x" * 65}):  # fmt: skip
        refused = await client.put(url, json=bad, headers=supervisor.headers)
        assert refused.status_code == 422, bad
        assert refused.json()["error"]["code"] == "validation_failed"
    async with app.state.sessionmaker() as db:
        row = await db.get(User, technician.user.id)
        assert row is not None and row.team is None and row.hourly_cost_cents == 5200
