"""Login through HTTP: password, TOTP, replay, recovery codes, enrolment-only tokens."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from auxilio.policy.roles import Role
from auxilio.server.audit.actions import AuditAction
from auxilio.server.identity import auth
from auxilio.server.identity import secrets as sec
from tests.factories import PASSWORD, make_org, make_user
from tests.server.identity.helpers import (
    audit_count,
    audit_details,
    bearer,
    current_step,
    error_code,
    fresh_code,
    load_user,
    login,
    secret_of,
    throttle,
    wrong_code,
)

ME = "/api/v1/me"


async def _enrol_over_http(client: httpx.AsyncClient, email: str) -> tuple[str, list[str]]:
    """Log in with the password, enrol and confirm TOTP; the secret and the recovery codes."""
    first = await login(client, email)
    assert first.status_code == 200, first.text
    token = first.json()["token"]
    enrol = await client.post("/api/v1/auth/totp/enrol", headers=bearer(token))
    assert enrol.status_code == 200, enrol.text
    secret = secret_of(enrol.json()["provisioning_uri"])
    code = sec.totp_code_at(secret, current_step())
    confirm = await client.post("/api/v1/auth/totp/confirm", headers=bearer(token),
                                json={"code": code})
    assert confirm.status_code == 200, confirm.text
    return secret, confirm.json()["recovery_codes"]


async def test_it_asks_an_enrolled_staff_member_for_a_totp_code(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    tech = await make_user(app, await make_org(app), Role.TECHNICIAN)

    response = await login(client, tech.user.email)

    assert response.status_code == 401
    assert error_code(response) == "mfa_required"
    assert response.headers["www-authenticate"] == "Bearer"
    # The first leg of a two-step login is not a failure.
    account = await throttle(app, auth.email_throttle_key(tech.user.email))
    assert account is not None and account.failures == 0
    assert await audit_count(app, AuditAction.LOGIN_FAILED) == 0
    assert await audit_count(app, AuditAction.TOTP_FAILED) == 0


async def test_it_logs_in_with_a_correct_totp_code(app: FastAPI, client: httpx.AsyncClient) -> None:
    tech = await make_user(app, await make_org(app), Role.TECHNICIAN)
    assert tech.totp_secret is not None

    code = await fresh_code(app, tech.user.id, tech.totp_secret)
    response = await login(client, tech.user.email, totp_code=code)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["mfa_enrolment_required"] is False
    assert body["user"]["id"] == str(tech.user.id)
    me = await client.get(ME, headers=bearer(body["token"]))
    assert me.status_code == 200, me.text
    assert await audit_count(app, AuditAction.LOGIN_SUCCEEDED, target_id=tech.user.id) == 1


async def test_it_rejects_a_replayed_totp_code(app: FastAPI, client: httpx.AsyncClient) -> None:
    tech = await make_user(app, await make_org(app), Role.TECHNICIAN)
    assert tech.totp_secret is not None
    code = await fresh_code(app, tech.user.id, tech.totp_secret)
    assert (await login(client, tech.user.email, totp_code=code)).status_code == 200

    replay = await login(client, tech.user.email, totp_code=code)

    assert replay.status_code == 401
    assert error_code(replay) == "invalid_totp"
    assert await audit_count(app, AuditAction.TOTP_FAILED, target_id=tech.user.id) == 1


async def test_it_rejects_a_wrong_totp_code(app: FastAPI, client: httpx.AsyncClient) -> None:
    tech = await make_user(app, await make_org(app), Role.TECHNICIAN)
    assert tech.totp_secret is not None

    response = await login(client, tech.user.email, totp_code=wrong_code(tech.totp_secret))

    assert response.status_code == 401
    assert error_code(response) == "invalid_totp"
    assert await audit_count(app, AuditAction.TOTP_FAILED, target_id=tech.user.id) == 1
    assert await audit_count(app, AuditAction.LOGIN_SUCCEEDED) == 0
    # A wrong second factor counts towards the lockout like a wrong password.
    account = await throttle(app, auth.email_throttle_key(tech.user.email))
    assert account is not None and account.failures == 1


async def test_it_rejects_a_non_ascii_digit_totp_code_as_wrong(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    tech = await make_user(app, await make_org(app), Role.TECHNICIAN)

    response = await login(client, tech.user.email, totp_code="¹²³⁴⁵⁶")

    assert response.status_code == 401, response.text
    assert error_code(response) == "invalid_totp"


async def test_it_accepts_a_recovery_code_once(app: FastAPI, client: httpx.AsyncClient) -> None:
    person = await make_user(app, await make_org(app), Role.TECHNICIAN, enrol_totp=False)
    _, codes = await _enrol_over_http(client, person.user.email)

    first = await login(client, person.user.email, recovery_code=codes[3].upper())
    again = await login(client, person.user.email, recovery_code=codes[3])

    assert first.status_code == 200, first.text
    assert again.status_code == 401
    assert error_code(again) == "invalid_totp"
    assert await audit_count(app, AuditAction.RECOVERY_CODE_USED, target_id=person.user.id) == 1
    assert await audit_count(app, AuditAction.TOTP_FAILED, target_id=person.user.id) == 1
    # The other nine are still good.
    assert (await login(client, person.user.email, recovery_code=codes[4])).status_code == 200


async def test_it_gives_the_same_answer_for_an_unknown_email_and_a_wrong_password(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    user = await make_user(app, await make_org(app), Role.END_USER)

    unknown = await login(client, "nobody@example.test")
    wrong = await login(client, user.user.email, "not the password at all")

    assert unknown.status_code == wrong.status_code == 401
    assert error_code(unknown) == "invalid_credentials"
    assert unknown.json() == wrong.json()
    assert unknown.headers["www-authenticate"] == wrong.headers["www-authenticate"]
    details = await audit_count(app, AuditAction.LOGIN_FAILED)
    assert details == 2


async def test_an_address_with_accounts_in_two_organisations_logs_in_with_the_organisation(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    first_org, second_org = await make_org(app), await make_org(app)
    first = await make_user(app, first_org, Role.END_USER, email="shared@example.test")
    second = await make_user(app, second_org, Role.END_USER, email="shared@example.test")
    unknown = await login(client, "nobody@example.test")

    # Without the organisation the address names nobody: the same answer as an unknown one.
    ambiguous = await login(client, "shared@example.test")
    assert ambiguous.status_code == 401
    assert ambiguous.json() == unknown.json()
    assert "give the organisation" in ambiguous.json()["error"]["message"]

    for org, person in ((first_org, first), (second_org, second)):
        response = await login(client, "shared@example.test", organisation=org.slug)
        assert response.status_code == 200, response.text
        assert response.json()["user"]["id"] == str(person.user.id)
    elsewhere = await login(client, first.user.email, organisation="no-such-org")
    assert elsewhere.json() == unknown.json()
    reasons = [d["reason"] for d in await audit_details(app, AuditAction.LOGIN_FAILED)]
    assert reasons == ["unknown_email", "ambiguous_email", "unknown_email"]


async def test_the_organisation_is_optional_while_the_address_is_unique(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    person = await make_user(app, org, Role.END_USER)
    assert (await login(client, person.user.email)).status_code == 200
    assert (await login(client, person.user.email, organisation=org.slug)).status_code == 200
    other = await make_org(app)
    wrong_org = await login(client, person.user.email, organisation=other.slug)
    assert wrong_org.status_code == 401
    assert error_code(wrong_org) == "invalid_credentials"


async def test_it_gives_staff_without_totp_an_enrolment_only_token(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    person = await make_user(app, await make_org(app), Role.SUPERVISOR, enrol_totp=False)

    response = await login(client, person.user.email)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["mfa_enrolment_required"] is True
    token = body["token"]
    for method, path in [("GET", ME), ("GET", "/api/v1/users"), ("GET", "/api/v1/me/tokens"),
                         ("POST", "/api/v1/auth/logout")]:
        refused = await client.request(method, path, headers=bearer(token))
        assert refused.status_code == 403, (method, path, refused.text)
        assert error_code(refused) == "mfa_enrolment_required"


async def test_it_enrols_totp_with_an_enrolment_only_token(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    person = await make_user(app, await make_org(app), Role.TECHNICIAN, enrol_totp=False)

    secret, codes = await _enrol_over_http(client, person.user.email)

    assert len(codes) == sec.RECOVERY_CODE_COUNT == 10
    assert len(set(codes)) == 10
    assert (await load_user(app, person.user.id)).mfa_enrolled
    assert await audit_count(app, AuditAction.TOTP_ENROLLED, target_id=person.user.id) == 1
    # From now on the password alone is not enough, and a fresh code is.
    assert error_code(await login(client, person.user.email)) == "mfa_required"
    code = await fresh_code(app, person.user.id, secret)
    full = await login(client, person.user.email, totp_code=code)
    assert full.status_code == 200, full.text
    assert full.json()["mfa_enrolment_required"] is False
    assert (await client.get(ME, headers=bearer(full.json()["token"]))).status_code == 200


async def test_it_refuses_to_confirm_enrolment_with_a_wrong_code(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    person = await make_user(app, await make_org(app), Role.TECHNICIAN, enrol_totp=False)
    token = (await login(client, person.user.email)).json()["token"]
    enrol = await client.post("/api/v1/auth/totp/enrol", headers=bearer(token))
    secret = secret_of(enrol.json()["provisioning_uri"])

    response = await client.post("/api/v1/auth/totp/confirm", headers=bearer(token),
                                 json={"code": wrong_code(secret)})

    assert response.status_code == 401
    assert error_code(response) == "invalid_totp"
    assert not (await load_user(app, person.user.id)).mfa_enrolled
    assert await audit_count(app, AuditAction.TOTP_FAILED, target_id=person.user.id) == 1


async def test_it_logs_an_end_user_in_with_the_password_alone(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    person = await make_user(app, await make_org(app), Role.END_USER)

    response = await login(client, person.user.email.upper(), PASSWORD)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["mfa_enrolment_required"] is False
    assert body["recovery_codes"] == []
    assert (await client.get(ME, headers=bearer(body["token"]))).json()["role"] == "end_user"


async def test_it_refuses_a_deactivated_user_like_a_wrong_password(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    admin = await make_user(app, org, Role.ADMIN)
    person = await make_user(app, org, Role.END_USER)
    off = await client.patch(f"/api/v1/users/{person.user.id}", headers=admin.headers,
                             json={"is_active": False})
    assert off.status_code == 200, off.text

    response = await login(client, person.user.email)

    assert response.status_code == 401
    assert error_code(response) == "invalid_credentials"
    # The token it had before is dead too.
    assert (await client.get(ME, headers=person.headers)).status_code == 401
