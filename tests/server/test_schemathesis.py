"""Schemathesis against the real server: every operation of /openapi.json, a few generated
requests each, sent anonymously and with an admin's token. Any 5xx fails.

The server is the real application under uvicorn (with ``auxilio serve``'s connection options)
on SQLite, and on PostgreSQL too where the suite has one (it refuses what SQLite takes: NUL in
text, integers past 32 bits), listening on 127.0.0.1 only. Generation is derandomised so that CI
runs the same requests every time; both backends together take about a minute on two cores.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, Phase, settings
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from auxilio.policy.roles import Role
from auxilio.server.app import create_app, prepare
from auxilio.server.db.models import Base
from auxilio.server.serving import connection_options
from auxilio.server.settings import Settings, load_settings
from tests.factories import make_org, make_user

pytestmark = pytest.mark.schemathesis

# Enough for the generator to reach a 2^63-sized id on an unbounded integer (checked by hand
# against the bug this suite found), few enough to stay well under two minutes.
EXAMPLES_PER_OPERATION = 20
REQUEST_TIMEOUT = 30.0


def _spec() -> dict[str, Any]:
    # The schema comes from the application object itself; no server is needed to collect.
    app = create_app(
        Settings(data_dir=Path("schemathesis-unused")), signing_key=Ed25519PrivateKey.generate()
    )
    spec: dict[str, Any] = app.openapi()
    return spec


# The coverage phase (boundary values: the 2^63 ids came from there) stays on; its requests with
# methods an operation does not have only ever meet the router's 405.
CONFIG = schemathesis.Config.from_dict({"phases": {"coverage": {"unexpected-methods": []}}})
schema = schemathesis.openapi.from_dict(_spec(), config=CONFIG)

# Operations that end the caller's own credential: sent anonymously only, or every later
# request of the admin leg would be a 401 and test nothing.
ENDS_OWN_TOKEN = {("POST", "/api/v1/auth/logout")}


@dataclass(frozen=True)
class LiveServer:
    url: str
    admin_headers: dict[str, str]


async def _make_admin(settings: Settings, key: Ed25519PrivateKey) -> dict[str, str]:
    app = create_app(settings, signing_key=key)
    async with app.router.lifespan_context(app):
        admin = await make_user(app, await make_org(app, "schemathesis"), Role.ADMIN)
    return admin.headers


async def _empty_postgres(url: str) -> None:
    engine = create_async_engine(url)
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    await engine.dispose()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def live_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("schemathesis")
    if request.param == "sqlite":
        database_url = f"sqlite+aiosqlite:///{data / 'auxilio.db'}"
    else:
        database_url = request.getfixturevalue("postgres_migrated")
        asyncio.run(_empty_postgres(database_url))
    settings = load_settings(
        data_dir=data, database_url=database_url, audit_checkpoint_seconds=3600
    )
    key = prepare(settings).signing_key
    admin_headers = asyncio.run(_make_admin(settings, key))
    config = uvicorn.Config(
        create_app(settings, signing_key=key),
        host="127.0.0.1",
        port=0,
        log_config=None,
        ws="websockets-sansio",
        **connection_options(settings),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    pause = threading.Event()
    for _ in range(600):
        if server.started:
            break
        pause.wait(0.05)
    assert server.started, "uvicorn did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield LiveServer(url=f"http://127.0.0.1:{port}", admin_headers=admin_headers)
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.fixture(scope="module")
def http(live_server: LiveServer) -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.trust_env = False  # loopback only: no proxy from the environment
        yield session


def _no_server_error(response: schemathesis.Response, who: str) -> None:
    request = response.request
    assert response.status_code < 500, (
        f"{who}: {request.method} {request.url} -> {response.status_code}\n"
        f"body sent: {request.body!r}\n"
        f"answer: {response.text[:2000]}"
    )


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_no_operation_answers_with_a_server_error(
    case: schemathesis.Case, live_server: LiveServer, http: requests.Session
) -> None:
    anonymous = case.call(base_url=live_server.url, session=http, timeout=REQUEST_TIMEOUT)
    _no_server_error(anonymous, "anonymous")
    if (case.method.upper(), case.path) in ENDS_OWN_TOKEN:
        return
    admin = case.call(
        base_url=live_server.url,
        session=http,
        headers=live_server.admin_headers,
        timeout=REQUEST_TIMEOUT,
    )
    _no_server_error(admin, "admin")
