"""The person hears at once that the technician's connection dropped, and when they are back
(``session.state`` reasons ``technician_lost`` and ``technician_back``)."""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from auxilio.agent.state import AgentState
from auxilio.protocol.frames import E2EHello, SessionStateMessage
from auxilio.protocol.types import Capability, ConsentDecision

from .factories import make_grant
from .sessionkit import Harness


def _state(h: Harness, reason: str, wait_seconds: int | None = None) -> SessionStateMessage:
    return SessionStateMessage(
        id=f"st-{reason}", support_session_id=h.grant.support_session_id, state="active",
        changed_at=datetime.now(UTC), granted=(Capability.CHAT,), reason=reason,
        wait_seconds=wait_seconds,
    )  # fmt: skip


def _harness(
    state: AgentState, server_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> Harness:
    _, grant = make_grant(server_key, state.device_public_key, technician_key)
    consent = {
        Capability.CHAT: ConsentDecision.GRANTED,
        Capability.TERMINAL: ConsentDecision.GRANTED,
    }
    made = Harness(state, grant, technician_key, consent, server_key.public_key())
    made.start()
    return made


async def test_the_person_is_told_how_long_the_server_waits_and_when_the_technician_is_back(
    state: AgentState, server_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> None:
    h = _harness(state, server_key, technician_key)
    await h.activate()
    await h.link.incoming.put(_state(h, "technician_lost", wait_seconds=60))
    await h.eventually(lambda: "connection dropped" in h.console.export_text(clear=False))
    shown = h.console.export_text(clear=False)
    assert "waiting up to 60 s for them to come back" in shown
    assert "do not reach them" in shown
    await h.link.incoming.put(_state(h, "technician_back"))
    await h.link.incoming.put(_state(h, "technician_ready"))
    await h.next_sent(E2EHello)  # a fresh handshake for the technician who came back
    assert f"{h.grant.technician_name} is connected again." in h.console.export_text(clear=False)
    events = [event["event"] for event in h.log.events()]
    assert "technician_lost" in events and "technician_back" in events
    await h.lines.queue.put("q")
    await h.finished()


async def test_without_a_known_wait_the_notice_still_comes(
    state: AgentState, server_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> None:
    h = _harness(state, server_key, technician_key)
    await h.activate()
    await h.link.incoming.put(_state(h, "technician_lost"))
    await h.eventually(lambda: "connection dropped" in h.console.export_text(clear=False))
    assert "waiting a little while" in h.console.export_text(clear=False)
    await h.lines.queue.put("q")
    await h.finished()
