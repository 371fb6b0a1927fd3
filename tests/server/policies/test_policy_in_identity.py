"""The foundation's 2FA setting and the review date, answered by the active policy."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from auxilio.policy import load_template
from auxilio.policy.roles import Role
from tests.factories import PASSWORD, make_org, make_user

COMPANY = load_template("software-company")


async def activate(client: httpx.AsyncClient, headers: dict[str, str], document: str) -> None:
    created = await client.post("/api/v1/policies", json={"document": document}, headers=headers)
    assert created.status_code == 201, created.text
    number = created.json()["number"]
    assert (
        await client.post(f"/api/v1/policies/{number}/activate", headers=headers)
    ).status_code == 200


async def test_an_active_policy_without_mfa_lets_staff_log_in_with_a_password(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    admin = await make_user(app, org, Role.ADMIN)
    tech = await make_user(app, org, Role.TECHNICIAN, enrol_totp=False)
    body = {"email": tech.user.email, "password": PASSWORD}
    # The organisation's own default: staff need 2FA, so only an enrolment token is given.
    assert (await client.post("/api/v1/auth/login", json=body)).json()["mfa_enrolment_required"]
    no_mfa = COMPANY.replace("mfa_required: true", "mfa_required: false")
    assert no_mfa != COMPANY
    await activate(client, admin.headers, no_mfa)
    response = await client.post("/api/v1/auth/login", json=body)
    assert response.status_code == 200
    assert response.json()["mfa_enrolment_required"] is False


async def test_admins_are_warned_when_the_policy_is_past_its_review_date(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    admin = await make_user(app, org, Role.ADMIN, enrol_totp=False)
    end_user = await make_user(app, org, Role.END_USER)
    overdue = COMPANY.replace("review_by: 2027-11-30", "review_by: 2020-01-31")
    assert "review_by: 2020-01-31" in overdue
    # The 2FA requirement would stop a password-only admin login; this test is about warnings.
    await activate(
        client, admin.headers, overdue.replace("mfa_required: true", "mfa_required: false")
    )
    warned = await client.post(
        "/api/v1/auth/login", json={"email": admin.user.email, "password": PASSWORD}
    )
    assert warned.status_code == 200, warned.text
    assert warned.json()["warnings"][0].startswith("policy_review_overdue")
    quiet = await client.post(
        "/api/v1/auth/login", json={"email": end_user.user.email, "password": PASSWORD}
    )
    assert quiet.json()["warnings"] == []
    active = (await client.get("/api/v1/policies/active", headers=admin.headers)).json()
    assert active["review_overdue"] is True
