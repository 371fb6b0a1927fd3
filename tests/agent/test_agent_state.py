"""The state directory: device key, trust-on-first-use pinning, receipts, activity log."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from auxilio.agent.consent import ConsentResult, sign_consent
from auxilio.agent.errors import AgentError, ServerKeyChanged
from auxilio.agent.state import AgentState
from auxilio.crypto.keys import encode_public_key, fingerprint
from auxilio.protocol.types import Capability, ConsentDecision

from .factories import make_grant, now


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_first_run_makes_a_private_state_dir_and_device_key(tmp_path: Path) -> None:
    AgentState(tmp_path / "state")
    assert mode(tmp_path / "state") == 0o700
    assert mode(tmp_path / "state" / "device-key.pem") == 0o600
    assert mode(tmp_path / "state" / "receipts") == 0o700


def test_the_device_key_survives_restarts(tmp_path: Path) -> None:
    first = AgentState(tmp_path / "state").device_public_key
    second = AgentState(tmp_path / "state").device_public_key
    assert encode_public_key(first) == encode_public_key(second)


def test_a_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    AgentState(tmp_path / "state")
    (tmp_path / "state" / "device-key.pem").chmod(0o644)
    with pytest.raises(AgentError) as caught:
        AgentState(tmp_path / "state")
    assert caught.value.code == "key.insecure_permissions"


def test_first_contact_pins_the_server_key(state: AgentState) -> None:
    key = Ed25519PrivateKey.generate().public_key()
    assert state.check_pin("https://help.example:443", fingerprint(key)) is None
    pinned = state.pin("https://help.example:443", key)
    assert pinned.fingerprint == fingerprint(key)
    assert mode(state.root / "known_servers.json") == 0o600
    again = state.check_pin("https://help.example:443", fingerprint(key))
    assert again is not None and again.fingerprint == fingerprint(key)


def test_a_changed_server_key_is_refused_with_exit_code_3(state: AgentState) -> None:
    state.pin("https://help.example:443", Ed25519PrivateKey.generate().public_key())
    other = Ed25519PrivateKey.generate().public_key()
    with pytest.raises(ServerKeyChanged) as caught:
        state.check_pin("https://help.example:443", fingerprint(other))
    assert caught.value.exit_code == 3
    assert "pinned" in caught.value.message
    with pytest.raises(ServerKeyChanged):
        state.pin("https://help.example:443", other)  # pinning again never replaces the key


def test_pins_are_per_server(state: AgentState) -> None:
    state.pin("https://a.example:443", Ed25519PrivateKey.generate().public_key())
    other = Ed25519PrivateKey.generate().public_key()
    assert state.check_pin("https://b.example:443", fingerprint(other)) is None


def test_receipts_are_kept_and_listed_verified(
    state: AgentState, server_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> None:
    _, grant = make_grant(server_key, state.device_public_key, technician_key)
    result = ConsentResult(
        prompt_text="the text",
        decisions={
            Capability.CHAT: ConsentDecision.GRANTED,
            Capability.TERMINAL: ConsentDecision.REFUSED,
        },
        decided_at=now(),
        timeout_seconds=60,
    )
    signed, receipt = sign_consent(state.device_key, grant, result)
    path = state.save_receipt(
        signed, receipt, technician_name="Ana López", organisation_name="Escuela", server="x"
    )
    assert mode(path) == 0o600
    [stored] = state.list_receipts()
    assert stored.receipt is not None and stored.problem is None
    assert stored.receipt.granted() == {Capability.CHAT}
    assert stored.technician_name == "Ana López"


def test_an_altered_stored_receipt_is_listed_as_invalid(
    state: AgentState, server_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> None:
    _, grant = make_grant(server_key, state.device_public_key, technician_key)
    result = ConsentResult("t", {Capability.CHAT: ConsentDecision.REFUSED}, now(), 60)
    signed, receipt = sign_consent(state.device_key, grant, result)
    path = state.save_receipt(
        signed, receipt, technician_name="A", organisation_name="B", server="x"
    )
    path.write_text(path.read_text().replace(signed.signature, "A" * 86))
    [stored] = state.list_receipts()
    assert stored.receipt is None and stored.problem == "receipt.bad_signature"


def test_activity_log_is_private_append_only_json_lines(state: AgentState) -> None:
    log = state.session_log("ss-1")
    log.append("command_run", subject="ls -la")
    log.append("ended", ended_by="end_user", reason="user_ended", detail="")
    assert [event["event"] for event in log.events()] == ["command_run", "ended"]
    assert mode(log.path) == 0o600
