"""Bad input on the identity routes: a clear error every time, and nothing written."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from auxilio.policy.roles import Role
from auxilio.server.identity.models import Organisation
from auxilio.server.settings import Settings
from tests.factories import PASSWORD, Person, make_org, make_user
from tests.server.identity.helpers import LOGIN, error_code, load_user, row_counts

USERS = "/api/v1/users"


@pytest.fixture
async def admin(app: FastAPI) -> Person:
    return await make_user(app, await make_org(app), Role.ADMIN)


def _user(**overrides: Any) -> dict[str, Any]:
    return {"email": f"u{uuid.uuid4().hex[:8]}@example.test", "display_name": "Grace Hopper",
            "role": "technician", "password": PASSWORD, **overrides}


@pytest.mark.parametrize(
    "body",
    [b"{", b'{"email": "a@example.test", "password": }', b"\xff\xfe", b'{"email": "a\x01"}',
     b"[1, 2", b"nul"],
)
async def test_it_answers_malformed_json_with_malformed_json(
    app: FastAPI, client: httpx.AsyncClient, body: bytes
) -> None:
    before = await row_counts(app)

    response = await client.post(LOGIN, content=body, headers={"content-type": "application/json"})

    assert response.status_code == 422, response.text
    assert error_code(response) == "malformed_json"
    assert await row_counts(app) == before


async def test_it_answers_malformed_json_on_an_authenticated_route(
    app: FastAPI, client: httpx.AsyncClient, admin: Person
) -> None:
    before = await row_counts(app)

    response = await client.post(USERS, content=b'{"email": ', headers={
        **admin.headers, "content-type": "application/json"})

    assert response.status_code == 422
    assert error_code(response) == "malformed_json"
    assert await row_counts(app) == before


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"email": 5, "password": PASSWORD}, "email"),
        ({"email": "a@example.test", "password": ["x"]}, "password"),
        ({"email": "a@example.test", "password": PASSWORD, "totp_code": 123456}, "totp_code"),
        ({"email": "a@example.test"}, "password"),
        ({"email": "a@example.test", "password": PASSWORD, "is_admin": True}, "is_admin"),
        ({"email": "a@example.test", "password": ""}, "password"),
        ({"email": "a@example.test", "password": "x" * 1025}, "password"),
        ({"email": "a" * 250 + "@example.test", "password": PASSWORD}, "email"),
    ],
)
async def test_it_refuses_wrong_types_and_unknown_fields_on_login(
    app: FastAPI, client: httpx.AsyncClient, body: dict[str, Any], loc: str
) -> None:
    before = await row_counts(app)

    response = await client.post(LOGIN, json=body)

    assert response.status_code == 422
    assert error_code(response) == "validation_failed"
    assert [p["loc"][-1] for p in response.json()["error"]["details"]["problems"]] == [loc]
    assert await row_counts(app) == before


async def test_it_refuses_a_json_array_for_a_body(app: FastAPI, client: httpx.AsyncClient) -> None:
    response = await client.post(LOGIN, json=[{"email": "a@example.test", "password": PASSWORD}])

    assert response.status_code == 422
    assert error_code(response) == "validation_failed"


@pytest.mark.parametrize(
    "overrides",
    [
        {"role": "root"},
        {"role": 1},
        {"skills": "printers"},
        {"skills": ["x" * 65]},
        {"skills": ["ok"] * 51},
        {"working_hours": ["09:00-17:00"]},
        {"working_hours": {"mon": "09:00-17:00"}},
        {"display_name": 42},
        {"display_name": ""},
        {"display_name": "   "},
        {"display_name": "x" * 201},
        {"is_superuser": True},
        {"organisation_id": str(uuid.uuid4())},
    ],
)
async def test_it_refuses_wrong_types_and_unknown_fields_on_user_creation(
    app: FastAPI, client: httpx.AsyncClient, admin: Person, overrides: dict[str, Any]
) -> None:
    before = await row_counts(app)

    response = await client.post(USERS, headers=admin.headers, json=_user(**overrides))

    assert response.status_code == 422, response.text
    assert error_code(response) == "validation_failed"
    assert response.json()["error"]["details"]["problems"]
    assert await row_counts(app) == before


@pytest.mark.parametrize(
    "name",
    [
        "Bob\x07", "Bob\x00", "Bob\nSmith", "Bob\tSmith", "\x1b[31mRed", "Bob\x7f", "Bob\x85",
        "\u202eevil.exe", "a\u202ab", "a\u2066b\u2069", "admin\u202dx",
    ],
)
async def test_it_refuses_control_and_bidi_characters_in_a_display_name(
    app: FastAPI, client: httpx.AsyncClient, admin: Person, name: str
) -> None:
    before = await row_counts(app)

    created = await client.post(USERS, headers=admin.headers, json=_user(display_name=name))
    renamed = await client.patch(f"{USERS}/{admin.user.id}", headers=admin.headers,
                                 json={"display_name": name})

    for response in (created, renamed):
        assert response.status_code == 422, response.text
        assert error_code(response) == "validation_failed"
        assert response.json()["error"]["details"]["problems"][0]["loc"][-1] == "display_name"
    assert await row_counts(app) == before
    assert (await load_user(app, admin.user.id)).display_name == admin.user.display_name


@pytest.mark.parametrize(
    "name", ["'; DROP TABLE users; --", "Robert'); DROP TABLE students;--", "x' OR '1'='1",
             "José Ñúñez", "李小龍", "<script>alert(1)</script>", "100% \\ _ %"],
)
async def test_it_stores_sql_like_and_non_ascii_names_verbatim(
    app: FastAPI, client: httpx.AsyncClient, admin: Person, name: str
) -> None:
    created = await client.post(USERS, headers=admin.headers, json=_user(display_name=name))

    assert created.status_code == 201, created.text
    assert created.json()["display_name"] == name
    fetched = await client.get(f"{USERS}/{created.json()['id']}", headers=admin.headers)
    assert fetched.json()["display_name"] == name
    assert (await load_user(app, uuid.UUID(created.json()["id"]))).display_name == name
    listed = await client.get(USERS, headers=admin.headers)
    assert len(listed.json()) == 2


async def test_it_normalises_a_display_name_to_nfc(
    app: FastAPI, client: httpx.AsyncClient, admin: Person
) -> None:
    created = await client.post(USERS, headers=admin.headers, json=_user(display_name="Jose\u0301"))

    assert created.status_code == 201, created.text
    assert created.json()["display_name"] == "Jos\u00e9"


@pytest.mark.parametrize(
    ("email", "status", "code"),
    [
        ("'; DROP TABLE users; --", 401, "invalid_credentials"),
        ("a@example.test' OR '1'='1", 401, "invalid_credentials"),
        ("%", 401, "invalid_credentials"),
        ("a\x00@example.test", 422, "validation_failed"),
        ("a\x1b@example.test", 422, "validation_failed"),
        ("\u202e@example.test", 422, "validation_failed"),
    ],
)
async def test_it_answers_odd_login_emails_with_a_clear_error(
    app: FastAPI, client: httpx.AsyncClient, admin: Person, email: str, status: int, code: str
) -> None:
    response = await client.post(LOGIN, json={"email": email, "password": PASSWORD})

    assert response.status_code == status, response.text
    assert error_code(response) == code
    assert (await client.get("/api/v1/me", headers=admin.headers)).status_code == 200


async def test_it_refuses_an_oversized_body_with_a_content_length(
    app: FastAPI, client: httpx.AsyncClient, settings: Settings
) -> None:
    before = await row_counts(app)
    padding = "x" * settings.max_body_bytes
    body = {"email": "a@example.test", "password": PASSWORD, "totp_code": padding}

    response = await client.post(LOGIN, json=body)

    assert response.status_code == 413
    assert error_code(response) == "payload_too_large"
    assert response.headers["x-request-id"]
    assert await row_counts(app) == before


async def test_it_refuses_an_oversized_chunked_body(
    app: FastAPI, client: httpx.AsyncClient, admin: Person, settings: Settings
) -> None:
    before = await row_counts(app)
    chunk = b" " * 65536

    async def stream() -> AsyncIterator[bytes]:
        yield b'{"email": "big@example.test", "display_name": "Big", "role": "technician", '
        yield b'"password": "correct horse battery staple"'
        for _ in range(settings.max_body_bytes // len(chunk) + 2):
            yield chunk
        yield b"}"

    response = await client.post(USERS, content=stream(), headers={
        **admin.headers, "content-type": "application/json"})

    assert response.status_code == 413, response.text
    assert error_code(response) == "payload_too_large"
    assert await row_counts(app) == before


@pytest.mark.parametrize("length", ["-1", "abc", "1e9", "99999999999999999999"])
async def test_it_refuses_a_bad_content_length(
    client: httpx.AsyncClient, length: str
) -> None:
    response = await client.post(LOGIN, content=b"{}", headers={
        "content-type": "application/json", "content-length": length})

    assert response.status_code == 413
    assert error_code(response) == "payload_too_large"


async def test_it_accepts_a_chunked_body_under_the_limit(
    app: FastAPI, client: httpx.AsyncClient, admin: Person
) -> None:
    async def stream() -> AsyncIterator[bytes]:
        yield b'{"email": "small@example.test", "display_name": "Small", '
        yield b'"role": "technician", "password": "correct horse battery staple"}'

    response = await client.post(USERS, content=stream(), headers={
        **admin.headers, "content-type": "application/json"})

    assert response.status_code == 201, response.text


@pytest.mark.parametrize("path", ["", "/profile"])
async def test_it_refuses_unknown_fields_on_updates(
    app: FastAPI, client: httpx.AsyncClient, admin: Person, path: str
) -> None:
    tech = await make_user(app, await make_org(app), Role.TECHNICIAN)
    org = await _org_of(app, admin)
    assert org is not None
    own = await make_user(app, org, Role.TECHNICIAN)
    before = await row_counts(app)
    method = "PUT" if path else "PATCH"

    for target in (own.user.id, tech.user.id):
        response = await client.request(method, f"{USERS}/{target}{path}", headers=admin.headers,
                                        json={"password_hash": "x", "email": "new@example.test"})
        assert response.status_code == 422, response.text
        assert error_code(response) == "validation_failed"
    assert await row_counts(app) == before


async def _org_of(app: FastAPI, person: Person) -> Organisation | None:
    async with app.state.sessionmaker() as db:
        return await db.get(Organisation, person.user.organisation_id)
