"""The clipboard capability on the device, on a real Xvfb: the technician's text put on the
person's clipboard (read back by xsel, another program), the person's copied text read for the
technician, each a feed line and an activity; what is refused (no grant, an empty clipboard,
no display) with its code, and the dispatcher routing it behind the gate."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

pytest.importorskip("Xlib", reason="the screen extra (python-xlib) is not installed")

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from Xlib import display as xdisplay

from auxilio.agent.capabilities.clipboard import ClipboardHandler
from auxilio.agent.dispatch import refusal
from auxilio.agent.screen.clipboard import TO_DEVICE, ClipboardTransfer
from auxilio.protocol.clipboard import (
    ClipboardContent,
    ClipboardDone,
    ClipboardError,
    ClipboardGet,
    ClipboardSet,
)
from auxilio.protocol.frames import ActivityKind
from auxilio.protocol.types import Capability

from .capability_services import Recorder, make_recorder
from .screen.conftest import XServer, xvfb_screen
from .screen.test_clipboard import XselOwner, xsel_read

TEXT = "hola ñ, 12 €"  # 12 characters, 15 bytes of UTF-8


@pytest.fixture
def server() -> Iterator[XServer]:
    with xvfb_screen(64, 48) as found:
        # A desktop has the UTF8_STRING atom from its first programs; a fresh Xvfb has not,
        # and xsel then offers the person's text as STRING only (Latin-1).
        made = xdisplay.Display(found.name)
        made.intern_atom("UTF8_STRING")
        made.close()
        yield found


@pytest.fixture
def recorder(
    tmp_path: Path, server_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> Recorder:
    return make_recorder(
        tmp_path, server_key, technician_key, capabilities=(Capability.CHAT, Capability.CLIPBOARD)
    )


@pytest.fixture
async def handler(
    recorder: Recorder, server: XServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[ClipboardHandler]:
    monkeypatch.setenv("DISPLAY", server.name)
    made = ClipboardHandler(recorder.services())
    try:
        yield made
    finally:
        await made.close()


async def test_text_sent_is_on_the_persons_clipboard_and_in_their_feed(
    handler: ClipboardHandler, recorder: Recorder, server: XServer
) -> None:
    await handler.handle(ClipboardSet(request_id=7, text=TEXT))
    assert await recorder.next_sent() == ClipboardDone(request_id=7, size=15)
    assert await asyncio.to_thread(xsel_read, server.name) == TEXT
    assert "The technician put 12 characters on your clipboard." in recorder.feed_text()
    assert recorder.used == [Capability.CLIPBOARD]
    (activity,) = recorder.activities
    expected = ClipboardTransfer.of(TO_DEVICE, TEXT.encode())
    assert activity.kind is ActivityKind.CLIPBOARD_SET
    assert (activity.size, activity.sha256) == (15, expected.sha256)
    assert TEXT not in activity.subject


async def test_what_the_person_copied_is_read_for_the_technician(
    handler: ClipboardHandler, recorder: Recorder, server: XServer
) -> None:
    owner = await asyncio.to_thread(XselOwner, server.name, TEXT.encode())
    try:
        await handler.handle(ClipboardGet(request_id=8))
        assert await recorder.next_sent() == ClipboardContent(request_id=8, text=TEXT)
    finally:
        await asyncio.to_thread(owner.stop)
    assert "The technician read your clipboard (12 characters)." in recorder.feed_text()
    assert [a.kind for a in recorder.activities] == [ActivityKind.CLIPBOARD_READ]
    assert recorder.activities[0].size == 15


async def test_an_empty_clipboard_is_refused_with_its_code(
    handler: ClipboardHandler, recorder: Recorder
) -> None:
    await handler.handle(ClipboardGet(request_id=9))
    refused = await recorder.next_sent()
    assert isinstance(refused, ClipboardError)
    assert (refused.ref, refused.code) == (9, "screen.clipboard.empty")
    assert recorder.activities == [] and recorder.used == []


async def test_refused_without_the_grant_and_nothing_is_put(
    handler: ClipboardHandler, recorder: Recorder, server: XServer
) -> None:
    recorder.allowed.discard(Capability.CLIPBOARD)
    await handler.handle(ClipboardSet(request_id=3, text="secret"))
    refused = await recorder.next_sent()
    assert isinstance(refused, ClipboardError) and refused.code == "screen.clipboard.not_allowed"
    await handler.handle(ClipboardGet(request_id=4))
    refused = await recorder.next_sent()
    assert isinstance(refused, ClipboardError) and refused.code == "screen.clipboard.not_allowed"
    assert recorder.used == [] and recorder.activities == []
    assert "technician put" not in recorder.feed_text()


async def test_without_a_display_it_is_unavailable(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    handler = ClipboardHandler(recorder.services())
    try:
        await handler.handle(ClipboardSet(request_id=5, text="x"))
        refused = await recorder.next_sent()
        assert (
            isinstance(refused, ClipboardError) and refused.code == "screen.clipboard.unavailable"
        )
    finally:
        await handler.close()


async def test_after_close_requests_are_refused(
    handler: ClipboardHandler, recorder: Recorder
) -> None:
    await handler.close()
    await handler.handle(ClipboardGet(request_id=6))
    refused = await recorder.next_sent()
    assert isinstance(refused, ClipboardError) and refused.code == "screen.clipboard.not_allowed"


def test_the_dispatcher_refuses_each_request_with_its_reference() -> None:
    refused = refusal(ClipboardSet(request_id=11, text="a"), "not_allowed")
    assert refused == ClipboardError(
        ref=11, code="screen.clipboard.not_allowed", message="clipboard: not_allowed"
    )
    refused = refusal(ClipboardGet(request_id=12), "unavailable")
    assert isinstance(refused, ClipboardError) and refused.ref == 12
    assert refused.code == "screen.clipboard.unavailable"
