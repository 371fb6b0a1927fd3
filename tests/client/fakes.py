"""A stand-in for the server's ``/ws/technician`` and the agent behind it, in one process.

It plays the relay and a real agent-side ``Handshake.agent_offer`` with real keys, so the
technician client's side of the handshake and of the E2E channel is tested against the real
crypto, without the broker.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from websockets.asyncio.server import ServerConnection, serve

from auxilio.client.api import ApiClient
from auxilio.crypto.e2e import E2ESession
from auxilio.crypto.grants import SignedGrant, issue_grant, read_grant
from auxilio.crypto.handshake import Handshake
from auxilio.protocol.frames import (
    E2EAccept,
    SessionEnd,
    SessionStateMessage,
    encode_message,
    parse_message,
)
from auxilio.protocol.types import Capability, CapabilityGrant, ConsentTerms

SESSION_ID = "ss-1001"


@dataclass
class Keys:
    server: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    device: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    technician: X25519PrivateKey = field(default_factory=X25519PrivateKey.generate)


def make_grant(keys: Keys, *, signer: Ed25519PrivateKey | None = None) -> SignedGrant:
    now = datetime.now(UTC)
    return issue_grant(
        signer or keys.server,
        support_session_id=SESSION_ID,
        organisation_id="org-7",
        organisation_name="Escuela",
        technician_id="tech-42",
        technician_name="Ana López",
        technician_e2e_key=keys.technician.public_key(),
        device_id="dev-9",
        device_public_key=keys.device.public_key(),
        capabilities=[
            CapabilityGrant(capability=Capability.CHAT, expires_at=now + timedelta(minutes=30)),
            CapabilityGrant(capability=Capability.TERMINAL, expires_at=now + timedelta(minutes=30)),
        ],
        policy_version="test-1",
        issued_at=now,
        not_after=now + timedelta(hours=1),
        terms=ConsentTerms(
            legal_text="test", timeout_seconds=60, answer_by=now + timedelta(minutes=2)
        ),
    )


def state(name: str, *, granted: tuple[str, ...] = (), reason: str = "") -> str:
    return encode_message(
        SessionStateMessage.model_validate(
            {
                "id": f"st-{name}",
                "support_session_id": SESSION_ID,
                "state": name,
                "changed_at": datetime.now(UTC),
                "granted": granted,
                "reason": reason,
            }
        )
    )


def end_message(ended_by: str, reason: str, detail: str = "") -> str:
    return encode_message(
        SessionEnd.model_validate(
            {
                "id": "end-1",
                "support_session_id": SESSION_ID,
                "ended_by": ended_by,
                "reason": reason,
                "detail": detail,
            }
        )
    )


class FakeAgentRelay:
    """Accepts ``tech.attach``, activates the session, and runs the agent's half of the
    handshake. ``after_confirm`` then drives the agent side of the E2E channel."""

    def __init__(
        self,
        keys: Keys,
        grant: SignedGrant,
        after_confirm: Callable[[FakeAgentRelay], Awaitable[None]] | None = None,
    ) -> None:
        self.keys = keys
        self.grant = grant
        self.after_confirm = after_confirm
        self.received: list[Any] = []  # parsed control messages from the technician
        self.agent: E2ESession | None = None
        self.connection: ServerConnection | None = None

    async def handler(self, connection: ServerConnection) -> None:
        self.connection = connection
        attach = parse_message(await connection.recv())
        self.received.append(attach)
        await connection.send(state("awaiting_consent"))
        await connection.send(state("active", granted=("chat", "terminal")))
        # The agent verified this grant itself; here its reading is enough to start the offer.
        grant = read_grant(self.keys.server.public_key(), make_grant(self.keys))
        offer = Handshake.agent_offer(device_key=self.keys.device, grant=grant)
        await connection.send(encode_message(offer.hello))
        answer = parse_message(await connection.recv())
        self.received.append(answer)
        if not isinstance(answer, E2EAccept):
            await connection.send(end_message("technician", "protocol_error", "relayed"))
            return
        self.agent, confirm = offer.complete(answer)
        await connection.send(encode_message(confirm))
        if self.after_confirm is not None:
            await self.after_confirm(self)

    async def next_control(self) -> Any:
        assert self.connection is not None
        while True:
            data = await self.connection.recv()
            if isinstance(data, str):
                message = parse_message(data)
                self.received.append(message)
                return message

    async def next_frame(self) -> bytes:
        assert self.connection is not None
        while True:
            data = await self.connection.recv()
            if isinstance(data, bytes):
                return data
            self.received.append(parse_message(data))


@asynccontextmanager
async def running(relay: FakeAgentRelay) -> AsyncIterator[ApiClient]:
    """Serve the fake on a free loopback port; yield an API client whose REST answers carry
    the relay's grant (as ``GET /support-sessions/{id}`` does)."""

    def rest(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith(f"/support-sessions/{SESSION_ID}"):
            grant = relay.grant.model_dump()
            return httpx.Response(200, json={"id": SESSION_ID, "grant": grant})
        return httpx.Response(404, json={"error": {"code": "not_found", "message": "no"}})

    async with serve(relay.handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        api = ApiClient(f"http://127.0.0.1:{port}", "t" * 32, transport=httpx.MockTransport(rest))
        async with api:
            yield api
        server.close()


async def settle() -> None:
    await asyncio.sleep(0)
