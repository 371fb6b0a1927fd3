"""Emergency mode benchmark: the emergency end of N live support sessions (issue 13, goal: 1,000
in <= 2 s), on SQLite and (when AUXILIO_BENCH_POSTGRES_URL is set) PostgreSQL.

The application is the real one, in process (``create_app`` with its lifespan: runtime, hub,
in-memory bus, scheduler). Each of the N sessions is a row in ``support_sessions`` (active for
five minutes, on this node, a ticket each) and has both peers attached to the relay hub as live
connections (an object with the ``Connection`` methods the hub calls, counting what it is
sent, since N real WebSockets would measure the kernel rather than the server). The
declaration is ``POST /api/v1/emergency`` through the ASGI app: the policy decision, the
emergency row, each session's end (state, audit event, the technician's time on the ticket) in
one transaction, then ``session.end`` to both peers of every session and the close of every
technician's connection; ``seconds`` is until the answer, when all of that is done. The devices'
signed reports follow in the background (``all_reports_sent_seconds``: until the last is sent).

References measured in the same run, on the same database, with the same N sessions:
  - ``one_by_one``: the same sessions ended by N calls of ``runtime.end`` (what a supervisor
    ending each one would cost: a transaction, an audit event and the announcement per session)
  - ``bare_update``: one ``UPDATE support_sessions SET state='ended' ...`` of the N rows (the
    floor: no audit, no ticket time, nobody told)

    .venv/bin/python bench/bench_emergency.py [--sessions 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from sqlalchemy import insert, text, update

GOAL_SECONDS = 2.0


@dataclass
class FakeConnection:
    """What the hub calls on a peer's connection; counts instead of writing to a socket."""

    texts: list[str] = field(default_factory=list)
    closed: int | None = None

    async def send_text(self, text: str) -> None:
        self.texts.append(text)

    async def send_bytes(self, data: bytes) -> None:  # never called here
        self.texts.append(f"<{len(data)} bytes>")

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = code


@dataclass
class World:
    app: Any
    client: httpx.AsyncClient
    org_id: uuid.UUID
    technician_id: uuid.UUID
    requester_id: uuid.UUID
    supervisor_headers: dict[str, str]


async def _world(app: Any, slug: str) -> World:
    from auxilio.policy.roles import Role
    from auxilio.server.context import Actor
    from auxilio.server.identity import auth, service

    async with app.state.sessionmaker() as db, db.begin():
        org = await service.create_organisation(db, slug=slug, name=slug, actor=Actor.system())
        people = {}
        for role in (Role.TECHNICIAN, Role.END_USER, Role.SUPERVISOR):
            people[role] = await service.create_user(
                db, organisation=org, email=f"{role}@{slug}.example", display_name=str(role),
                role=role, password="a long enough password", actor=Actor.system(org.id))
        token, _ = await auth.issue_token(
            db, user=people[Role.SUPERVISOR], kind="login", name="bench",
            ttl=timedelta(hours=1), actor=auth.actor_for(people[Role.SUPERVISOR]))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bench")
    return World(app, client, org.id, people[Role.TECHNICIAN].id, people[Role.END_USER].id,
                 {"Authorization": f"Bearer {token}"})


async def _live_sessions(world: World, count: int) -> dict[str, tuple[Any, Any]]:
    """N active sessions (a ticket each) in the database, both peers attached to the hub."""
    from auxilio.crypto.keys import encode_public_key
    from auxilio.server.relay.hub import Peer
    from auxilio.server.support_sessions.models import SupportSession
    from auxilio.server.tickets.models import Ticket

    now = datetime.now(UTC)
    settings = world.app.state.settings
    key = encode_public_key(X25519PrivateKey.generate().public_key())
    tickets, sessions = [], []
    async with world.app.state.sessionmaker() as db, db.begin():
        start = int((await db.execute(text("SELECT COALESCE(MAX(number), 0) FROM tickets")))
                    .scalar_one())
        for i in range(count):
            ticket_id, sid = uuid.uuid4(), uuid.uuid4()
            tickets.append({
                "id": ticket_id, "organisation_id": world.org_id, "number": start + i + 1,
                "title": f"Bench ticket {i}", "description": "", "category": "software",
                "priority": "normal", "status": "open", "requester_id": world.requester_id,
                "created_by_id": world.requester_id,
                "assignee_id": world.technician_id, "created_at": now, "updated_at": now,
            })  # fmt: skip
            sessions.append({
                "id": sid, "organisation_id": world.org_id, "ticket_id": ticket_id,
                "requester_id": world.requester_id, "ticket_ref": f"#{i}",
                "technician_id": world.technician_id, "mode": "attended", "state": "active",
                "requested_capabilities": ["chat"], "granted_capabilities": ["chat"],
                "capability_limits": {}, "max_duration_seconds": 3600,
                "warn_before_seconds": 600, "consent_timeout_seconds": 60,
                "consent_timeout_default": "refused", "recorded": False,
                "not_after": now + timedelta(minutes=55), "created_at": now,
                "offered_at": now - timedelta(minutes=5),
                "activated_at": now - timedelta(minutes=5), "node_id": settings.node_id,
                "technician_e2e_key": key, "device_public_key": encode_public_key(
                    Ed25519PrivateKey.generate().public_key()),
            })  # fmt: skip
        await db.execute(insert(Ticket), _ticket_rows(tickets))
        await db.execute(insert(SupportSession), sessions)
    hub = world.app.state.support_sessions.hub
    peers: dict[str, tuple[Any, Any]] = {}
    for row in sessions:
        sid = str(row["id"])
        agent, technician = FakeConnection(), FakeConnection()
        await hub.attach(sid, Peer.AGENT, agent)
        await hub.attach(sid, Peer.TECHNICIAN, technician)
        peers[sid] = (agent, technician)
    return peers


def _ticket_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Only the columns the tickets table has (its model decides; extra keys are dropped)."""
    from auxilio.server.tickets.models import Ticket

    columns = set(Ticket.__table__.columns.keys())
    return [{k: v for k, v in row.items() if k in columns} for row in rows]


def _told(peers: dict[str, tuple[Any, Any]]) -> dict[str, int]:
    ends = reports = closed = 0
    for agent, technician in peers.values():
        ends += sum('"session.end"' in t for t in agent.texts + technician.texts)
        reports += sum('"session.report"' in t for t in agent.texts)
        closed += technician.closed is not None
    return {"session_end_frames": ends, "agent_reports": reports, "technicians_closed": closed}


async def _emergency(app: Any, count: int) -> dict[str, Any]:
    world = await _world(app, "bench-emergency")
    peers = await _live_sessions(world, count)
    started = time.perf_counter()
    response = await world.client.post("/api/v1/emergency", headers=world.supervisor_headers,
                                       json={"reason": "bench: emergency end"})
    seconds = time.perf_counter() - started
    assert response.status_code == 201, response.text
    ended = len(response.json()["ended_support_session_ids"])
    assert ended == count, (ended, count)
    # Answered: every session ended in the database and both its peers sent session.end.
    ends = _told(peers)
    assert ends["session_end_frames"] == 2 * count, ends
    assert ends["technicians_closed"] == count, ends
    # The devices' signed reports follow in the background; measured until the last is sent.
    while _told(peers)["agent_reports"] < count:  # noqa: ASYNC110 -- polling fake sockets
        await asyncio.sleep(0.005)
    reports_seconds = time.perf_counter() - started
    await world.client.aclose()
    return {"seconds": round(seconds, 3), "sessions_ended": ended,
            "session_end_frames": ends["session_end_frames"],
            "technicians_closed": ends["technicians_closed"],
            "sessions_per_second": round(count / seconds),
            "all_reports_sent_seconds": round(reports_seconds, 3)}


async def _one_by_one(app: Any, count: int) -> dict[str, Any]:
    from auxilio.protocol.frames import EndReason, Party

    world = await _world(app, "bench-one-by-one")
    peers = await _live_sessions(world, count)
    runtime = app.state.support_sessions
    started = time.perf_counter()
    for sid in peers:
        await runtime.end(uuid.UUID(sid), ended_by=Party.SUPERVISOR,
                          reason=EndReason.SUPERVISOR_ENDED)
    seconds = time.perf_counter() - started
    told = _told(peers)
    assert told["session_end_frames"] == 2 * count, told
    await world.client.aclose()
    return {"seconds": round(seconds, 3), **told, "sessions_per_second": round(count / seconds)}


async def _bare_update(app: Any, count: int) -> dict[str, Any]:
    from auxilio.server.support_sessions.models import SupportSession

    world = await _world(app, "bench-bare")
    await _live_sessions(world, count)
    started = time.perf_counter()
    async with app.state.sessionmaker() as db, db.begin():
        done = await db.execute(
            update(SupportSession).where(SupportSession.organisation_id == world.org_id,
                                         SupportSession.state == "active")
            .values(state="ended", end_reason="emergency", ended_at=datetime.now(UTC)))
    seconds = time.perf_counter() - started
    assert done.rowcount == count
    await world.client.aclose()
    return {"seconds": round(seconds, 4)}


async def run(database_url: str | None, count: int) -> dict[str, Any]:
    from auxilio.server.app import create_app, prepare
    from auxilio.server.settings import load_settings

    with tempfile.TemporaryDirectory() as tmp:
        overrides: dict[str, Any] = {"data_dir": Path(tmp) / "data",
                                     "audit_checkpoint_seconds": 3600,
                                     "support_session_tick_seconds": 3600}
        if database_url:
            overrides["database_url"] = database_url
        settings = load_settings(**overrides)
        key = prepare(settings).signing_key
        app = create_app(settings, signing_key=key)
        async with app.router.lifespan_context(app):
            emergency = await _emergency(app, count)
            one_by_one = await _one_by_one(app, count)
            bare = await _bare_update(app, count)
    return {"emergency": emergency, "one_by_one": one_by_one, "bare_update": bare,
            "goal_seconds": GOAL_SECONDS, "goal_met": emergency["seconds"] <= GOAL_SECONDS}


async def _empty_postgres(url: str) -> None:
    from auxilio.server.db.migrate import downgrade, upgrade

    await asyncio.to_thread(downgrade, url, "base")
    await asyncio.to_thread(upgrade, url)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=1000)
    args = parser.parse_args()
    result: dict[str, Any] = {
        "sessions": args.sessions, "python": sys.version.split()[0], "cpus": os.cpu_count(),
        "sqlite": await run(None, args.sessions),
    }
    postgres = os.environ.get("AUXILIO_BENCH_POSTGRES_URL")
    if postgres:
        await _empty_postgres(postgres)
        result["postgresql"] = await run(postgres, args.sessions)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
