"""The role x route matrix: every /api/v1 route declares a permission, and every role gets
exactly the routes its permissions allow.

Routes are discovered from the running app, so routes added later by any domain are walked
without touching this file. A route without a declared permission fails the first test unless
it is listed below as public or as part of TOTP enrolment.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from auxilio.policy.roles import ROLE_PERMISSIONS, STAFF_ROLES, Permission, Role
from auxilio.server.app import create_app
from auxilio.server.context import Actor
from auxilio.server.identity import auth, service
from auxilio.server.identity.models import Organisation, User
from auxilio.server.settings import load_settings
from tests.factories import make_org, make_user

API = "/api/v1"
# Reachable without a token, each with its reason.
PUBLIC = frozenset({
    ("POST", f"{API}/auth/login"),  # how a token is obtained
    ("GET", f"{API}/server-key"),  # public key only; agents pin it before they hold a token
    ("POST", f"{API}/agents/enroll"),  # the enrolment token and the device key's proof are the
    # credentials (rate limited, refusals audited)
    ("POST", f"{API}/surveys/answer"),  # the server-signed single-use survey link is the
    ("POST", f"{API}/surveys/decline"),  # credential (docs/surveys.md)
})
# Reachable with any token, including a login token limited to TOTP enrolment.
ENROLMENT = frozenset({("POST", f"{API}/auth/totp/enrol"), ("POST", f"{API}/auth/totp/confirm")})
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    dependant: Dependant
    permissions: frozenset[Permission]

    @property
    def key(self) -> tuple[str, str]:
        return (self.method, self.path)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def _declared(dependant: Dependant) -> Iterator[Permission]:
    for sub in dependant.dependencies:
        permission = getattr(sub.call, "permission", None)
        if permission is not None:
            yield permission
        yield from _declared(sub)


def _route_contexts(routes: Sequence[BaseRoute]) -> Iterator[tuple[str, APIRoute, Dependant]]:
    """(full path, route, effective dependant) of every HTTP route, however deeply included."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before 0.165 flattened included routers into app.routes
        for route in routes:
            if isinstance(route, APIRoute):
                yield route.path, route, route.dependant
        return
    for context in iter_route_contexts(routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            # The effective path and dependant carry the include prefix and router dependencies.
            yield context.path, route, context.dependant


def api_endpoints(app: FastAPI) -> list[Endpoint]:
    endpoints = [
        Endpoint(method, path, dependant, frozenset(_declared(dependant)))
        for path, route, dependant in _route_contexts(app.routes)
        if path.startswith(f"{API}/")
        for method in sorted(route.methods)
    ]
    return sorted(endpoints, key=lambda e: e.key)


def _path_params(dependant: Dependant) -> Iterator[tuple[str, Any]]:
    for field in dependant.path_params:
        yield field.name, field.field_info.annotation
    for sub in dependant.dependencies:
        yield from _path_params(sub)


def fill(endpoint: Endpoint) -> str:
    """The path with every parameter replaced by a value of its type that matches nothing."""
    path = endpoint.path
    for name, annotation in _path_params(endpoint.dependant):
        value: object
        if annotation is int:
            value = 987654321
        elif annotation is uuid.UUID:
            value = uuid.uuid4()
        else:
            value = f"x{uuid.uuid4().hex[:12]}"
        path = path.replace(f"{{{name}}}", str(value)).replace(f"{{{name}:", "{")
    assert "{" not in path, f"{endpoint}: a path parameter was left unfilled"
    return path


async def call(
    client: httpx.AsyncClient, endpoint: Endpoint, headers: dict[str, str]
) -> httpx.Response:
    body = {"json": {}} if endpoint.method in UNSAFE else {}
    return await client.request(endpoint.method, fill(endpoint), headers=headers, **body)


def _code(response: httpx.Response) -> str | None:
    try:
        code: str = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return None
    return code


@pytest.fixture
def bare_app(tmp_path: Path) -> FastAPI:
    """The app as built, not started: enough to read its routes."""
    settings = load_settings(data_dir=tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path}/x.db")
    return create_app(settings, signing_key=Ed25519PrivateKey.generate())


@pytest.fixture
async def loose_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    # A crash answers 500 here rather than raising inside the test, so the walk can name it.
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000),
                                    raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def _fresh_token(app: FastAPI, user_id: uuid.UUID, *, scopes: list[str] | None = None) -> str:
    """A new login token per call: a route that revokes its caller's token (logout) must not
    spoil the rest of the walk."""
    async with app.state.sessionmaker() as db, db.begin():
        user = await db.get(User, user_id)
        assert user is not None
        token, _ = await auth.issue_token(
            db, user=user, kind="login", name="matrix", ttl=timedelta(minutes=10),
            mfa_verified=user.mfa_enrolled, scopes=scopes, actor=auth.actor_for(user),
        )
    return token


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_walk_finds_every_documented_route(bare_app: FastAPI) -> None:
    walked = {e.key for e in api_endpoints(bare_app)}
    documented = {
        (method.upper(), path)
        for path, operations in bare_app.openapi()["paths"].items()
        if path.startswith(f"{API}/")
        for method in operations
    }
    assert documented, "the OpenAPI document lists no /api/v1 route"
    assert documented <= walked, sorted(documented - walked)
    assert ("GET", f"{API}/users/{{user_id}}") in walked


def test_every_api_route_declares_a_permission(bare_app: FastAPI) -> None:
    undeclared = [str(e) for e in api_endpoints(bare_app)
                  if not e.permissions and e.key not in PUBLIC | ENROLMENT]
    assert undeclared == [], (
        "these routes declare no permission: add require(Permission.X), or list them in PUBLIC "
        f"or ENROLMENT with a reason: {undeclared}"
    )


def test_the_allow_lists_name_only_routes_that_exist_and_declare_nothing(bare_app: FastAPI) -> None:
    endpoints = {e.key: e for e in api_endpoints(bare_app)}
    for key in PUBLIC | ENROLMENT:
        assert key in endpoints, f"{key} is allow-listed but no longer exists"
        assert not endpoints[key].permissions, f"{key} declares a permission; drop it from the list"


async def test_each_role_gets_exactly_the_routes_its_permissions_allow(
    app: FastAPI, loose_client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    people = {role: await make_user(app, org, role) for role in Role}
    endpoints = [e for e in api_endpoints(app) if e.permissions]
    assert endpoints
    problems: list[str] = []

    for role, person in people.items():
        granted = ROLE_PERMISSIONS[role]
        for endpoint in endpoints:
            token = await _fresh_token(app, person.user.id)
            response = await call(loose_client, endpoint, _bearer(token))
            allowed = endpoint.permissions <= granted
            status, code = response.status_code, _code(response)
            if not allowed and (status, code) != (403, "forbidden"):
                problems.append(f"{role} {endpoint}: expected 403 forbidden, got {status} {code}")
            elif allowed and status in (401, 403):
                problems.append(f"{role} {endpoint}: allowed, yet got {status} {code}")
            elif status >= 500:
                problems.append(f"{role} {endpoint}: server error {status} for a {{}} body")

    assert problems == [], "\n".join(problems)


async def test_every_protected_route_refuses_a_caller_without_a_token(
    app: FastAPI, loose_client: httpx.AsyncClient
) -> None:
    problems = []
    for endpoint in api_endpoints(app):
        if endpoint.key in PUBLIC:
            continue
        response = await call(loose_client, endpoint, {})
        if (response.status_code, _code(response)) != (401, "unauthenticated"):
            problems.append(f"{endpoint}: {response.status_code} {_code(response)}")
        elif response.headers.get("www-authenticate") != "Bearer":
            problems.append(f"{endpoint}: no WWW-Authenticate: Bearer")
    assert problems == [], "\n".join(problems)


async def test_every_protected_route_refuses_an_unknown_token(
    app: FastAPI, loose_client: httpx.AsyncClient
) -> None:
    problems = []
    for endpoint in api_endpoints(app):
        if endpoint.key in PUBLIC:
            continue
        response = await call(loose_client, endpoint, _bearer("aux_forged"))
        if (response.status_code, _code(response)) != (401, "token_invalid"):
            problems.append(f"{endpoint}: {response.status_code} {_code(response)}")
    assert problems == [], "\n".join(problems)


async def test_an_enrolment_only_token_reaches_nothing_but_enrolment(
    app: FastAPI, loose_client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    async with app.state.sessionmaker() as db, db.begin():
        org_row = await db.get(Organisation, org.id)
        assert org_row is not None
        user = await service.create_user(
            db, organisation=org_row, email="new.tech@example.test", display_name="New tech",
            role=Role.TECHNICIAN, password="correct horse battery staple",
            actor=Actor.system(org.id),
        )
    assert Role.TECHNICIAN in STAFF_ROLES
    problems = []
    for endpoint in api_endpoints(app):
        if endpoint.key in PUBLIC:
            continue
        token = await _fresh_token(app, user.id, scopes=[auth.ENROLMENT_SCOPE])
        response = await call(loose_client, endpoint, _bearer(token))
        status, code = response.status_code, _code(response)
        if endpoint.key in ENROLMENT:
            if status in (401, 403) or status >= 500:
                problems.append(f"{endpoint}: enrolment refused with {status} {code}")
        elif (status, code) != (403, "mfa_enrolment_required"):
            problems.append(f"{endpoint}: expected 403 mfa_enrolment_required, got {status} {code}")
    assert problems == [], "\n".join(problems)
