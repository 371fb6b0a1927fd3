"""The technician side of the E2E handshake and channel, against a real agent-side offer."""

from __future__ import annotations

import io

import pytest

from auxilio.client.output import PrefixedOutput
from auxilio.client.runner import ScriptRunner
from auxilio.client.script import End, Expect, SendChat
from auxilio.client.session import EXIT_OK, EXIT_PROTOCOL, SessionFailed, TechnicianSession
from auxilio.crypto.handshake import Handshake
from auxilio.protocol.app import ChatMessage, decode_app_message, encode_app_message
from auxilio.protocol.binary import ChannelId
from auxilio.protocol.frames import E2EAccept, SessionEnd, TechAttach

from .fakes import SESSION_ID, FakeAgentRelay, Keys, end_message, make_grant, running


def _session(api: object, keys: Keys, stream: io.StringIO) -> TechnicianSession:
    return TechnicianSession(
        api=api,  # type: ignore[arg-type]
        token="t" * 32,
        support_session_id=SESSION_ID,
        technician_key=keys.technician,
        server_key=keys.server.public_key(),
        output=PrefixedOutput(stream),
    )


async def _chat_then_end(relay: FakeAgentRelay) -> None:
    """The agent: answer the technician's chat, then confirm the end it asks for."""
    assert relay.agent is not None and relay.connection is not None
    _, plaintext = relay.agent.open(await relay.next_frame())
    message = decode_app_message(plaintext)
    assert isinstance(message, ChatMessage)
    reply = ChatMessage(text=f"got: {message.text}", sent_at=message.sent_at)
    await relay.connection.send(relay.agent.seal(ChannelId.CHAT, encode_app_message(reply)))
    end = await relay.next_control()
    assert isinstance(end, SessionEnd)
    await relay.connection.send(end_message("technician", "technician_ended"))


async def test_it_completes_the_handshake_and_chats_end_to_end() -> None:
    keys = Keys()
    relay = FakeAgentRelay(keys, make_grant(keys), after_confirm=_chat_then_end)
    stream = io.StringIO()

    async with running(relay) as api:
        session = _session(api, keys, stream)
        runner = ScriptRunner([SendChat("hello"), Expect("got: hello"), End()])
        outcome = await session.run(runner)

    assert outcome.exit_code == EXIT_OK, stream.getvalue()
    lines = stream.getvalue().splitlines()
    assert "state< active granted=chat,terminal" in "\n".join(lines)
    assert "state< secure end-to-end channel established" in lines
    assert "chat< got: hello" in lines
    assert "state< ended ended_by=technician reason=technician_ended" in lines
    attach, accept = relay.received[0], relay.received[1]
    assert isinstance(attach, TechAttach) and attach.support_session_id == SESSION_ID
    assert isinstance(accept, E2EAccept)


async def test_a_grant_signed_by_another_key_is_refused_before_any_key_is_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    keys = Keys()
    rogue = Keys().server
    relay = FakeAgentRelay(keys, make_grant(keys, signer=rogue))

    def must_not_run(*args: object, **kwargs: object) -> None:
        raise AssertionError("the technician key was used with an unverified grant")

    monkeypatch.setattr(Handshake, "technician_accept", must_not_run)
    stream = io.StringIO()

    async with running(relay) as api:
        outcome = await _session(api, keys, stream).run(ScriptRunner([]))

    assert outcome.exit_code == EXIT_PROTOCOL
    assert outcome.detail == "grant.bad_signature"
    end = relay.received[-1]
    assert isinstance(end, SessionEnd)
    assert (end.ended_by, end.reason, end.detail) == (
        "technician",
        "protocol_error",
        "grant.bad_signature",
    )
    assert not any(isinstance(m, E2EAccept) for m in relay.received)
    assert "error< grant.bad_signature" in stream.getvalue()


async def _send_tampered_frame(relay: FakeAgentRelay) -> None:
    assert relay.agent is not None and relay.connection is not None
    frame = bytearray(relay.agent.seal(ChannelId.CHAT, b'{"type":"chat.message"}'))
    frame[-1] ^= 0x01
    await relay.connection.send(bytes(frame))
    end = await relay.next_control()
    assert isinstance(end, SessionEnd)
    await relay.connection.send(end_message("technician", "protocol_error", end.detail))


async def test_a_tampered_frame_ends_the_session_with_protocol_error() -> None:
    keys = Keys()
    relay = FakeAgentRelay(keys, make_grant(keys), after_confirm=_send_tampered_frame)
    stream = io.StringIO()

    async with running(relay) as api:
        outcome = await _session(api, keys, stream).run(ScriptRunner([Expect("never")]))

    assert outcome.exit_code == EXIT_PROTOCOL
    assert outcome.detail == "e2e.tampered"
    end = relay.received[-1]
    assert isinstance(end, SessionEnd) and end.detail == "e2e.tampered"


async def test_a_grant_for_another_technician_key_is_refused() -> None:
    keys = Keys()
    other = Keys(server=keys.server, device=keys.device)
    relay = FakeAgentRelay(keys, make_grant(other))
    stream = io.StringIO()

    async with running(relay) as api:
        outcome = await _session(api, keys, stream).run(ScriptRunner([]))

    assert outcome.exit_code == EXIT_PROTOCOL
    assert "another technician key" in stream.getvalue()
    assert not any(isinstance(m, E2EAccept) for m in relay.received)


def test_session_failed_carries_its_code() -> None:
    assert SessionFailed("e2e.tampered", "x").code == "e2e.tampered"
