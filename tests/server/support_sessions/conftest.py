"""A real server on 127.0.0.1 (uvicorn in a thread, its own event loop), people, tickets and
policies arranged through the services of a second app on the same database.

The arranging app runs under another ``node_id``, so its scheduler never touches the sessions
of the server under test.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from sqlalchemy import select

from auxilio.policy.roles import Role
from auxilio.server.app import create_app
from auxilio.server.audit.models import AuditEvent
from auxilio.server.identity import auth
from auxilio.server.identity.models import Organisation
from auxilio.server.settings import Settings, load_settings
from auxilio.server.support_sessions.models import SupportSession
from tests.factories import (
    Person,
    activate_policy,
    make_org,
    make_technician,
    make_ticket,
    make_user,
)
from tests.server.support_sessions.peers import close_all

NODE = "node-under-test"

TEST_POLICY = """
version: 1
name: Test policy
consent:
  required: true
  timeout: {consent_timeout}
  on_timeout: deny
capabilities:
  chat: {{roles: [technician, senior_technician, supervisor]}}
  terminal: {{roles: [technician, senior_technician, supervisor], shells: [bash]}}
sessions:
  max_duration: {max_duration}
  warn_before: {warn_before}
  idle_timeout: {idle_timeout}
  extension: {{max: 30m, max_count: 2, reason_required: true, approver_role: senior_technician}}
staff:
  mfa_required: true
{extra}
"""


def policy_text(
    *, max_duration: str = "1h", warn_before: str = "10m", idle_timeout: str = "15m",
    consent_timeout: str = "30s", extra: str = "",
) -> str:
    return TEST_POLICY.format(max_duration=max_duration, warn_before=warn_before,
                              idle_timeout=idle_timeout, consent_timeout=consent_timeout,
                              extra=extra)


@pytest.fixture
def settings(tmp_path: Any, database_url: str) -> Settings:
    # The arranging app: another node, a scheduler that would never find anything of ours.
    return load_settings(data_dir=tmp_path / "data", database_url=database_url,
                         audit_checkpoint_every=50, audit_checkpoint_seconds=3600,
                         node_id="arranger", support_session_tick_seconds=3600,
                         # A socket the test waits to see closed is not held for a summary.
                         report_wait_seconds=2)


class LiveServer:
    """uvicorn serving ``app`` on a free loopback port from a thread of its own."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
        self.sock.close()


@dataclass
class Recorder:
    """Every WebSocket frame the server received, as bytes."""

    frames: list[bytes] = field(default_factory=list)

    def wrap(self, app: Any) -> Any:
        async def recording(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "websocket":
                await app(scope, receive, send)
                return

            async def recorded_receive() -> Any:
                message = await receive()
                if message.get("text") is not None:
                    self.frames.append(message["text"].encode())
                if message.get("bytes") is not None:
                    self.frames.append(message["bytes"])
                return message

            await app(scope, recorded_receive, send)

        return recording


ServerFactory = Callable[..., LiveServer]


@pytest.fixture
def server_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={
        "node_id": NODE, "support_session_tick_seconds": 0.1, "agent_grace_seconds": 1.0,
    })


@pytest.fixture
def start_server(
    server_settings: Settings, signing_key: Ed25519PrivateKey
) -> Iterator[ServerFactory]:
    started: list[LiveServer] = []

    def start(recorder: Recorder | None = None, **overrides: Any) -> LiveServer:
        app = create_app(server_settings.model_copy(update=overrides), signing_key=signing_key)
        live = LiveServer(recorder.wrap(app) if recorder else app)
        live.app = app  # type: ignore[attr-defined]
        live.start()
        started.append(live)
        return live

    yield start
    for live in started:
        if live.thread.is_alive():
            live.stop()


@pytest.fixture(autouse=True)
async def _close_peers(start_server: ServerFactory) -> AsyncIterator[None]:
    # Depends on start_server so that it is torn down first: a peer that stopped reading on
    # purpose would otherwise hold the server's shutdown until its close timeout.
    yield
    await close_all()


@pytest.fixture
async def http(start_server: ServerFactory) -> AsyncIterator[httpx.AsyncClient]:
    live = start_server()
    # A fail-safe, not a measure: a whole CI run on two cores once took over 20 s to answer.
    async with httpx.AsyncClient(base_url=live.url, timeout=60) as client:
        client.live = live  # type: ignore[attr-defined]
        yield client


@dataclass
class World:
    app: FastAPI
    org: Organisation
    technician: Person
    requester: Person
    ticket_id: uuid.UUID

    async def use_policy(self, text: str) -> None:
        await activate_policy(self.app, self.org.id, text)

    async def actions(self, support_session_id: str | uuid.UUID) -> list[str]:
        async with self.app.state.sessionmaker() as db:
            rows = await db.execute(
                select(AuditEvent.action).where(AuditEvent.target_id == str(
                    uuid.UUID(str(support_session_id))).replace("-", ""))
                .order_by(AuditEvent.seq))
            return [r for (r,) in rows]

    async def events(self, action: str) -> list[dict[str, Any]]:
        async with self.app.state.sessionmaker() as db:
            rows = await db.execute(select(AuditEvent.details).where(AuditEvent.action == action)
                                    .order_by(AuditEvent.seq))
            return [r for (r,) in rows]

    async def row(self, support_session_id: str | uuid.UUID) -> SupportSession:
        async with self.app.state.sessionmaker() as db:
            found = await db.get(SupportSession, uuid.UUID(str(support_session_id)))
            assert found is not None
            return found

    async def wait_for_state(
        self, support_session_id: str | uuid.UUID, *states: str, within: float = 15.0
    ) -> SupportSession:
        deadline = time.monotonic() + within
        while True:
            found = await self.row(support_session_id)
            if found.state in states:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"state stayed {found.state}, wanted {states}")
            await _sleep(0.05)


async def _sleep(seconds: float) -> None:
    await asyncio.sleep(seconds)


async def mfa_token(app: FastAPI, person: Person, *, mfa: bool = True) -> str:
    """A login token as if TOTP had been verified (argon2 enrolment is slow and not tested here)."""
    async with app.state.sessionmaker() as db, db.begin():
        user = await db.get(type(person.user), person.user.id)
        assert user is not None
        token, _ = await auth.issue_token(db, user=user, kind="login", name="test",
                                          ttl=timedelta(hours=1), mfa_verified=mfa,
                                          actor=auth.actor_for(user))
    return token


@pytest.fixture
async def world(app: FastAPI) -> World:
    org = await make_org(app)
    # The hardware skill: the ticket (hardware) is routed to this technician, whose it then is.
    technician = await make_technician(app, org, skills=["hardware"])
    technician.token = await mfa_token(app, technician)
    requester = await make_user(app, org, Role.END_USER, enrol_totp=False)
    ticket_id = await make_ticket(app, requester)
    found = World(app=app, org=org, technician=technician, requester=requester,
                  ticket_id=ticket_id)
    await found.use_policy(policy_text())
    return found


Request = Callable[..., Awaitable[httpx.Response]]
