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
from auxilio.crypto.grants import Grant, SignedGrant
from auxilio.protocol.types import Capability, CapabilityGrant, CapabilityLimits, ExtensionTerms

from .factories import make_extension, make_grant, make_offer, now

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
        ("offer_for_another_session", "grant.mismatch"),
        ("an_extension_as_an_offer", "grant.mismatch"),
        ("past_its_answer_by", "offer.expired"),
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
    clock = now()
    if case == "other_server":
        signer = Ed25519PrivateKey.generate()
    elif case == "expired":
        issued = now() - timedelta(hours=2)
    elif case == "other_device_key":
        device = Ed25519PrivateKey.generate().public_key()
    elif case == "other_device_id":
        device_id = "dev-1"  # this device was registered as dev-1; the grant names dev-9
    elif case == "past_its_answer_by":
        # Still inside its 30 minutes, but the offer had to be answered within 60 s + 60 s.
        clock = now() + timedelta(minutes=5)
    signed, grant = make_grant(signer, device, technician_key, issued_at=issued)
    offer = make_offer(signed, grant)
    if case == "offer_for_another_session":
        offer = offer.model_copy(update={"support_session_id": "ss-2002"})
    elif case == "an_extension_as_an_offer":
        extension_signed, extension = make_extension(server_key, grant)
        offer = make_offer(extension_signed, extension)
    with pytest.raises(AgentError) as caught:
        check_offer(
            offer,
            server_key=server_key.public_key(),
            device_key=state.device_public_key,
            device_id=device_id,
            now=clock,
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


def _check(grant: Grant, signed: SignedGrant | None, server_key: Ed25519PrivateKey,
           state: AgentState) -> Grant:  # fmt: skip
    return check_extension(
        grant, signed, server_key=server_key.public_key(), device_key=state.device_public_key,
        now=now(),
    )  # fmt: skip


def test_an_extension_chained_to_the_grant_moves_the_end_later(
    state: AgentState, server_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> None:
    _, grant = make_grant(server_key, state.device_public_key, technician_key)
    signed, _ = make_extension(server_key, grant, minutes=10)
    extended = _check(grant, signed, server_key, state)
    assert extended.not_after == grant.not_after + timedelta(minutes=10)
    again, _ = make_extension(server_key, extended, minutes=5)
    assert _check(extended, again, server_key, state).extension.sequence == 2  # type: ignore[union-attr]


def test_a_capabilitys_own_shorter_limit_is_not_lifted_by_an_extension(
    state: AgentState, server_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> None:
    # Observed: a re-signed grant lifted the terminal's own 30-minute limit to the session's end.
    _, grant = make_grant(server_key, state.device_public_key, technician_key, minutes=60)
    terminal_end = grant.issued_at + timedelta(minutes=30)
    grant = grant.model_copy(update={"capabilities": tuple(
        item.model_copy(update={"expires_at": terminal_end})
        if item.capability is Capability.TERMINAL else item for item in grant.capabilities
    )})  # fmt: skip
    honest, _ = make_extension(server_key, grant, minutes=10)
    checked = _check(grant, honest, server_key, state)
    assert checked.capability(Capability.TERMINAL, now=terminal_end) is None
    lifted, _ = make_extension(server_key, grant, minutes=10, capabilities=[
        item.model_copy(update={"expires_at": grant.not_after + timedelta(minutes=10)})
        for item in grant.capabilities
    ])  # fmt: skip
    with pytest.raises(AgentError) as caught:
        _check(grant, lifted, server_key, state)
    assert caught.value.code == "grant.mismatch"


def test_an_extension_beyond_the_signed_limits_is_refused(
    state: AgentState, server_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> None:
    # Observed: a grant re-signed by a compromised server pushed not_after to 2036.
    limits = ExtensionTerms(max_count=1, max_total_seconds=15 * 60)
    _, grant = make_grant(server_key, state.device_public_key, technician_key, extensions=limits)
    to_2036, _ = make_extension(server_key, grant, minutes=10 * 365 * 24 * 60)
    too_long, _ = make_extension(server_key, grant, minutes=20)
    for bad in (to_2036, too_long):
        with pytest.raises(AgentError) as caught:
            _check(grant, bad, server_key, state)
        assert caught.value.code == "extension.beyond_limit"
    _, first = make_extension(server_key, grant, minutes=10)
    second, _ = make_extension(server_key, first, minutes=1)
    with pytest.raises(AgentError) as caught:
        _check(first, second, server_key, state)
    assert caught.value.code == "extension.beyond_limit"
    # A server that signs wider terms into the extension itself is caught too.
    wider_terms, _ = make_extension(
        server_key, grant, minutes=60,
        extensions=ExtensionTerms(max_count=50, max_total_seconds=7 * 24 * 3600),
    )  # fmt: skip
    with pytest.raises(AgentError) as caught:
        _check(grant, wider_terms, server_key, state)
    assert caught.value.code == "grant.mismatch"


def test_an_extension_must_not_widen_anything_else(
    state: AgentState, server_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> None:
    _, grant = make_grant(server_key, state.device_public_key, technician_key)
    _, unrelated = make_grant(server_key, state.device_public_key, technician_key, minutes=60)
    wider, _ = make_extension(server_key, grant, capabilities=[
        *grant.capabilities,
        CapabilityGrant(capability=Capability.FILES, expires_at=grant.not_after),
    ])  # fmt: skip
    python = CapabilityLimits(shell="/usr/bin/python3")  # noqa: S604 - a grant limit, nothing runs
    other_shell, _ = make_extension(server_key, grant, capabilities=[
        item.model_copy(update={"limits": python})
        for item in grant.capabilities
    ])  # fmt: skip
    recorded, _ = make_extension(server_key, grant, recorded=True)
    other_text, _ = make_extension(
        server_key, grant,
        terms=grant.terms.model_copy(update={"legal_text": "Say yes to everything."}),
    )  # fmt: skip
    skips_a_link, _ = make_extension(server_key, grant, note={"sequence": 2})
    not_chained, _ = make_extension(server_key, grant, note={"previous_nonce": unrelated.nonce})
    earlier, _ = make_extension(server_key, grant, minutes=-5)
    plain_grant, _ = make_grant(server_key, state.device_public_key, technician_key, minutes=60)
    forged, _ = make_extension(Ed25519PrivateKey.generate(), grant)
    for bad, code in (
        (wider, "grant.mismatch"),
        (other_shell, "grant.mismatch"),
        (recorded, "grant.mismatch"),
        (other_text, "grant.mismatch"),
        (skips_a_link, "grant.mismatch"),
        (not_chained, "grant.mismatch"),
        (earlier, "grant.mismatch"),
        (plain_grant, "grant.mismatch"),
        (forged, "grant.bad_signature"),
        (None, "grant.missing"),
    ):
        with pytest.raises(AgentError) as caught:
            _check(grant, bad, server_key, state)
        assert caught.value.code == code, bad
