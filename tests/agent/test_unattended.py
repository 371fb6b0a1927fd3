"""The unattended check: the service takes a grant only inside the owner's own pre-authorisation,
and each refusal has its code."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from auxilio.agent.access import AccessEntry, AccessStore
from auxilio.agent.errors import AgentError
from auxilio.agent.grants import check_extension
from auxilio.agent.state import AgentState
from auxilio.agent.unattended import (
    UnattendedRefused,
    check_unattended,
    sign_answer,
    window_words,
)
from auxilio.crypto.grants import Grant
from auxilio.crypto.keys import fingerprint
from auxilio.crypto.preauth import AccessWindow
from auxilio.crypto.receipts import prompt_digest
from auxilio.protocol.types import Capability, ConsentDecision, ConsentTerms, ExtensionTerms

from .factories import LEGAL_TEXT, make_extension, make_grant

UTC = dt.UTC


def unattended_terms(pre_id: str | None, *, issued: dt.datetime, mode: str = "unattended") -> Any:
    return ConsentTerms(mode=mode, pre_authorisation_id=pre_id, legal_text=LEGAL_TEXT,
                        timeout_seconds=60, answer_by=issued + dt.timedelta(minutes=2))  # fmt: skip


class World:
    def __init__(self, state: AgentState, server_key: Ed25519PrivateKey,
                 technician_key: X25519PrivateKey) -> None:  # fmt: skip
        self.state = state
        self.server_key = server_key
        self.technician_key = technician_key
        self.access = AccessStore(state)
        self.fingerprint = fingerprint(server_key.public_key())
        self.now = dt.datetime.now(UTC).replace(microsecond=0)

    def pre(self, **changes: Any) -> AccessEntry:
        fields: dict[str, Any] = {
            "device_id": "dev-9", "organisation_id": "org-7",
            "server_fingerprint": self.fingerprint, "owner_name": "Rosa",
            "scope": (Capability.CHAT, Capability.TERMINAL),
            "window": AccessWindow(not_before=self.now - dt.timedelta(hours=1),
                                   not_after=self.now + dt.timedelta(days=2)),
            "now": self.now - dt.timedelta(hours=1),
        }  # fmt: skip
        fields.update(changes)
        return self.access.grant(**fields)

    def grant(self, pre_id: str | None, *, mode: str = "unattended", minutes: int = 30,
              **overrides: Any) -> Grant:  # fmt: skip
        overrides.setdefault("extensions", ExtensionTerms())  # as the server signs: none
        _, grant = make_grant(
            self.server_key, self.state.device_public_key, self.technician_key,
            issued_at=self.now, minutes=minutes,
            terms=unattended_terms(pre_id, issued=self.now, mode=mode), **overrides,
        )  # fmt: skip
        return grant

    def check(self, grant: Grant, **changes: Any) -> AccessEntry:
        fields: dict[str, Any] = {"device_id": "dev-9", "organisation_id": "org-7",
                                  "server_fingerprint": self.fingerprint,
                                  "now": self.now}  # fmt: skip
        fields.update(changes)
        return check_unattended(grant, self.access, **fields)


@pytest.fixture
def world(state: AgentState, server_key: Ed25519PrivateKey,
          technician_key: X25519PrivateKey) -> World:  # fmt: skip
    return World(state, server_key, technician_key)


def refused(world: World, grant: Grant, **changes: Any) -> str:
    with pytest.raises(UnattendedRefused) as caught:
        world.check(grant, **changes)
    return caught.value.code


def test_a_covered_grant_passes_and_is_signed_granted(world: World) -> None:
    entry = world.pre()
    grant = world.grant(entry.id)
    assert world.check(grant) == entry
    answer = sign_answer(world.state.device_key, grant, entry=entry, refusal=None, now=world.now)
    receipt = answer.receipt
    assert {d.decision for d in receipt.decisions} == {ConsentDecision.GRANTED}
    assert {d.capability for d in receipt.decisions} == {Capability.CHAT, Capability.TERMINAL}
    assert receipt.timeout_default == "granted" and receipt.grant_nonce == grant.nonce
    assert receipt.prompt_sha256 == prompt_digest(answer.prompt_text)
    assert answer.prompt_text.startswith(f"Unattended access pre-authorised by Rosa ({entry.id})")
    assert "Nobody was asked" in answer.prompt_text


def test_a_refusal_is_signed_refused(world: World) -> None:
    grant = world.grant("nope")
    with pytest.raises(UnattendedRefused) as caught:
        world.check(grant)
    answer = sign_answer(world.state.device_key, grant, entry=None, refusal=caught.value,
                         now=world.now)  # fmt: skip
    assert {d.decision for d in answer.receipt.decisions} == {ConsentDecision.REFUSED}
    assert answer.receipt.timeout_default == "refused"
    assert "pre_authorisation.unknown" in answer.prompt_text


def test_unknown(world: World) -> None:
    world.pre()
    assert refused(world, world.grant("not-on-this-device")) == "pre_authorisation.unknown"


def test_revoked(world: World) -> None:
    entry = world.pre()
    world.access.revoke(entry.id, "changed my mind")
    assert refused(world, world.grant(entry.id)) == "pre_authorisation.revoked"


def test_expired_is_outside_the_window(world: World) -> None:
    old = AccessWindow(not_before=world.now - dt.timedelta(days=3),
                       not_after=world.now - dt.timedelta(minutes=1))  # fmt: skip
    entry = world.pre(window=old, now=world.now - dt.timedelta(days=3))
    assert refused(world, world.grant(entry.id)) == "pre_authorisation.outside_window"


def test_shut_hours_are_outside_the_window(world: World) -> None:
    # Open only on a weekday other than today's: shut now.
    other = (world.now.weekday() + 3) % 7
    entry = world.pre(window=AccessWindow(not_before=world.now - dt.timedelta(hours=1),
                                          not_after=world.now + dt.timedelta(days=6),
                                          weekdays=(other,)))  # fmt: skip
    assert refused(world, world.grant(entry.id)) == "pre_authorisation.outside_window"


def test_a_session_past_the_windows_end_is_outside_the_window(world: World) -> None:
    short = AccessWindow(not_before=world.now - dt.timedelta(hours=1),
                         not_after=world.now + dt.timedelta(minutes=10))  # fmt: skip
    entry = world.pre(window=short)
    assert world.check(world.grant(entry.id, minutes=10)) == entry
    assert refused(world, world.grant(entry.id, minutes=30)) == "pre_authorisation.outside_window"


def test_scope(world: World) -> None:
    entry = world.pre(scope=(Capability.CHAT,))
    assert refused(world, world.grant(entry.id)) == "pre_authorisation.scope"
    narrower = world.grant(entry.id, capabilities=(Capability.CHAT,))
    assert world.check(narrower) == entry


def test_extensions(world: World) -> None:
    """An unattended grant allowing extensions is refused at the offer, and an extension of an
    unattended grant is refused even where its terms allow one (nobody at the device may
    stretch the owner's window)."""
    entry = world.pre()
    for terms in (ExtensionTerms(max_count=1, max_total_seconds=600),
                  ExtensionTerms(max_count=0, max_total_seconds=600)):  # fmt: skip
        assert refused(world, world.grant(entry.id, extensions=terms)) == (
            "pre_authorisation.extensions")
    grant = world.grant(entry.id, extensions=ExtensionTerms(max_count=1, max_total_seconds=600))
    signed, _ = make_extension(world.server_key, grant, minutes=5)
    with pytest.raises(AgentError) as caught:
        check_extension(grant, signed, server_key=world.server_key.public_key(),
                        device_key=world.state.device_public_key, now=world.now)  # fmt: skip
    assert caught.value.code == "extension.unattended"
    attended = world.grant(None, mode="attended",
                           extensions=ExtensionTerms(max_count=1, max_total_seconds=600))
    signed, _ = make_extension(world.server_key, attended, minutes=5)
    assert check_extension(attended, signed, server_key=world.server_key.public_key(),
                           device_key=world.state.device_public_key, now=world.now)  # fmt: skip


def test_wrong_device(world: World) -> None:
    entry = world.pre()
    grant = world.grant(entry.id)
    assert refused(world, grant, device_id="dev-other") == "pre_authorisation.wrong_device"
    other_org = world.pre(organisation_id="org-other")
    assert refused(world, world.grant(other_org.id)) == "pre_authorisation.wrong_device"
    other_server = world.pre(server_fingerprint="SHA256:0000 1111 2222")
    assert refused(world, world.grant(other_server.id)) == "pre_authorisation.wrong_device"
    for_other_device = world.pre(device_id="dev-other")
    assert refused(world, world.grant(for_other_device.id)) == "pre_authorisation.wrong_device"


def test_an_attended_grant_is_refused_by_the_service(world: World) -> None:
    world.pre()
    assert refused(world, world.grant(None, mode="attended")) == "offer.attended"


def test_window_words() -> None:
    window = AccessWindow(
        not_before=dt.datetime(2026, 11, 30, 15, tzinfo=UTC),
        not_after=dt.datetime(2026, 12, 7, 15, tzinfo=UTC), weekdays=(0, 1, 2, 3, 4),
        daily_start=dt.time(9), daily_end=dt.time(17), timezone="America/Mexico_City",
    )  # fmt: skip
    assert window_words(window) == (
        "Mon-Fri 09:00-17:00 (America/Mexico_City), 2026-11-30 09:00 until 2026-12-07 09:00"
    )
    weekend = AccessWindow(not_before=window.not_before, not_after=window.not_after,
                           weekdays=(5, 6))  # fmt: skip
    assert window_words(weekend).startswith("Sat,Sun all day (UTC)")
