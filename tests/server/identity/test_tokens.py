"""Login and API tokens: scopes, expiry, revocation, logout, ownership."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
from fastapi import FastAPI

from auxilio.policy.roles import ROLE_PERMISSIONS, Permission, Role
from auxilio.server.audit.actions import AuditAction
from auxilio.server.db.base import utcnow
from auxilio.server.identity import auth
from auxilio.server.identity.models import User
from tests.factories import make_org, make_user
from tests.server.identity.helpers import (
    audit_count,
    audit_details,
    bearer,
    error_code,
    row_counts,
)

ME = "/api/v1/me"
TOKENS = "/api/v1/me/tokens"


async def _create(
    client: httpx.AsyncClient, headers: dict[str, str], **body: object
) -> httpx.Response:
    return await client.post(TOKENS, headers=headers, json={"name": "ci", **body})


async def test_a_token_with_narrow_scopes_is_refused_elsewhere(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    admin = await make_user(app, await make_org(app), Role.ADMIN)
    created = await _create(client, admin.headers, scopes=["user:read_self"])
    assert created.status_code == 201, created.text
    assert created.json()["scopes"] == ["user:read_self"]
    token = created.json()["token"]

    allowed = await client.get(ME, headers=bearer(token))
    refused = await client.get("/api/v1/users", headers=bearer(token))

    assert allowed.status_code == 200, allowed.text
    assert refused.status_code == 403
    assert error_code(refused) == "forbidden"
    assert refused.json()["error"]["details"] == {"permission": "user:read"}
    details = await audit_details(app, AuditAction.ACCESS_FORBIDDEN)
    assert [d["rule"] for d in details] == ["token.scopes"]


async def test_it_refuses_scopes_wider_than_the_role(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    user = await make_user(app, await make_org(app), Role.END_USER)
    before = await row_counts(app)

    response = await _create(client, user.headers, scopes=["user:read_self", "user:manage"])

    assert response.status_code == 422
    assert error_code(response) == "validation_failed"
    assert response.json()["error"]["details"]["not_allowed"] == ["user:manage"]
    assert await row_counts(app) == before


async def test_it_refuses_an_unknown_scope(app: FastAPI, client: httpx.AsyncClient) -> None:
    admin = await make_user(app, await make_org(app), Role.ADMIN)
    before = await row_counts(app)

    response = await _create(client, admin.headers, scopes=["everything"])

    assert response.status_code == 422
    assert error_code(response) == "validation_failed"
    assert await row_counts(app) == before


async def test_a_scoped_token_cannot_mint_a_wider_token(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    admin = await make_user(app, await make_org(app), Role.ADMIN)
    narrow = (await _create(client, admin.headers, scopes=["token:manage_own"])).json()["token"]

    unscoped = await _create(client, bearer(narrow))
    wider = await _create(client, bearer(narrow), scopes=["token:manage_own", "user:manage"])

    # Without scopes, the new token inherits the asking token's, not the whole role.
    assert unscoped.status_code == 201, unscoped.text
    assert unscoped.json()["scopes"] == ["token:manage_own"]
    listed = await client.get("/api/v1/users", headers=bearer(unscoped.json()["token"]))
    assert listed.status_code == 403
    assert wider.status_code == 422
    assert error_code(wider) == "validation_failed"
    assert wider.json()["error"]["details"]["not_allowed"] == ["user:manage"]


async def test_it_rejects_an_expired_token(app: FastAPI, client: httpx.AsyncClient) -> None:
    person = await make_user(app, await make_org(app), Role.ADMIN)
    async with app.state.sessionmaker() as db, db.begin():
        user = await db.get(User, person.user.id)
        assert user is not None
        token, _ = await auth.issue_token(
            db, user=user, kind="api", name="old", ttl=timedelta(hours=1),
            actor=auth.actor_for(user), now=utcnow() - timedelta(hours=2),
        )

    response = await client.get(ME, headers=bearer(token))

    assert response.status_code == 401
    assert error_code(response) == "token_invalid"
    assert response.headers["www-authenticate"] == "Bearer"
    details = await audit_details(app, AuditAction.TOKEN_REJECTED)
    assert [(d["reason"], d["prefix"]) for d in details] == [("expired", token[:10])]


async def test_it_rejects_an_unknown_token_and_audits_it(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    response = await client.get(ME, headers=bearer("aux_not-a-real-token"))

    assert response.status_code == 401
    assert error_code(response) == "token_invalid"
    assert response.headers["www-authenticate"] == "Bearer"
    details = await audit_details(app, AuditAction.TOKEN_REJECTED)
    assert [d["reason"] for d in details] == ["unknown"]
    assert details[0]["path"] == ME


async def test_it_asks_for_a_token_when_none_is_given(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Bearer "}):
        response = await client.get(ME, headers=headers)
        assert response.status_code == 401, headers
        assert error_code(response) == "unauthenticated"
        assert response.headers["www-authenticate"] == "Bearer"


async def test_it_rejects_a_revoked_token(app: FastAPI, client: httpx.AsyncClient) -> None:
    person = await make_user(app, await make_org(app), Role.TECHNICIAN)
    created = (await _create(client, person.headers)).json()
    assert (await client.get(ME, headers=bearer(created["token"]))).status_code == 200

    revoked = await client.delete(f"{TOKENS}/{created['id']}", headers=person.headers)

    assert revoked.status_code == 204
    response = await client.get(ME, headers=bearer(created["token"]))
    assert response.status_code == 401
    assert error_code(response) == "token_invalid"
    assert await audit_count(app, AuditAction.TOKEN_REVOKED) == 1
    listed = (await client.get(TOKENS, headers=person.headers)).json()
    assert [t["revoked_at"] is not None for t in listed] == [True]
    assert "token" not in listed[0]


async def test_logout_revokes_the_login_token(app: FastAPI, client: httpx.AsyncClient) -> None:
    person = await make_user(app, await make_org(app), Role.END_USER)

    response = await client.post("/api/v1/auth/logout", headers=person.headers)

    assert response.status_code == 204
    after = await client.get(ME, headers=person.headers)
    assert after.status_code == 401
    assert error_code(after) == "token_invalid"
    rejected = await audit_details(app, AuditAction.TOKEN_REJECTED)
    assert [d["reason"] for d in rejected] == ["revoked"]


async def test_it_cannot_revoke_a_token_of_another_user(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    owner = await make_user(app, org, Role.ADMIN)
    other = await make_user(app, org, Role.ADMIN)
    created = (await _create(client, owner.headers)).json()

    response = await client.delete(f"{TOKENS}/{created['id']}", headers=other.headers)

    assert response.status_code == 404
    assert error_code(response) == "not_found"
    assert (await client.get(ME, headers=bearer(created["token"]))).status_code == 200
    assert await audit_count(app, AuditAction.TOKEN_REVOKED) == 0


async def test_it_answers_404_for_an_unknown_token_id(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    person = await make_user(app, await make_org(app), Role.END_USER)

    response = await client.delete(f"{TOKENS}/{uuid.uuid4()}", headers=person.headers)

    assert response.status_code == 404


async def test_it_never_stores_or_lists_the_token_secret(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    person = await make_user(app, await make_org(app), Role.END_USER)
    created = (await _create(client, person.headers, ttl_days=7)).json()

    listed = (await client.get(TOKENS, headers=person.headers)).json()

    assert created["token"].startswith(created["prefix"])
    assert [t["id"] for t in listed] == [created["id"]]
    assert all(created["token"] not in str(v) for v in listed[0].values())
    # Asked for without scopes by a full login token: everything the role allows.
    assert created["scopes"] is None


async def test_it_refuses_a_token_lifetime_out_of_range(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    person = await make_user(app, await make_org(app), Role.END_USER)
    before = await row_counts(app)

    for ttl in (0, 367, -1):
        response = await _create(client, person.headers, ttl_days=ttl)
        assert response.status_code == 422, ttl
        assert error_code(response) == "validation_failed"
    assert await row_counts(app) == before


async def test_a_permission_the_role_lacks_is_forbidden_and_audited(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    person = await make_user(app, await make_org(app), Role.END_USER)
    assert Permission.USER_READ not in ROLE_PERMISSIONS[Role.END_USER]

    response = await client.get("/api/v1/users", headers=person.headers)

    assert response.status_code == 403
    assert error_code(response) == "forbidden"
    [details] = await audit_details(app, AuditAction.ACCESS_FORBIDDEN)
    assert (details["permission"], details["method"], details["path"]) == (
        "user:read", "GET", "/api/v1/users")
    # Which rule decided is the engine's business; that one is named is the audit's.
    assert details["rule"]


async def test_an_api_token_cannot_start_totp_enrolment(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    person = await make_user(app, await make_org(app), Role.END_USER)
    created = await client.post("/api/v1/me/tokens", json={"name": "automation"},
                                headers=person.headers)
    api_token = {"Authorization": f"Bearer {created.json()['token']}"}
    response = await client.post("/api/v1/auth/totp/enrol", headers=api_token)
    assert response.status_code == 403
    async with app.state.sessionmaker() as db:
        user = await db.get(User, person.user.id)
        assert user is not None and user.totp_secret is None
