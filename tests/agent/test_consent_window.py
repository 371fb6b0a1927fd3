"""The consent window: a real Tk window on a real X server (Xvfb), pressed like a person would."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from rich.console import Console

from auxilio.agent.consent import sign_consent
from auxilio.agent.consent_window import ConsentWindow, ask_consent_in_window, window_available
from auxilio.crypto.receipts import verify_receipt
from auxilio.protocol.types import ConsentDecision
from tests.agent import xserver
from tests.agent.factories import make_grant

display = xserver.display  # the fixture: a private Xvfb as DISPLAY


def grant_and_key(timeout: int = 10, default: str = "refused") -> tuple[Any, Ed25519PrivateKey]:
    device_key = Ed25519PrivateKey.generate()
    _, grant = make_grant(Ed25519PrivateKey.generate(), device_key.public_key(),
                               X25519PrivateKey.generate(), timeout_seconds=timeout,
                               on_timeout=default)  # fmt: skip
    return grant, device_key


def test_a_window_is_offered_only_where_there_is_a_display(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert window_available() is False


async def test_the_person_allows_one_capability_and_refuses_another(display: str) -> None:
    grant, device_key = grant_and_key()
    capabilities = [c.capability for c in grant.capabilities]
    assert len(capabilities) >= 2
    seen: dict[str, Any] = {}

    def press(window: ConsentWindow) -> None:
        window.buttons[(capabilities[0], "granted")].invoke()
        # Confirm stays disabled while a capability is unanswered.
        seen["confirm_while_open"] = str(window.confirm["state"])
        for other in capabilities[1:]:
            window.buttons[(other, "refused")].invoke()
        seen["confirm_when_done"] = str(window.confirm["state"])
        window.confirm.invoke()

    assert window_available()
    result = await ask_consent_in_window(Console(quiet=True), grant, on_ready=press)
    assert seen == {"confirm_while_open": "disabled", "confirm_when_done": "normal"}
    assert result.decisions[capabilities[0]] is ConsentDecision.GRANTED
    assert all(result.decisions[c] is ConsentDecision.REFUSED for c in capabilities[1:])
    # The receipt is signed over exactly the text the window showed.
    signed, receipt = sign_consent(device_key, grant, result)
    assert verify_receipt(device_key.public_key(), signed).granted() == {capabilities[0]}
    assert receipt.prompt_sha256 == hashlib.sha256(result.prompt_text.encode()).hexdigest()


async def test_nobody_answering_applies_the_default(display: str) -> None:
    grant, _ = grant_and_key(timeout=1)
    result = await ask_consent_in_window(Console(quiet=True), grant)
    assert set(result.decisions.values()) == {ConsentDecision.TIMED_OUT}
    assert result.granted() == frozenset()


async def test_refuse_all_refuses_even_what_was_allowed_but_not_confirmed(display: str) -> None:
    grant, _ = grant_and_key()
    first = grant.capabilities[0].capability

    def press(window: ConsentWindow) -> None:
        window.buttons[(first, "granted")].invoke()
        window.refuse_all.invoke()

    result = await ask_consent_in_window(Console(quiet=True), grant, on_ready=press)
    assert set(result.decisions.values()) == {ConsentDecision.REFUSED}
    assert result.granted() == frozenset()


async def test_at_the_deadline_given_answers_stand_and_the_rest_gets_the_default(
    display: str,
) -> None:
    grant, _ = grant_and_key(timeout=1)
    first = grant.capabilities[0].capability

    def press(window: ConsentWindow) -> None:
        window.buttons[(first, "granted")].invoke()

    result = await ask_consent_in_window(Console(quiet=True), grant, on_ready=press)
    assert result.decisions[first] is ConsentDecision.GRANTED
    assert all(d is ConsentDecision.TIMED_OUT for c, d in result.decisions.items() if c != first)


async def test_a_withdrawn_request_closes_the_window(display: str) -> None:
    grant, _ = grant_and_key(timeout=30)
    task = asyncio.create_task(ask_consent_in_window(Console(quiet=True), grant))
    await asyncio.sleep(0.5)
    task.cancel()
    started = time.monotonic()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The Tk thread saw the stop and closed; nothing is left waiting for 30 seconds.
    await asyncio.sleep(0.5)
    assert time.monotonic() - started < 25
    assert os.environ["DISPLAY"] == display
