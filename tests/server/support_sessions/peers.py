"""Test-only peers: a fake agent and a fake technician client built on ``auxilio.crypto``.

Real keys, real grants, real receipts and a real E2E session; only the person at the device
is scripted (the consent decisions are arguments).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import websockets
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from auxilio.crypto.e2e import E2ESession
from auxilio.crypto.grants import Grant, read_grant, verify_grant
from auxilio.crypto.handshake import AgentOffer, Handshake
from auxilio.crypto.keys import encode_public_key, fingerprint
from auxilio.crypto.receipts import sign_extension_receipt, sign_receipt
from auxilio.crypto.signing import sign_agent_challenge
from auxilio.protocol.frames import (
    AgentAuth,
    AgentHello,
    ConsentDecisionMessage,
    E2EAccept,
    E2EConfirm,
    E2EHello,
    ServerHello,
    SessionExtendAnswer,
    SessionExtendDecision,
    SessionJoin,
    SessionOffer,
    TechAttach,
    encode_message,
    parse_message,
)
from auxilio.protocol.types import Capability, ConsentDecision, TimeoutDefault

Frame = str | bytes


def mid() -> str:
    return secrets.token_hex(6)


def now() -> datetime:
    return datetime.now(UTC)


OPENED: list[Peer] = []


async def close_all() -> None:
    """Abort every peer a test opened (some stop reading on purpose and would never close)."""
    while OPENED:
        peer = OPENED.pop()
        if peer.ws is not None:
            peer.ws.transport.abort()
        if peer._reader is not None:
            peer._reader.cancel()
            await asyncio.gather(peer._reader, return_exceptions=True)


class Peer:
    """A WebSocket client whose frames are read by a background task into a list."""

    path = ""

    def __init__(self, base_url: str) -> None:
        OPENED.append(self)
        self.url = base_url.replace("http://", "ws://") + self.path
        self.ws: Any = None
        self.frames: list[Frame] = []
        self._arrived = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self._cursor = 0

    async def connect(self, *, read: bool = True) -> None:
        # No compression: E2E frames are ciphertext and do not shrink.
        self.ws = await websockets.connect(self.url, max_size=None, open_timeout=10,
                                           compression=None)
        if read:
            self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                self.frames.append(frame)
                self._arrived.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            self.closed.set()
            self._arrived.set()

    async def send(self, message: Any) -> None:
        await self.ws.send(encode_message(message))

    async def next_where(
        self, match: Callable[[Frame], bool], *, within: float = 10.0
    ) -> Frame:
        """The next frame (after the last one returned) that ``match`` accepts."""
        async with asyncio.timeout(within):
            while True:
                while self._cursor < len(self.frames):
                    frame = self.frames[self._cursor]
                    self._cursor += 1
                    if match(frame):
                        return frame
                if self.closed.is_set():
                    raise ConnectionError(f"closed ({self.close_code}) while waiting")
                self._arrived.clear()
                await self._arrived.wait()

    async def expect(self, message_type: str, *, within: float = 10.0) -> Any:
        frame = await self.next_where(
            lambda f: isinstance(f, str) and parse_message(f).type in (message_type, "error"),
            within=within,
        )
        message = parse_message(frame)
        if message.type != message_type:
            raise AssertionError(f"expected {message_type}, got {frame}")
        return message

    async def expect_error(self, code: str, *, within: float = 10.0) -> Any:
        frame = await self.next_where(
            lambda f: isinstance(f, str) and parse_message(f).type == "error", within=within
        )
        message = parse_message(frame)
        assert message.code == code, message
        return message

    async def expect_state(self, reason: str, *, within: float = 10.0) -> Any:
        frame = await self.next_where(
            lambda f: isinstance(f, str) and parse_message(f).type == "session.state"
            and parse_message(f).reason == reason, within=within,
        )
        return parse_message(frame)

    def texts_of(self, message_type: str) -> list[Any]:
        return [parse_message(f) for f in self.frames
                if isinstance(f, str) and parse_message(f).type == message_type]

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await self._reader


class FakeAgent(Peer):
    path = "/ws/agent"

    def __init__(
        self, base_url: str, *, device_key: Ed25519PrivateKey | None = None,
        capabilities: tuple[Capability, ...] = (Capability.CHAT, Capability.TERMINAL),
    ) -> None:
        super().__init__(base_url)
        self.device_key = device_key or Ed25519PrivateKey.generate()
        self.capabilities = capabilities  # what its agent.hello announces
        self.platform = "linux"  # what its agent.hello says it runs on
        self.server_fingerprint = ""
        self.offer: SessionOffer | None = None
        self.grant: Grant | None = None
        self.e2e: E2ESession | None = None
        self._pending: AgentOffer | None = None

    async def authenticate(self) -> None:
        await self.send(AgentHello(
            id=mid(), device_public_key=encode_public_key(self.device_key.public_key()),
            agent_version="test", platform=self.platform, protocol_version=1,
            min_protocol_version=1,
            capabilities=self.capabilities,
        ))
        hello: ServerHello = await self.expect("server.hello")
        self.server_fingerprint = hello.server_fingerprint
        await self.send(AgentAuth(id=mid(), signature=sign_agent_challenge(
            self.device_key, challenge=hello.challenge,
            server_fingerprint=hello.server_fingerprint)))

    async def join(self, code: str) -> SessionOffer:
        await self.send(SessionJoin(id=mid(), join_code=code))
        self.offer = await self.expect("session.offer")
        return self.offer

    def verify(self, server_key: Ed25519PrivateKey) -> Grant:
        assert self.offer is not None
        payload_device = self.offer.grant
        grant = verify_grant(server_key.public_key(), payload_device,
                             device_id=_device_id(self.offer), now=now(),
                             device_public_key=self.device_key.public_key())
        self.grant = grant
        return grant

    async def decide(
        self, decisions: Mapping[Capability, ConsentDecision], *,
        key: Ed25519PrivateKey | None = None, nonce: str | None = None,
        decided_at: datetime | None = None, timeout_seconds: int | None = None,
        timeout_default: TimeoutDefault = "refused",
    ) -> None:
        assert self.offer is not None and self.grant is not None
        receipt = sign_receipt(
            key or self.device_key, support_session_id=self.offer.support_session_id,
            device_id=self.grant.device_id, grant_nonce=nonce or self.grant.nonce,
            prompt_text=f"{self.grant.technician_name} asks for access",
            decisions=decisions, decided_at=decided_at or now(),
            timeout_seconds=timeout_seconds or self.grant.terms.timeout_seconds,
            timeout_default=timeout_default,
        )
        await self.send(ConsentDecisionMessage(
            id=mid(), support_session_id=self.offer.support_session_id, receipt=receipt))

    async def answer_extension(
        self, decision: SessionExtendDecision, answer: ConsentDecision, *,
        server_key: Ed25519PrivateKey,
    ) -> Grant:
        """The person's signed answer to an offered extension; the checked new grant."""
        assert self.grant is not None and decision.grant is not None
        new = read_grant(server_key.public_key(), decision.grant)
        assert new.extension is not None
        receipt = sign_extension_receipt(
            self.device_key, support_session_id=new.support_session_id,
            device_id=new.device_id, grant_nonce=new.nonce, new_not_after=new.not_after,
            reason=new.extension.reason, decision=answer, decided_at=now(),
        )
        await self.send(SessionExtendAnswer(
            id=mid(), support_session_id=new.support_session_id, receipt=receipt))
        return new

    async def start_e2e(self) -> None:
        assert self.grant is not None
        self._pending = Handshake.agent_offer(device_key=self.device_key, grant=self.grant)
        await self.send(self._pending.hello)
        accept: E2EAccept = await self.expect("e2e.accept")
        self.e2e, confirm = self._pending.complete(accept)
        await self.send(confirm)


def _device_id(offer: SessionOffer) -> str:
    # The agent learns its device id from the grant it is offered (attended one-off join).
    import base64

    import orjson

    body = offer.grant.body
    payload = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))["payload"]
    device_id: str = payload["device_id"]
    return device_id


class FakeTechnician(Peer):
    path = "/ws/technician"

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.e2e_key = X25519PrivateKey.generate()
        self.e2e: E2ESession | None = None

    @property
    def public_key(self) -> str:
        return encode_public_key(self.e2e_key.public_key())

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.e2e_key.public_key())

    async def attach(self, support_session_id: str, token: str) -> None:
        await self.send(TechAttach(id=mid(), support_session_id=support_session_id, token=token))

    async def answer_e2e(self, grant: Grant) -> None:
        hello: E2EHello = await self.expect("e2e.hello")
        pending = Handshake.technician_accept(hello, technician_key=self.e2e_key, grant=grant)
        await self.send(pending.accept)
        confirm: E2EConfirm = await self.expect("e2e.confirm")
        self.e2e = pending.complete(confirm)
