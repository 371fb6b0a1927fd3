"""The Auxilio case of ``bench_relay.py``: a real server, a real support session, real keys.

Set-up goes through the service layer (as ``tests/factories.py`` does) before ``auxilio serve``
starts in a subprocess on a temporary SQLite data directory. Then the technician requests a
session over REST, a test agent joins on ``/ws/agent`` and consents with a signed receipt, the
technician attaches on ``/ws/technician``, both run the E2E handshake, and the pipe yields the
agent's and the technician's sockets for binary frames.

The organisation has an auditor key and a policy where recording is optional, so the same server
relays an unrecorded session and a recorded one (``record=True``: the relay appends every frame
to ``<data_dir>/recordings`` and the agent sends its sealed ``recording.key``).
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from bench_crypto import handshake_setup
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from auxilio.agent.sealing import recording_key_message
from auxilio.crypto.e2e import E2ESession
from auxilio.crypto.grants import read_grant, verify_grant
from auxilio.crypto.handshake import Handshake
from auxilio.crypto.keys import encode_public_key
from auxilio.crypto.receipts import sign_receipt
from auxilio.crypto.signing import sign_agent_challenge
from auxilio.protocol import frames as f
from auxilio.protocol.types import ConsentDecision

ALWAYS = {day: ["00:00-24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def session_pair() -> tuple[E2ESession, E2ESession]:
    """An agent and a technician E2E session that completed the real handshake in-process."""
    handshake, _ = handshake_setup()
    return handshake()


async def _set_up(data_dir: Path, database_url: str) -> dict[str, Any]:
    """Organisation, technician (TOTP enrolled, on duty always), end user and ticket."""
    from auxilio.policy.roles import Role
    from auxilio.policy.templates import load_template
    from auxilio.server.app import create_app, prepare
    from auxilio.server.db.base import utcnow
    from auxilio.server.identity import auth, service
    from auxilio.server.identity import secrets as sec
    from auxilio.server.policies import service as policies
    from auxilio.server.recordings import service as recordings
    from auxilio.server.settings import load_settings
    from auxilio.server.tickets import service as tickets

    settings = load_settings(data_dir=data_dir, database_url=database_url)
    prepared = prepare(settings)
    app = create_app(settings, signing_key=prepared.signing_key)
    async with app.router.lifespan_context(app), app.state.sessionmaker() as db, db.begin():
        org = await service.create_organisation(db, slug="bench", name="Bench", actor=_system())
        tech = await service.create_user(
            db, organisation=org, email="tech@bench.test", display_name="Bench Tech",
            role=Role.TECHNICIAN, password="bench password 123", actor=_system(org.id),
            # The ticket's skill: it is routed to this technician, whose ticket it then is.
            skills=["software"], working_hours=ALWAYS, timezone="UTC",
        )  # fmt: skip
        for training in ("privacy", "approved-tools"):  # the default policy requires both
            await service.record_training(
                db, user=tech, training_id=training, title=training, completed_at=utcnow(),
                expires_at=None, actor=_system(org.id),
            )  # fmt: skip
        await auth.start_totp_enrolment(db, user=tech, actor=auth.actor_for(tech))
        assert tech.totp_secret is not None
        step = int(utcnow().timestamp()) // sec.TOTP_PERIOD
        await auth.confirm_totp_enrolment(
            db, user=tech, code=sec.totp_code_at(tech.totp_secret, step),
            actor=auth.actor_for(tech),
        )  # fmt: skip
        user = await service.create_user(
            db, organisation=org, email="user@bench.test", display_name="Bench User",
            role=Role.END_USER, password="bench password 123", actor=_system(org.id),
            skills=[], working_hours={}, timezone="UTC",
        )  # fmt: skip
        token, _ = await auth.issue_token(
            db, user=tech, kind="login", name="bench", ttl=timedelta(hours=1),
            mfa_verified=True, actor=auth.actor_for(tech),
        )  # fmt: skip
        ticket = await tickets.open_ticket(
            db, title="Bench", description="", category="software", priority="normal",
            actor=auth.actor_for(user),
        )  # fmt: skip
        # The default policy with recording optional: one server, both kinds of session.
        document = load_template(policies.DEFAULT_TEMPLATE).replace(
            "recording: required", "recording: optional"
        )
        version = await policies.upload_version(
            db, organisation_id=org.id, document=document, comment="bench", actor=_system(org.id)
        )
        await policies.activate_version(db, version=version, actor=_system(org.id))
        await recordings.set_auditor_key(
            db, organisation_id=org.id, public_key=X25519PrivateKey.generate().public_key(),
            actor=_system(org.id),
        )  # fmt: skip
    return {"token": token, "ticket_id": str(ticket.id), "server_key": prepared.signing_key}


def _system(org_id: Any = None) -> Any:
    from auxilio.server.context import Actor

    return Actor.system(org_id) if org_id is not None else Actor.system()


async def _next(ws: Any, kind: type[Any]) -> Any:
    while True:
        data = await ws.recv()
        if isinstance(data, bytes):
            continue
        message = f.parse_message(data)
        if isinstance(message, f.ErrorMessage):
            raise RuntimeError(f"server error {message.code}: {message.message}")
        if isinstance(message, f.SessionEnd):
            raise RuntimeError(f"session ended: {message.reason} {message.detail}")
        if isinstance(message, kind):
            return message


async def _open_session(
    base: str, setup: dict[str, Any], *, record: bool
) -> tuple[Any, Any, E2ESession, E2ESession]:
    """Request, join, consent, attach, handshake; the agent's and technician's sockets and the
    E2E sessions the handshake gave each side."""
    from bench_relay import ws_connect

    technician_key, device_key = X25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    headers = {"Authorization": f"Bearer {setup['token']}"}
    async with httpx.AsyncClient(base_url=base + "/api/v1", headers=headers) as http:
        answer = await http.post("/support-sessions", json={
            "ticket_id": setup["ticket_id"], "mode": "attended", "capabilities": ["chat"],
            "technician_e2e_key": encode_public_key(technician_key.public_key()),
            "record": record,
        })  # fmt: skip
        if answer.is_error:
            raise RuntimeError(f"support session request: {answer.status_code} {answer.text}")
        requested = answer.json()
    ws_base = base.replace("http://", "ws://")
    # The technician first: a join code works only while its technician is attached.
    technician = await ws_connect(ws_base + "/ws/technician")
    await technician.send(f.encode_message(f.TechAttach(
        id="t1", support_session_id=requested["id"], token=setup["token"]
    )))  # fmt: skip
    await _next(technician, f.SessionStateMessage)
    agent = await ws_connect(ws_base + "/ws/agent")
    await agent.send(f.encode_message(f.AgentHello(
        id="h1", device_public_key=encode_public_key(device_key.public_key()),
        agent_version="bench", platform="linux", protocol_version=1, min_protocol_version=1,
    )))  # fmt: skip
    hello = await _next(agent, f.ServerHello)
    signature = sign_agent_challenge(
        device_key, challenge=hello.challenge, server_fingerprint=hello.server_fingerprint
    )
    await agent.send(f.encode_message(f.AgentAuth(id="a1", signature=signature)))
    await agent.send(f.encode_message(f.SessionJoin(id="j1", join_code=requested["join_code"])))
    offer = await _next(agent, f.SessionOffer)
    server_public = setup["server_key"].public_key()
    grant = read_grant(server_public, offer.grant)
    verify_grant(server_public, offer.grant, device_id=grant.device_id, now=datetime.now(UTC))
    receipt = sign_receipt(
        device_key, support_session_id=grant.support_session_id, device_id=grant.device_id,
        grant_nonce=grant.nonce, prompt_text="bench", decided_at=datetime.now(UTC),
        decisions={c.capability: ConsentDecision.GRANTED for c in grant.capabilities},
        timeout_seconds=grant.terms.timeout_seconds, timeout_default="refused",
    )  # fmt: skip
    await agent.send(f.encode_message(f.ConsentDecisionMessage(
        id="c1", support_session_id=grant.support_session_id, receipt=receipt
    )))  # fmt: skip
    while (await _next(agent, f.SessionStateMessage)).reason != "technician_ready":
        pass
    agent_offer = Handshake.agent_offer(device_key=device_key, grant=grant)
    await agent.send(f.encode_message(agent_offer.hello))
    e2e_hello = await _next(technician, f.E2EHello)
    pending = Handshake.technician_accept(e2e_hello, technician_key=technician_key, grant=grant)
    await technician.send(f.encode_message(pending.accept))
    accept = await _next(agent, f.E2EAccept)
    session, confirm = agent_offer.complete(accept)
    await agent.send(f.encode_message(confirm))
    technician_session = pending.complete(await _next(technician, f.E2EConfirm))
    key_message = recording_key_message(grant, session.keys)
    if record != (key_message is not None):
        raise RuntimeError(f"asked record={record}, the grant says recorded={grant.recorded}")
    if key_message is not None:
        await agent.send(f.encode_message(key_message))
    return agent, technician, session, technician_session


@contextlib.asynccontextmanager
async def auxilio_pipe(port: int, *, sansio: bool = False) -> AsyncIterator[tuple[int, Any]]:
    """Start ``auxilio serve`` (or, with ``sansio``, ``create_app`` under uvicorn with the stack
    ADR 0003 recommends); yield its pid and a pipe factory (agent end, technician end)."""
    from bench_relay import VENV_BIN, started

    with tempfile.TemporaryDirectory(prefix="auxilio-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        database_url = f"sqlite+aiosqlite:///{data_dir}/auxilio.db"
        setup = await _set_up(data_dir, database_url)
        auxilio = VENV_BIN / "auxilio"
        command = [
            str(auxilio) if auxilio.exists() else sys.executable, "serve",
            "--data-dir", str(data_dir), "--database-url", database_url, "--port", str(port),
            "--host", "127.0.0.1",
        ]  # fmt: skip
        if sansio:
            command = [sys.executable, str(Path(__file__).with_name("bench_relay.py")),
                       "--serve", "auxilio-sansio", "--port", str(port),
                       "--data-dir", str(data_dir)]  # fmt: skip
        with started(command, port) as proc:

            @contextlib.asynccontextmanager
            async def pipe(record: bool = False, e2e: bool = False) -> AsyncIterator[Any]:
                """(agent end, technician end), and with ``e2e`` also the agent's and the
                technician's E2E sessions from the real handshake (bench_files seals with them)."""
                agent, technician, agent_e2e, technician_e2e = await _open_session(
                    f"http://127.0.0.1:{port}", setup, record=record
                )
                ends = (_binary_end(agent), _binary_end(technician))
                try:
                    yield (*ends, agent_e2e, technician_e2e) if e2e else ends
                finally:
                    await agent.close()
                    await technician.close()

            yield proc.pid, pipe


def _binary_end(ws: Any) -> Any:
    """Like ``ws_end`` but skipping the control messages (state, warnings) the server sends."""
    from bench_relay import End

    async def recv() -> bytes:
        while True:
            data = await ws.recv()
            if isinstance(data, bytes):
                return bytes(data)

    return End(ws.send, recv, ws.close)


def serve_sansio(data_dir: Path, port: int) -> None:
    """The Auxilio app on uvicorn's sans-I/O websockets protocol, without permessage-deflate."""
    import uvicorn

    from auxilio.server.app import create_app
    from auxilio.server.settings import load_settings

    database_url = f"sqlite+aiosqlite:///{data_dir}/auxilio.db"
    app = create_app(load_settings(data_dir=data_dir, database_url=database_url))
    uvicorn.run(
        app, host="127.0.0.1", port=port, ws="websockets-sansio", ws_per_message_deflate=False,
        log_level="warning",
    )  # fmt: skip
