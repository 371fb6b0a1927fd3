"""The agent is the last line of defence: it opens only what both the grant and the person's
receipt allow, ends on any E2E error, on the person's word, and at the grant's end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from auxilio.agent.report import build_report
from auxilio.agent.state import AgentState
from auxilio.agent.userinput import Signal
from auxilio.crypto.receipts import verify_extension_receipt
from auxilio.crypto.signing import DocumentKind, sign_document
from auxilio.protocol.app import (
    ChatMessage,
    TerminalExit,
    TerminalInput,
    TerminalOpen,
    TerminalOutput,
)
from auxilio.protocol.binary import ChannelId
from auxilio.protocol.frames import (
    CapabilityRevoke,
    SessionActivity,
    SessionEnd,
    SessionExtendAnswer,
    SessionExtendDecision,
    SessionReportMessage,
)
from auxilio.protocol.report import SessionReport as ServerReport
from auxilio.protocol.types import Capability, ConsentDecision

from .factories import make_extension, make_grant, now
from .sessionkit import Harness

GRANTED = ConsentDecision.GRANTED
REFUSED = ConsentDecision.REFUSED


def harness(
    state: AgentState,
    server_key: Ed25519PrivateKey,
    technician_key: X25519PrivateKey,
    *,
    chat: ConsentDecision = GRANTED,
    terminal: ConsentDecision = GRANTED,
    **grant_args: object,
) -> Harness:
    _, grant = make_grant(server_key, state.device_public_key, technician_key, **grant_args)  # type: ignore[arg-type]
    consent = {Capability.CHAT: chat, Capability.TERMINAL: terminal}
    made = Harness(state, grant, technician_key, consent, server_key.public_key())
    made.start()
    return made


async def test_terminal_refused_by_the_person_is_never_opened(
    state: AgentState, server_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> None:
    h = harness(state, server_key, technician_key, terminal=REFUSED)
    # The broker claims terminal is granted; the agent's own receipt says otherwise.
    await h.activate(granted=("chat", "terminal"))
    await h.send_app(ChannelId.TERMINAL, TerminalOpen(terminal_id=1, cols=80, rows=24))
    answer = await h.next_app()
    assert answer == TerminalExit(terminal_id=1, exit_code=126)
    assert len(h.runner.terminals) == 0
    await h.send_app(ChannelId.TERMINAL, TerminalInput(terminal_id=1, data=b"rm -rf ~\r"))
    await h.lines.queue.put("q")
    await h.finished()
    events = [e["event"] for e in h.log.events()]
    assert "refused_request" in events and "command_run" not in events
    assert "Refused: the technician tried to open a terminal" in h.console.export_text()


async def test_a_capability_missing_from_the_grant_is_never_opened(
    state: AgentState, server_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> None:
    h = harness(state, server_key, technician_key, capabilities=(Capability.CHAT,))
    await h.activate(granted=("chat", "terminal"))
    await h.send_app(ChannelId.TERMINAL, TerminalOpen(terminal_id=5, cols=80, rows=24))
    assert await h.next_app() == TerminalExit(terminal_id=5, exit_code=126)
    assert len(h.runner.terminals) == 0
    await h.lines.queue.put(Signal.INTERRUPT)  # Ctrl-C
    end = await h.next_sent(SessionEnd)
    assert (end.ended_by, end.reason) == ("end_user", "user_ended")
    await h.finished()


async def test_terminal_runs_reports_commands_and_stops_on_revoke(
    state: AgentState, server_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> None:
    h = harness(state, server_key, technician_key)
    await h.activate()
    await h.send_app(ChannelId.TERMINAL, TerminalOpen(terminal_id=1, cols=80, rows=24))
    used = await h.next_sent(SessionActivity)
    # The first use is reported (what the one report counts as used), then the terminal.
    assert (used.kind, used.capability) == ("capability_used", "terminal")
    opened = await h.next_sent(SessionActivity)
    # The grant names no auditor key: the kind goes, the details stay on the device.
    assert (opened.kind, opened.sealed_details) == ("terminal_opened", None)
    await h.send_app(ChannelId.TERMINAL, TerminalInput(terminal_id=1, data=b"echo hel''lo\r"))
    activity = await h.next_sent(SessionActivity)
    assert (activity.kind, activity.sealed_details, activity.capability) == (
        "command_run", None, "terminal",
    )  # fmt: skip
    output = b""
    while b"hello" not in output:
        message = await h.next_app()
        if isinstance(message, TerminalOutput):
            output += message.data
    await h.lines.queue.put("r terminal")
    revoke = await h.next_sent(CapabilityRevoke)
    assert (revoke.capability, revoke.revoked_by) == ("terminal", "end_user")
    assert len(h.runner.terminals) == 0
    await h.send_app(ChannelId.TERMINAL, TerminalOpen(terminal_id=2, cols=80, rows=24))
    while True:
        message = await h.next_app()
        if isinstance(message, TerminalExit) and message.terminal_id == 2:
            break
    assert message.exit_code == 126
    await h.lines.queue.put("q")
    await h.finished()
    report = build_report(h.log.events())
    assert report.commands[0][1] == "echo hel''lo"
    assert "terminal" in report.used and "terminal (revoked)" in report.granted


async def test_chat_goes_both_ways(
    state: AgentState, server_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> None:
    h = harness(state, server_key, technician_key)
    await h.activate()
    await h.send_app(ChannelId.CHAT, ChatMessage(text="Hola, soy Ana", sent_at=now()))
    await h.lines.queue.put("Gracias, el correo no funciona")
    reply = await h.next_app()
    assert isinstance(reply, ChatMessage) and reply.text == "Gracias, el correo no funciona"
    await h.lines.queue.put("q")
    await h.finished()
    assert "Ana López: Hola, soy Ana" in h.console.export_text()


@pytest.mark.parametrize("attack", ["tampered", "replayed", "out_of_order", "truncated"])
async def test_any_e2e_error_ends_the_session_with_protocol_error(
    attack: str,
    state: AgentState,
    server_key: Ed25519PrivateKey,
    technician_key: X25519PrivateKey,
) -> None:
    h = harness(state, server_key, technician_key)
    await h.activate()
    assert h.tech is not None
    message = ChatMessage(text="hola", sent_at=now())
    if attack == "tampered":
        frame = bytearray(h.tech.seal(ChannelId.CHAT, b'{"x":1}'))
        frame[-1] ^= 1
        await h.link.incoming.put(bytes(frame))
    elif attack == "replayed":
        frame = await h.send_app(ChannelId.CHAT, message)
        await h.link.incoming.put(frame)
    elif attack == "out_of_order":
        h.tech.seal(ChannelId.CHAT, b"dropped by the relay")
        await h.send_app(ChannelId.CHAT, message)
    else:
        await h.link.incoming.put(b"\x01\x01\x00short")
    end = await h.next_sent(SessionEnd)
    assert (end.ended_by, end.reason, end.detail) == ("agent", "protocol_error", f"e2e.{attack}")
    ended = await h.finished()
    assert ended.reason == "protocol_error"


async def test_the_agent_ends_the_session_at_the_grants_end(
    state: AgentState, server_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> None:
    issued = datetime.now(UTC) - timedelta(seconds=58)
    h = harness(state, server_key, technician_key, issued_at=issued, minutes=1)
    await h.activate()
    end = await h.next_sent(SessionEnd, seconds=10)
    assert (end.ended_by, end.reason) == ("agent", "time_limit")
    await h.finished()


async def test_an_extension_moves_the_end_only_once_the_person_accepts_it(
    state: AgentState, server_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> None:
    h = harness(state, server_key, technician_key)
    await h.activate()
    before = h.runner.grant.not_after
    decision = {"support_session_id": "ss-1001", "approved": True, "decided_by": "server"}
    forged, _ = make_extension(Ed25519PrivateKey.generate(), h.grant, minutes=30)
    await h.link.incoming.put(SessionExtendDecision(id="x1", grant=forged, **decision))  # type: ignore[arg-type]
    later, proposed = make_extension(server_key, h.grant, minutes=30, reason="the driver update")
    await h.link.incoming.put(SessionExtendDecision(id="x2", grant=later, **decision))  # type: ignore[arg-type]
    await h.eventually(lambda: "driver update" in h.console.export_text(clear=False))
    text = h.console.export_text()
    assert "Extension NOT applied" in text
    assert h.runner.grant.not_after == before  # asked, not yet applied
    await h.lines.queue.put("y")
    answer = await h.next_sent(SessionExtendAnswer)
    body = verify_extension_receipt(state.device_public_key, answer.receipt)
    assert (body.decision, body.grant_nonce) == (ConsentDecision.GRANTED, proposed.nonce)
    assert body.new_not_after == before + timedelta(minutes=30)
    assert h.runner.grant.not_after == before + timedelta(minutes=30)
    await h.lines.queue.put("q")
    await h.finished()


async def test_an_extension_refused_or_unanswered_leaves_the_end_where_it_was(
    state: AgentState, server_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> None:
    h = harness(state, server_key, technician_key)
    await h.activate()
    before = h.runner.grant.not_after
    decision = {"support_session_id": "ss-1001", "approved": True, "decided_by": "server"}
    refused, _ = make_extension(server_key, h.grant, minutes=10)
    await h.link.incoming.put(SessionExtendDecision(id="x1", grant=refused, **decision))  # type: ignore[arg-type]
    await h.eventually(lambda: "Allow the extension?" in h.console.export_text(clear=False))
    await h.lines.queue.put("n")
    answer = await h.next_sent(SessionExtendAnswer)
    assert verify_extension_receipt(state.device_public_key, answer.receipt).decision == (
        ConsentDecision.REFUSED
    )
    silent, _ = make_extension(
        server_key, h.grant, minutes=10, note={"answer_within_seconds": 1}
    )
    await h.link.incoming.put(SessionExtendDecision(id="x2", grant=silent, **decision))  # type: ignore[arg-type]
    answer = await h.next_sent(SessionExtendAnswer)
    assert verify_extension_receipt(state.device_public_key, answer.receipt).decision == (
        ConsentDecision.TIMED_OUT
    )
    assert h.runner.grant.not_after == before
    await h.lines.queue.put("q")
    await h.finished()


async def test_server_end_finishes_with_a_report_and_lost_connection_ends_cleanly(
    state: AgentState, server_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> None:
    h = harness(state, server_key, technician_key)
    await h.activate()
    await h.link.incoming.put(
        SessionEnd(id="e1", support_session_id="ss-1001", ended_by="technician",  # type: ignore[arg-type]
                   reason="technician_ended")  # type: ignore[arg-type]
    )  # fmt: skip
    ended = await h.finished()
    assert (ended.ended_by, ended.reason) == ("technician", "technician_ended")

    again = harness(state, server_key, technician_key)
    await again.activate()
    await again.link.incoming.put(None)  # the connection drops and cannot be re-established
    ended = await again.finished()
    assert (ended.ended_by, ended.reason) == ("agent", "connection_lost")


async def test_the_servers_report_is_shown_only_when_the_pinned_key_signed_it(
    state: AgentState, server_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> None:
    # What the person is shown must be the server's signed word: a report rewritten on the way
    # (another summary, other capabilities) is refused and the device's own log stands.
    h = harness(state, server_key, technician_key)
    await h.activate()
    report = ServerReport(
        support_session_id="ss-1001", technician_name="Ana López", organisation_name="Escuela",
        state="ended", summary_state="pending",
    )  # fmt: skip
    forged = sign_document(Ed25519PrivateKey.generate(), report.model_dump(mode="json"),
                           kind=DocumentKind.SESSION_REPORT)  # fmt: skip
    wrong_kind = sign_document(server_key, report.model_dump(mode="json"), kind=DocumentKind.GRANT)
    written = report.model_copy(update={"summary_state": "written", "summary": "Fixed."})
    genuine = sign_document(server_key, written.model_dump(mode="json"),
                            kind=DocumentKind.SESSION_REPORT)  # fmt: skip
    await h.link.incoming.put(SessionEnd(id="e1", support_session_id="ss-1001",  # type: ignore[arg-type]
                                         ended_by="technician", reason="technician_ended"))  # type: ignore[arg-type]  # fmt: skip
    for index, signed in enumerate((forged, wrong_kind, genuine)):
        await h.link.incoming.put(
            SessionReportMessage(id=f"r{index}", support_session_id="ss-1001", report=signed)
        )
    await h.finished()
    assert h.runner.server_report == written
    refused = [e for e in h.log.events() if e["event"] == "report_refused"]
    assert len(refused) == 2
