"""Users and staff profiles through HTTP: creation, checks, organisation boundaries, trainings."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from auxilio.policy.roles import Role
from auxilio.server.audit.actions import AuditAction
from tests.factories import PASSWORD, make_org, make_user
from tests.server.identity.helpers import audit_count, error_code, load_user, login, row_counts

USERS = "/api/v1/users"


def _technician(**overrides: Any) -> dict[str, Any]:
    return {"email": "ada@example.test", "display_name": "Ada Lovelace", "role": "technician",
            "password": PASSWORD, **overrides}


async def test_an_admin_creates_a_technician_with_a_staff_profile(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    admin = await make_user(app, await make_org(app), Role.ADMIN)
    hours = {"mon": ["09:00-13:00", "14:00-18:00"], "fri": ["09:00-15:00"]}
    body = _technician(email="Ada@Example.TEST", skills=["Printers", " vpn ", "printers"],
                       timezone="Europe/Madrid", languages=["es", "en"], working_hours=hours)

    response = await client.post(USERS, headers=admin.headers, json=body)

    assert response.status_code == 201, response.text
    created = response.json()
    assert created["email"] == "ada@example.test"
    assert created["role"] == "technician"
    assert created["skills"] == ["printers", "vpn"]
    assert created["timezone"] == "Europe/Madrid"
    assert created["working_hours"] == body["working_hours"]
    assert created["mfa_enrolled"] is False
    assert "password" not in response.text and PASSWORD not in response.text
    stored = await load_user(app, uuid.UUID(created["id"]))
    assert stored.organisation_id == admin.user.organisation_id
    assert stored.password_hash.startswith("$argon2id$")
    assert await audit_count(app, AuditAction.USER_CREATED, target_id=stored.id) == 1
    fetched = await client.get(f"{USERS}/{created['id']}", headers=admin.headers)
    assert fetched.json() == {k: v for k, v in created.items() if k != "totp_provisioning_uri"}
    # The new technician logs in and is asked to enrol TOTP first.
    first = await login(client, "ada@example.test")
    assert first.json()["mfa_enrolment_required"] is True


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"timezone": "../../etc/passwd"}, "timezone"),
        ({"timezone": ""}, "timezone"),
        ({"working_hours": {"mon": ["17:00-09:00"]}}, "working_hours"),
        ({"working_hours": {"mon": ["9-5"]}}, "working_hours"),
        ({"working_hours": {"funday": ["09:00-17:00"]}}, "working_hours"),
        ({"working_hours": {"mon": ["09:00-24:30"]}}, "working_hours"),
        ({"working_hours": {"mon": ["09:00-09:00"]}}, "working_hours"),
        ({"email": "not-an-email"}, "email"),
        ({"email": "two@at@example.test"}, "email"),
        ({"email": "a b@example.test"}, "email"),
        ({"password": "short"}, "password"),
        ({"password": "x" * 11}, "password"),
    ],
)
async def test_it_refuses_an_invalid_user_and_writes_nothing(
    app: FastAPI, client: httpx.AsyncClient, overrides: dict[str, Any], field: str
) -> None:
    admin = await make_user(app, await make_org(app), Role.ADMIN)
    before = await row_counts(app)

    response = await client.post(USERS, headers=admin.headers, json=_technician(**overrides))

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    if error["code"] == "validation_failed" and "problems" in error["details"]:
        assert [p["loc"][-1] for p in error["details"]["problems"]] == [field]
    else:
        assert error == {"code": "validation_failed", "message": error["message"],
                         "details": {"field": field}}
        assert error["message"]
    assert await row_counts(app) == before


async def test_it_accepts_working_hours_until_midnight(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    admin = await make_user(app, await make_org(app), Role.ADMIN)

    response = await client.post(USERS, headers=admin.headers, json=_technician(
        working_hours={"sat": ["18:00-24:00"], "sun": []}))

    assert response.status_code == 201, response.text


async def test_it_refuses_a_duplicate_email_whatever_its_case(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    admin = await make_user(app, org, Role.ADMIN)
    existing = await make_user(app, org, Role.END_USER)
    before = await row_counts(app)

    response = await client.post(USERS, headers=admin.headers,
                                 json=_technician(email=existing.user.email.upper()))

    assert response.status_code == 409
    assert error_code(response) == "already_exists"
    assert response.json()["error"]["details"] == {"field": "email"}
    assert await row_counts(app) == before


async def test_another_organisations_user_does_not_exist(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    admin = await make_user(app, await make_org(app), Role.ADMIN)
    stranger = await make_user(app, await make_org(app), Role.TECHNICIAN)
    target = f"{USERS}/{stranger.user.id}"
    before = await row_counts(app)

    answers = [
        await client.get(target, headers=admin.headers),
        await client.patch(target, headers=admin.headers, json={"display_name": "Mine now"}),
        await client.put(f"{target}/profile", headers=admin.headers, json={"skills": ["x"]}),
        await client.get(f"{target}/trainings", headers=admin.headers),
        await client.post(f"{target}/trainings", headers=admin.headers, json={
            "training_id": "gdpr", "title": "GDPR", "completed_at": "2030-01-01T00:00:00Z"}),
    ]

    assert [r.status_code for r in answers] == [404] * 5
    assert {error_code(r) for r in answers} == {"not_found"}
    # Exactly the answer for an id that exists nowhere.
    unknown = await client.get(f"{USERS}/{uuid.uuid4()}", headers=admin.headers)
    assert unknown.json()["error"]["message"] == answers[0].json()["error"]["message"]
    assert await row_counts(app) == before
    listed = (await client.get(USERS, headers=admin.headers)).json()
    assert str(stranger.user.id) not in {u["id"] for u in listed}


@pytest.mark.parametrize("change", [{"role": "end_user"}, {"role": "admin"}, {"is_active": False}])
async def test_an_admin_cannot_change_their_own_role_or_deactivate_themselves(
    app: FastAPI, client: httpx.AsyncClient, change: dict[str, Any]
) -> None:
    admin = await make_user(app, await make_org(app), Role.ADMIN)

    response = await client.patch(f"{USERS}/{admin.user.id}", headers=admin.headers, json=change)

    assert response.status_code == 403
    assert error_code(response) == "forbidden"
    stored = await load_user(app, admin.user.id)
    assert (stored.role, stored.is_active) == ("admin", True)
    assert await audit_count(app, AuditAction.USER_UPDATED) == 0


async def test_an_admin_changes_another_users_role_and_it_is_audited(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    admin = await make_user(app, org, Role.ADMIN)
    tech = await make_user(app, org, Role.TECHNICIAN)

    response = await client.patch(f"{USERS}/{tech.user.id}", headers=admin.headers,
                                  json={"role": "senior_technician"})

    assert response.status_code == 200, response.text
    assert response.json()["role"] == "senior_technician"
    assert await audit_count(app, AuditAction.USER_UPDATED, target_id=tech.user.id) == 1


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("", {"display_name": None}),
        ("", {"role": None}),
        ("", {"is_active": None}),
        ("/profile", {"timezone": None}),
        ("/profile", {"skills": None}),
        ("/profile", {"languages": None}),
        ("/profile", {"working_hours": None}),
    ],
)
async def test_it_refuses_an_explicit_null_on_update(
    app: FastAPI, client: httpx.AsyncClient, path: str, body: dict[str, Any]
) -> None:
    org = await make_org(app)
    admin = await make_user(app, org, Role.ADMIN)
    tech = await make_user(app, org, Role.TECHNICIAN)
    before = await row_counts(app)
    method = "PUT" if path else "PATCH"

    response = await client.request(method, f"{USERS}/{tech.user.id}{path}",
                                    headers=admin.headers, json=body)

    assert response.status_code == 422, response.text
    assert error_code(response) == "validation_failed"
    assert await row_counts(app) == before


async def test_a_supervisor_updates_a_staff_profile(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    supervisor = await make_user(app, org, Role.SUPERVISOR)
    tech = await make_user(app, org, Role.TECHNICIAN)

    response = await client.put(f"{USERS}/{tech.user.id}/profile", headers=supervisor.headers,
                                json={"skills": ["Linux"], "timezone": "America/Bogota",
                                      "working_hours": {"tue": ["08:00-16:00"]}})

    assert response.status_code == 200, response.text
    assert (response.json()["skills"], response.json()["timezone"]) == (["linux"], "America/Bogota")
    assert await audit_count(app, AuditAction.STAFF_PROFILE_UPDATED, target_id=tech.user.id) == 1


async def test_an_end_user_has_no_staff_profile(app: FastAPI, client: httpx.AsyncClient) -> None:
    org = await make_org(app)
    admin = await make_user(app, org, Role.ADMIN)
    person = await make_user(app, org, Role.END_USER)
    before = await row_counts(app)

    response = await client.put(f"{USERS}/{person.user.id}/profile", headers=admin.headers,
                                json={"skills": ["x"]})

    assert response.status_code == 409
    assert error_code(response) == "not_staff"
    assert await row_counts(app) == before


async def test_trainings_are_recorded_and_listed(app: FastAPI, client: httpx.AsyncClient) -> None:
    org = await make_org(app)
    supervisor = await make_user(app, org, Role.SUPERVISOR)
    tech = await make_user(app, org, Role.TECHNICIAN)
    target = f"{USERS}/{tech.user.id}/trainings"

    later = await client.post(target, headers=supervisor.headers, json={
        "training_id": "remote-ethics", "title": "Remote support ethics",
        "completed_at": "2031-03-01T10:00:00+01:00", "expires_at": "2032-03-01T10:00:00+01:00"})
    earlier = await client.post(target, headers=supervisor.headers, json={
        "training_id": "gdpr", "title": "GDPR basics", "completed_at": "2030-01-01T00:00:00Z"})

    assert later.status_code == earlier.status_code == 201, (later.text, earlier.text)
    listed = await client.get(target, headers=tech.headers)
    assert listed.status_code == 200, listed.text
    assert [t["training_id"] for t in listed.json()] == ["gdpr", "remote-ethics"]
    assert listed.json()[1]["expires_at"] is not None
    assert listed.json()[0]["expires_at"] is None
    assert await audit_count(app, AuditAction.TRAINING_RECORDED, target_id=tech.user.id) == 2


@pytest.mark.parametrize(
    ("completed_at", "expires_at"),
    [
        ("2031-03-01T10:00:00Z", "2031-02-28T10:00:00Z"),
        ("2031-03-01T10:00:00Z", "2031-03-01T10:00:00Z"),
        ("2031-03-01T10:00:00+00:00", "2031-03-01T11:30:00+02:00"),
    ],
)
async def test_a_training_cannot_expire_before_it_was_completed(
    app: FastAPI, client: httpx.AsyncClient, completed_at: str, expires_at: str
) -> None:
    org = await make_org(app)
    supervisor = await make_user(app, org, Role.SUPERVISOR)
    tech = await make_user(app, org, Role.TECHNICIAN)
    before = await row_counts(app)

    response = await client.post(f"{USERS}/{tech.user.id}/trainings", headers=supervisor.headers,
                                 json={"training_id": "gdpr", "title": "GDPR",
                                       "completed_at": completed_at, "expires_at": expires_at})

    assert response.status_code == 422
    assert error_code(response) == "validation_failed"
    assert response.json()["error"]["details"] == {"field": "expires_at"}
    assert await row_counts(app) == before


async def test_a_training_needs_a_time_zone(app: FastAPI, client: httpx.AsyncClient) -> None:
    org = await make_org(app)
    supervisor = await make_user(app, org, Role.SUPERVISOR)
    tech = await make_user(app, org, Role.TECHNICIAN)
    before = await row_counts(app)

    response = await client.post(f"{USERS}/{tech.user.id}/trainings", headers=supervisor.headers,
                                 json={"training_id": "gdpr", "title": "GDPR",
                                       "completed_at": "2031-03-01T10:00:00"})

    assert response.status_code == 422
    assert error_code(response) == "validation_failed"
    assert await row_counts(app) == before


async def test_an_empty_profile_update_is_refused_and_writes_nothing(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    supervisor = await make_user(app, org, Role.SUPERVISOR)
    tech = await make_user(app, org, Role.TECHNICIAN)
    before = await audit_total(app)
    response = await client.put(f"/api/v1/users/{tech.user.id}/profile", json={},
                                headers=supervisor.headers)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_failed"
    assert await audit_total(app) == before


async def audit_total(app: FastAPI) -> int:
    from sqlalchemy import func, select

    from auxilio.server.audit.models import AuditEvent

    async with app.state.sessionmaker() as db:
        return int((await db.execute(select(func.count()).select_from(AuditEvent))).scalar_one())


async def test_an_email_used_in_another_organisation_says_nothing_about_it(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    # issue 7 §8: a 409 here told one organisation's admin who has an account in another.
    admin = await make_user(app, await make_org(app), Role.ADMIN)
    elsewhere = await make_user(app, await make_org(app), Role.END_USER)

    response = await client.post(USERS, headers=admin.headers,
                                 json=_technician(email=elsewhere.user.email))

    assert response.status_code == 201, response.text
    assert response.json()["organisation_id"] == str(admin.user.organisation_id)
    # Both accounts stand, each in its own organisation.
    assert (await load_user(app, elsewhere.user.id)).email == elsewhere.user.email
