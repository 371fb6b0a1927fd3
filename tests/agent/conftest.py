"""Keys for the agent tests: a server, a technician, and the agent's own state directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from auxilio.agent.state import AgentState


@pytest.fixture
def server_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def technician_key() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


@pytest.fixture
def state(tmp_path: Path) -> AgentState:
    return AgentState(tmp_path / "agent-state")
