"""A dropped connection is retried with bounded backoff; the server may then end the session."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from auxilio.agent.connection import backoff_delays, server_address
from auxilio.agent.errors import AgentError
from auxilio.agent.state import AgentState
from auxilio.protocol.frames import SessionEnd, SessionStateMessage
from auxilio.protocol.types import Capability, ConsentDecision

from .factories import make_grant
from .sessionkit import Harness


def test_backoff_is_bounded_exponential_with_jitter() -> None:
    delays = list(backoff_delays())
    assert len(delays) == 5
    for delay, nominal in zip(delays, (1, 2, 4, 8, 15), strict=True):
        assert nominal / 2 <= delay <= nominal
    assert sum(delays) <= 30


@pytest.mark.parametrize(
    ("url", "websocket", "origin"),
    [
        ("http://127.0.0.1:8000", "ws://127.0.0.1:8000/ws/agent", "http://127.0.0.1:8000"),
        ("https://help.example", "wss://help.example:443/ws/agent", "https://help.example:443"),
        ("https://help.example/aux/", "wss://help.example:443/aux/ws/agent",
         "https://help.example:443"),
        ("wss://help.example:8443/ws/agent", "wss://help.example:8443/ws/agent",
         "https://help.example:8443"),
    ],
)  # fmt: skip
def test_server_urls_map_to_the_agent_endpoint(url: str, websocket: str, origin: str) -> None:
    address = server_address(url)
    assert (address.websocket_url, address.origin) == (websocket, origin)
    assert address.secure == websocket.startswith("wss")


def test_a_server_url_without_http_is_refused() -> None:
    with pytest.raises(AgentError) as caught:
        server_address("ftp://help.example")
    assert caught.value.code == "server.bad_url"


async def test_after_a_server_restart_the_agent_is_told_the_end_and_stops(
    state: AgentState, server_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> None:
    _, grant = make_grant(server_key, state.device_public_key, technician_key)
    consent = {
        Capability.CHAT: ConsentDecision.GRANTED,
        Capability.TERMINAL: ConsentDecision.GRANTED,
    }
    h = Harness(state, grant, technician_key, consent, server_key.public_key())
    reconnected: list[bool] = []

    async def reconnect() -> None:
        reconnected.append(True)
        await h.link.incoming.put(
            SessionEnd(id="e", support_session_id=grant.support_session_id, ended_by="server",  # type: ignore[arg-type]
                       reason="connection_lost", detail="server_restart")  # type: ignore[arg-type]
        )  # fmt: skip

    h.link.reconnect = reconnect  # type: ignore[method-assign]
    h.start()
    await h.link.incoming.put(
        SessionStateMessage(id="s", support_session_id=grant.support_session_id, state="active",  # type: ignore[arg-type]
                            changed_at=datetime.now(UTC))
    )  # fmt: skip
    await h.link.incoming.put(None)  # the connection drops
    ended = await h.finished()
    assert reconnected == [True]
    assert (ended.ended_by, ended.reason, ended.detail) == (
        "server", "connection_lost", "server_restart",
    )  # fmt: skip
