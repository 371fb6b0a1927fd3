"""The session window on a real X server: the person stops a capability, answers an extension
and ends the session with real clicks (xdotool), and the runner does what the window asked."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from rich.console import Console

from auxilio.agent.consent_window import ask_consent_in_window
from auxilio.agent.feed import WindowFeed
from auxilio.agent.i18n import CATALOGUE, EN, Texts
from auxilio.agent.session_window import SessionWindow, into_loop
from auxilio.agent.state import AgentState
from auxilio.crypto.receipts import verify_extension_receipt
from auxilio.protocol.app import ChatMessage
from auxilio.protocol.binary import ChannelId
from auxilio.protocol.frames import (
    CapabilityRevoke,
    SessionEnd,
    SessionExtendAnswer,
    SessionExtendDecision,
)
from auxilio.protocol.types import Capability, ConsentDecision
from tests.agent import xserver
from tests.agent.factories import make_extension, make_grant, now
from tests.agent.sessionkit import Harness
from tests.agent.xserver import click, need_xdotool, screenshot

ROOT = Path(__file__).resolve().parents[2]
# Set to refresh the committed screenshots in docs/screenshots/ (see docs/support-sessions.md).
UPDATE_SCREENSHOTS = os.environ.get("AUXILIO_UPDATE_SCREENSHOTS") == "1"
WAIT = 60.0
display = xserver.display  # the fixture: a private Xvfb as DISPLAY


class Windowed:
    """A runner whose feed is a real session window (and a recorded console)."""

    def __init__(
        self,
        state: AgentState,
        server_key: Ed25519PrivateKey,
        technician_key: X25519PrivateKey,
        texts: Texts = EN,
        on_ready: Callable[[SessionWindow], None] | None = None,
    ) -> None:
        _, grant = make_grant(server_key, state.device_public_key, technician_key)
        consent = {c: ConsentDecision.GRANTED for c in (Capability.CHAT, Capability.TERMINAL)}
        loop = asyncio.get_running_loop()
        self.window = SessionWindow(on_event=into_loop(loop, lambda: self.h.runner.post),
                                    texts=texts, on_ready=on_ready)  # fmt: skip
        self.console = Console(record=True, width=200)
        self.h = Harness(state, grant, technician_key, consent, server_key.public_key(),
                         feed=WindowFeed(self.console, self.window))  # fmt: skip
        self.window.start()
        self.h.start()

    async def click(self, display: str, name: str) -> None:
        await asyncio.to_thread(click, display, name)

    async def close(self) -> None:
        await asyncio.to_thread(self.window.close)


@pytest.fixture
def xdotool() -> None:
    need_xdotool()


async def test_stop_in_the_window_revokes_terminal_and_end_session_ends_it(
    display: str,
    xdotool: None,
    state: AgentState,
    server_key: Ed25519PrivateKey,
    technician_key: X25519PrivateKey,
) -> None:
    w = Windowed(state, server_key, technician_key)
    try:
        await w.h.activate()
        await w.click(display, "auxilio-revoke-terminal")
        revoke = await w.h.next_sent(CapabilityRevoke, WAIT)
        assert (revoke.capability, revoke.revoked_by) == (Capability.TERMINAL, "end_user")
        assert not w.h.runner.allowed(Capability.TERMINAL)
        assert w.h.runner.allowed(Capability.CHAT)  # only what was stopped is stopped
        await w.h.eventually(lambda: "terminal revoked (end_user)" in w.console.export_text(
            clear=False), WAIT)  # fmt: skip
        await w.click(display, "auxilio-end-session")
        end = await w.h.next_sent(SessionEnd, WAIT)
        assert (end.ended_by, end.reason) == ("end_user", "user_ended")
        ended = await w.h.finished(WAIT)
        assert (ended.ended_by, ended.reason) == ("end_user", "user_ended")
    finally:
        await w.close()
    events = [(e["event"], e.get("by")) for e in w.h.log.events()]
    assert ("revoked", "end_user") in events and ("ended", None) in events


async def test_an_extension_is_accepted_and_another_refused_in_the_window(
    display: str,
    xdotool: None,
    state: AgentState,
    server_key: Ed25519PrivateKey,
    technician_key: X25519PrivateKey,
) -> None:
    w = Windowed(state, server_key, technician_key)
    decision = {"support_session_id": "ss-1001", "approved": True, "decided_by": "server"}
    try:
        await w.h.activate()
        before = w.h.runner.grant.not_after
        proposed, _ = make_extension(server_key, w.h.grant, minutes=20)
        await w.h.link.incoming.put(SessionExtendDecision(id="x1", grant=proposed, **decision))  # type: ignore[arg-type]
        await w.click(display, "auxilio-extension-accept")
        answer = await w.h.next_sent(SessionExtendAnswer, WAIT)
        body = verify_extension_receipt(state.device_public_key, answer.receipt)
        assert body.decision is ConsentDecision.GRANTED
        assert w.h.runner.grant.not_after == before + timedelta(minutes=20)

        again, _ = make_extension(server_key, w.h.runner.grant, minutes=10)
        await w.h.link.incoming.put(SessionExtendDecision(id="x2", grant=again, **decision))  # type: ignore[arg-type]
        await w.click(display, "auxilio-extension-refuse")
        answer = await w.h.next_sent(SessionExtendAnswer, WAIT)
        body = verify_extension_receipt(state.device_public_key, answer.receipt)
        assert body.decision is ConsentDecision.REFUSED
        assert w.h.runner.grant.not_after == before + timedelta(minutes=20)
        await w.click(display, "auxilio-end-session")
        await w.h.finished(WAIT)
    finally:
        await w.close()


@pytest.mark.parametrize("confirmed", [False, True])
async def test_closing_the_window_asks_and_ends_the_session_only_if_the_person_says_so(
    confirmed: bool,
    display: str,
    xdotool: None,
    monkeypatch: pytest.MonkeyPatch,
    state: AgentState,
    server_key: Ed25519PrivateKey,
    technician_key: X25519PrivateKey,
) -> None:
    from tkinter import messagebox

    asked: list[str] = []

    def answer(title: str, question: str, **_: object) -> bool:
        asked.append(question)
        return confirmed

    # The question itself is Tk's own dialog; the person's answer is what this test sets.
    monkeypatch.setattr(messagebox, "askyesno", answer)

    def close_it(window: SessionWindow) -> None:
        # What the window manager does when the person closes the window: the window's own
        # WM_DELETE_WINDOW handler runs, in the Tk thread.
        window.root.tk.eval(window.root.protocol("WM_DELETE_WINDOW"))

    w = Windowed(state, server_key, technician_key, on_ready=close_it)
    try:
        if confirmed:
            end = await w.h.next_sent(SessionEnd, WAIT)
            assert (end.ended_by, end.reason) == ("end_user", "user_ended")
        else:
            await w.h.eventually(lambda: bool(asked), WAIT)
            await w.h.activate()
            assert w.h.runner.ended is None and w.h.runner.allowed(Capability.TERMINAL)
            await w.click(display, "auxilio-end-session")
        await w.h.finished(WAIT)
    finally:
        await w.close()
    assert asked == [EN.close_question]


def _keep(picture: Path, name: str) -> None:
    """A screenshot is a PNG of a real window; kept in the docs only when asked to."""
    data = picture.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, f"{name}: not a real picture"
    if UPDATE_SCREENSHOTS:
        shutil.copyfile(picture, ROOT / "docs" / "screenshots" / name)


@pytest.mark.parametrize("lang", ["en", "es"])
async def test_screenshots_of_the_consent_and_session_windows(
    lang: str,
    display: str,
    xdotool: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    state: AgentState,
    server_key: Ed25519PrivateKey,
    technician_key: X25519PrivateKey,
) -> None:
    texts = CATALOGUE[lang]  # type: ignore[index]  # parametrised with the catalogue's keys
    # A zone people live in, so that the pictures show local time with its name.
    monkeypatch.setenv("TZ", "Europe/Madrid")
    time.tzset()
    _, grant = make_grant(server_key, state.device_public_key, technician_key,
                          timeout_seconds=120)  # fmt: skip
    asking = asyncio.create_task(ask_consent_in_window(Console(quiet=True), grant, texts=texts))
    picture = await asyncio.to_thread(screenshot, display, "Auxilio: .*", tmp_path / "c.png")
    await asyncio.to_thread(click, display, "auxilio-consent-refuse-all")
    result = await asyncio.wait_for(asking, WAIT)
    assert result.granted() == frozenset()
    _keep(picture, f"consent-window-{lang}.png")

    w = Windowed(state, server_key, technician_key, texts=texts)
    try:
        await w.h.activate()
        text = "Hola, soy Ana. Voy a revisar la impresora." if lang == "es" else (
            "Hi, this is Ana. I will look at the printer queue.")  # fmt: skip
        await w.h.send_app(ChannelId.CHAT, ChatMessage(text=text, sent_at=now()))
        await w.h.eventually(lambda: text in w.console.export_text(clear=False), WAIT)
        await asyncio.to_thread(click, display, "auxilio-revoke-terminal")
        await w.h.next_sent(CapabilityRevoke, WAIT)
        await asyncio.sleep(1)  # let the window draw the last lines before the picture
        picture = await asyncio.to_thread(screenshot, display, "Auxilio: .*", tmp_path / "s.png")
        _keep(picture, f"session-window-{lang}.png")
        await w.click(display, "auxilio-end-session")
        await w.h.finished(WAIT)
    finally:
        await w.close()
    monkeypatch.delenv("TZ")
    time.tzset()
