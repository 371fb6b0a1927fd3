"""Replayed, reordered, truncated and altered frames through the real relay: the receiving peer
detects it, the session ends with a clear error, and the server audits the code."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auxilio.crypto.errors import CryptoError
from auxilio.protocol.app import ChatMessage, encode_app_message
from auxilio.protocol.binary import ChannelId
from auxilio.protocol.frames import CapabilityRevoke, EndReason, Party, SessionEnd
from auxilio.protocol.types import Capability
from tests.server.support_sessions.conftest import World
from tests.server.support_sessions.flow import active
from tests.server.support_sessions.peers import mid


def chat(text: str) -> bytes:
    return encode_app_message(ChatMessage(text=text, sent_at=datetime.now(UTC)))


def attack(kind: str, first: bytes, second: bytes) -> list[bytes]:
    """What the agent receives instead of ``first`` then ``second``."""
    if kind == "replayed":
        return [first, first]
    if kind == "reordered":
        return [second, first]
    if kind == "truncated":
        return [first[:20]]
    altered = bytearray(first)
    altered[-1] ^= 0x01  # one bit of the tag
    return [bytes(altered)]


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("replayed", "e2e.replayed"),
        ("reordered", "e2e.out_of_order"),
        ("truncated", "e2e.truncated"),
        ("altered", "e2e.tampered"),
    ],
)
async def test_a_broken_frame_ends_the_session_with_its_code_audited(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey, kind: str, code: str
) -> None:
    running = await active(http, world, signing_key)
    agent, technician = running.agent, running.technician
    assert agent.e2e is not None and technician.e2e is not None
    first = technician.e2e.seal(ChannelId.CHAT, chat("one"))
    second = technician.e2e.seal(ChannelId.CHAT, chat("two"))

    # The technician's socket sends the doctored frames; the relay forwards them blind.
    detected: CryptoError | None = None
    for frame in attack(kind, first, second):
        await technician.ws.send(frame)
        received = await agent.next_where(lambda f: isinstance(f, bytes))
        assert isinstance(received, bytes)
        try:
            agent.e2e.open(received)
        except CryptoError as exc:
            detected = exc
            break
    assert detected is not None and detected.code == code

    # As the real agent does: end the session, naming the error.
    await agent.send(
        SessionEnd(
            id=mid(),
            support_session_id=running.sid,
            ended_by=Party.AGENT,
            reason=EndReason.PROTOCOL_ERROR,
            detail=detected.code,
        )
    )
    end = await technician.expect("session.end")
    assert end.reason == "protocol_error"
    row = await world.wait_for_state(running.sid, "ended")
    assert row.end_reason == "protocol_error" and row.end_detail == code
    reported = await world.events("support_session:e2e:error_reported")
    assert [(e["code"], e["reported_by"]) for e in reported] == [(code, "agent")]


async def test_an_agent_cannot_record_a_revocation_as_someone_elses(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    running = await active(http, world, signing_key)
    await running.agent.send(CapabilityRevoke(
        id=mid(), support_session_id=running.sid, capability=Capability.CHAT,
        revoked_by=Party.SUPERVISOR, reason="pretending",
    ))  # fmt: skip
    revoked = await running.technician.expect("capability.revoke")
    assert revoked.capability == "chat"
    for _ in range(50):
        events = await world.events("support_session:capability:revoked")
        if events:
            break
        await asyncio.sleep(0.1)
    assert [e["revoked_by"] for e in events] == ["agent"]
