"""The agent verifies the grant itself, before showing any prompt."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import pexpect
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from auxilio.agent.errors import AgentError
from auxilio.agent.grants import check_extension, check_offer
from auxilio.agent.state import AgentState
from auxilio.protocol.types import Capability

from .factories import make_grant, make_offer, now

ENTRY = Path(__file__).with_name("consent_entry.py")


def test_a_valid_offer_gives_the_verified_grant(
    state: AgentState, server_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> None:
    signed, grant = make_grant(server_key, state.device_public_key, technician_key)
    checked = check_offer(
        make_offer(signed, grant),
        server_key=server_key.public_key(),
        device_key=state.device_public_key,
        device_id=None,
        now=now(),
    )
    assert checked == grant


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("other_server", "grant.bad_signature"),
        ("expired", "grant.expired"),
        ("other_device_key", "grant.wrong_device"),
        ("other_device_id", "grant.wrong_device"),
        ("prompt_names_another_technician", "grant.mismatch"),
    ],
)
def test_a_bad_grant_is_refused(
    case: str,
    code: str,
    state: AgentState,
    server_key: Ed25519PrivateKey,
    technician_key: X25519PrivateKey,
) -> None:
    signer, device, device_id, issued = server_key, state.device_public_key, None, now()
    prompt: dict[str, str] = {}
    if case == "other_server":
        signer = Ed25519PrivateKey.generate()
    elif case == "expired":
        issued = now() - timedelta(hours=2)
    elif case == "other_device_key":
        device = Ed25519PrivateKey.generate().public_key()
    elif case == "other_device_id":
        device_id = "dev-1"  # this device was registered as dev-1; the grant names dev-9
    else:
        prompt["technician_name"] = "Somebody Else"
    signed, grant = make_grant(signer, device, technician_key, issued_at=issued)
    with pytest.raises(AgentError) as caught:
        check_offer(
            make_offer(signed, grant, **prompt),
            server_key=server_key.public_key(),
            device_key=state.device_public_key,
            device_id=device_id,
            now=now(),
        )
    assert caught.value.code == code


@pytest.mark.parametrize("tamper", ["signature", "expired", "device"])
def test_a_bad_grant_never_reaches_the_prompt(tmp_path: Path, tamper: str) -> None:
    child = pexpect.spawn(
        sys.executable, [str(ENTRY), str(tmp_path), "--tamper", tamper], encoding="utf-8",
        timeout=20,
    )  # fmt: skip
    child.expect(r"REFUSED grant\.\w+")
    child.expect(pexpect.EOF)
    child.close()
    assert "Allow" not in (child.before or "")
    assert "Remote support request" not in (child.before or "")
    assert child.exitstatus == 1


def test_an_extension_may_only_move_the_end_later(
    state: AgentState, server_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> None:
    issued = now()
    _, grant = make_grant(server_key, state.device_public_key, technician_key, issued_at=issued)
    later, _ = make_grant(
        server_key, state.device_public_key, technician_key, issued_at=issued, minutes=60
    )
    extended = check_extension(
        grant, later, server_key=server_key.public_key(), device_key=state.device_public_key,
        now=now(),
    )  # fmt: skip
    assert extended.not_after > grant.not_after

    wider, _ = make_grant(
        server_key, state.device_public_key, technician_key, issued_at=issued, minutes=60,
        capabilities=(Capability.CHAT, Capability.TERMINAL, Capability.FILES),
    )  # fmt: skip
    other_shell, _ = make_grant(  # noqa: S604 - a grant limit, nothing is run
        server_key, state.device_public_key, technician_key, issued_at=issued, minutes=60,
        shell="/usr/bin/python3",
    )  # fmt: skip
    recorded, _ = make_grant(
        server_key, state.device_public_key, technician_key, issued_at=issued, minutes=60,
        recorded=True,
    )  # fmt: skip
    forged, _ = make_grant(
        Ed25519PrivateKey.generate(), state.device_public_key, technician_key, minutes=60
    )
    for bad, code in (
        (wider, "grant.mismatch"),
        (other_shell, "grant.mismatch"),
        (recorded, "grant.mismatch"),
        (forged, "grant.bad_signature"),
        (None, "grant.missing"),
    ):
        with pytest.raises(AgentError) as caught:
            check_extension(
                grant, bad, server_key=server_key.public_key(),
                device_key=state.device_public_key, now=now(),
            )  # fmt: skip
        assert caught.value.code == code
