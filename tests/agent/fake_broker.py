"""A scripted broker for the agent's process tests: the real wire protocol, real crypto, a
technician peer built in, and no database. It is the smallest server that lets ``auxilio agent
join`` run as a real process; the end-to-end test with the real server lives elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from auxilio.crypto.e2e import E2ESession
from auxilio.crypto.handshake import Handshake
from auxilio.crypto.keys import (
    b64url_encode,
    decode_ed25519_public_key,
    encode_public_key,
    fingerprint,
)
from auxilio.crypto.receipts import verify_receipt
from auxilio.crypto.signing import verify_agent_challenge
from auxilio.protocol.app import TerminalInput, TerminalOpen, encode_app_message
from auxilio.protocol.binary import ChannelId
from auxilio.protocol.frames import (
    AgentAuth,
    AgentHello,
    ConsentDecisionMessage,
    E2EConfirm,
    E2EHello,
    ErrorMessage,
    ServerHello,
    SessionActivity,
    SessionEnd,
    SessionJoin,
    SessionStateMessage,
    encode_message,
    parse_message,
)

from .factories import make_grant, make_offer

BAD_CODE = "BAD-BAD-BAD"


@dataclass
class FakeBroker:
    server_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    technician_key: X25519PrivateKey = field(default_factory=X25519PrivateKey.generate)
    command: bytes = b"echo from-technician\r"
    received: list[Any] = field(default_factory=list)
    port: int = 0
    _stop: asyncio.Event | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        ready = threading.Event()

        async def main() -> None:
            self._stop = asyncio.Event()
            async with serve(self._session, "127.0.0.1", 0, process_request=self._http) as server:
                self.port = server.sockets[0].getsockname()[1]  # type: ignore[index]
                ready.set()
                await self._stop.wait()

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_until_complete, args=(main(),), daemon=True
        )
        self._thread.start()
        ready.wait(10)

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)
            self._loop.close()

    def _http(self, connection: ServerConnection, request: Request) -> Response | None:
        if request.path == "/api/v1/server-key":
            public = self.server_key.public_key()
            body = {"public_key": encode_public_key(public), "fingerprint": fingerprint(public)}
            return connection.respond(HTTPStatus.OK, json.dumps(body))
        return None

    async def _send(self, connection: ServerConnection, message: Any) -> None:
        await connection.send(encode_message(message))

    async def _next(self, connection: ServerConnection) -> Any:
        while True:
            data = await connection.recv()
            if isinstance(data, bytes):
                self.received.append(data)
                return data
            message = parse_message(data)
            self.received.append(message)
            if message.type != "agent.heartbeat":
                return message

    async def _session(self, connection: ServerConnection) -> None:
        hello = await self._next(connection)
        assert isinstance(hello, AgentHello)
        challenge = b64url_encode(os.urandom(24))
        server_fp = fingerprint(self.server_key.public_key())
        await self._send(connection, ServerHello(
            id="h1", protocol_version=1, server_fingerprint=server_fp, challenge=challenge,
            server_time=datetime.now(UTC),
        ))  # fmt: skip
        auth = await self._next(connection)
        if not isinstance(auth, AgentAuth):
            return  # the agent refused the server key and left
        device_key = decode_ed25519_public_key(hello.device_public_key)
        verify_agent_challenge(
            device_key, auth.signature, challenge=challenge, server_fingerprint=server_fp
        )
        join = await self._next(connection)
        assert isinstance(join, SessionJoin)
        if join.join_code == BAD_CODE:
            await self._send(connection, ErrorMessage(
                id="e1", code="join_code.invalid", message="unknown join code", ref=join.id
            ))  # fmt: skip
            await connection.wait_closed()
            return
        signed, grant = make_grant(self.server_key, device_key, self.technician_key)
        await self._send(connection, make_offer(signed, grant))
        decision = await self._next(connection)
        assert isinstance(decision, ConsentDecisionMessage)
        receipt = verify_receipt(device_key, decision.receipt)
        sid = grant.support_session_id
        if not receipt.granted():
            await self._send(connection, SessionEnd(
                id="end", support_session_id=sid, ended_by="end_user", reason="consent_refused"
            ))  # fmt: skip
            await connection.wait_closed()
            return
        await self._send(connection, SessionStateMessage(
            id="s1", support_session_id=sid, state="active", changed_at=datetime.now(UTC),
            granted=tuple(receipt.granted()), reason="technician_ready",
        ))  # fmt: skip
        e2e_hello = await self._next(connection)
        assert isinstance(e2e_hello, E2EHello)
        pending = Handshake.technician_accept(
            e2e_hello, technician_key=self.technician_key, grant=grant
        )
        await self._send(connection, pending.accept)
        confirm = await self._next(connection)
        assert isinstance(confirm, E2EConfirm)
        tech: E2ESession = pending.complete(confirm)
        for message in (TerminalOpen(terminal_id=1, cols=80, rows=24),
                        TerminalInput(terminal_id=1, data=self.command)):  # fmt: skip
            await connection.send(tech.seal(ChannelId.TERMINAL, encode_app_message(message)))
        while True:
            message = await self._next(connection)
            if isinstance(message, SessionEnd):
                return
            if isinstance(message, bytes):
                tech.open(message)
            elif isinstance(message, SessionActivity):
                continue
