"""The device's side of an emergency end: the person reads why in their language (English or
Spanish), the device's own log keeps the reason, and the session runner finishes."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from rich.console import Console

from auxilio.agent.feed import Feed
from auxilio.agent.i18n import EN, ES, Texts
from auxilio.agent.state import AgentState
from auxilio.protocol.frames import SessionEnd
from auxilio.protocol.types import Capability, ConsentDecision
from tests.agent.factories import make_grant
from tests.agent.sessionkit import Harness


@pytest.mark.parametrize(
    ("texts", "said"),
    [(EN, "Session ended: emergency declared by the organisation."),
     (ES, "Sesión terminada: emergencia declarada por la organización.")],
    ids=["en", "es"],
)
async def test_the_person_reads_that_the_organisation_declared_an_emergency(
    tmp_path: Path, texts: Texts, said: str
) -> None:
    state = AgentState(tmp_path / "agent-state")
    server_key, technician_key = Ed25519PrivateKey.generate(), X25519PrivateKey.generate()
    _, grant = make_grant(server_key, state.device_public_key, technician_key)  # type: ignore[arg-type]
    console = Console(record=True, width=200, force_terminal=False)
    h = Harness(state, grant, technician_key,
                {Capability.CHAT: ConsentDecision.GRANTED,
                 Capability.TERMINAL: ConsentDecision.GRANTED},
                server_key.public_key(), feed=Feed(console, texts))  # fmt: skip
    h.start()
    await h.activate()
    await h.link.incoming.put(SessionEnd(
        id="e1", support_session_id=grant.support_session_id, ended_by="supervisor",  # type: ignore[arg-type]
        reason="emergency", detail="emergency 1234"))  # type: ignore[arg-type]
    assert h.task is not None
    ended = await h.task
    assert (ended.ended_by, ended.reason, ended.detail) == ("supervisor", "emergency",
                                                            "emergency 1234")
    shown = console.export_text()
    assert said in shown
    assert "(emergency, by supervisor)" not in shown and "(emergency, por supervisor)" not in shown
    logged = [e for e in state.session_log(grant.support_session_id).events()
              if e.get("event") == "ended"]
    assert logged and logged[-1]["reason"] == "emergency"
