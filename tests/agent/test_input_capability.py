"""The input capability (remote control) on the device, on a real Xvfb: the technician's pointer
scaled from their picture onto the monitor being viewed, keys typed, what is refused (no grant,
no screen view, the view paused, bad events), the person's own input pausing it, and the end
releasing what the technician held."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

pytest.importorskip("Xlib", reason="the screen extra (python-xlib) is not installed")
for module in ("mss", "av", "numpy"):
    pytest.importorskip(module, reason=f"the screen extra ({module}) is not installed")

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey  # noqa: E402
from Xlib import display as xdisplay  # noqa: E402

from auxilio.agent.capabilities.input import InputHandler  # noqa: E402
from auxilio.agent.capabilities.screen import ScreenHandler  # noqa: E402
from auxilio.agent.dispatch import refusal  # noqa: E402
from auxilio.protocol.app import (  # noqa: E402
    CHANNEL_OF,
    AppMessage,
    decode_app_message,
    encode_app_message,
)
from auxilio.protocol.binary import ChannelId  # noqa: E402
from auxilio.protocol.errors import ProtocolError  # noqa: E402
from auxilio.protocol.frames import ActivityKind  # noqa: E402
from auxilio.protocol.remote_control import (  # noqa: E402
    InputError,
    InputKey,
    InputPaused,
    InputPointer,
    InputResumed,
    InputRevoked,
)
from auxilio.protocol.screen import ScreenConfig, ScreenStart  # noqa: E402
from auxilio.protocol.types import Capability  # noqa: E402

from .capability_services import Recorder, make_recorder  # noqa: E402
from .screen.conftest import XServer, xvfb_screen  # noqa: E402
from .screen.test_input import keys_down, pointer  # noqa: E402
from .xserver import need_xdotool  # noqa: E402

PAUSE_SECONDS = 0.5


@pytest.fixture
def server() -> Iterator[XServer]:
    with xvfb_screen(320, 240) as found:
        yield found


@pytest.fixture
def connection(server: XServer) -> Iterator[xdisplay.Display]:
    made = xdisplay.Display(server.name)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def recorder(
    tmp_path: Path, server_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> Recorder:
    return make_recorder(
        tmp_path, server_key, technician_key,
        capabilities=(Capability.CHAT, Capability.SCREEN, Capability.INPUT),
    )  # fmt: skip


class Handlers:
    def __init__(self, recorder: Recorder) -> None:
        services = recorder.services()
        self.services = services
        self.screen = ScreenHandler(services)
        services.handler = lambda c: self.screen if c is Capability.SCREEN else None
        self.input = InputHandler(services, pause_seconds=PAUSE_SECONDS)

    async def view(self, recorder: Recorder) -> None:
        await self.screen.handle(ScreenStart(codecs=("jpeg",), max_fps=5))
        while not isinstance(await recorder.next_sent(), ScreenConfig):
            pass


@pytest.fixture
async def handlers(
    recorder: Recorder, server: XServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Handlers]:
    monkeypatch.setenv("DISPLAY", server.name)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("XDG_SESSION_TYPE", raising=False)
    made = Handlers(recorder)
    try:
        yield made
    finally:
        await made.input.close()
        await made.screen.close()


async def next_of(recorder: Recorder, kind: type[AppMessage]) -> AppMessage:
    """The next message of ``kind``, the screen's own messages skipped."""
    while True:
        message = await recorder.next_sent()
        if isinstance(message, kind):
            return message
        assert not message.type.startswith("input."), message


async def test_the_pointer_lands_scaled_on_the_viewed_monitor_and_buttons_are_released_at_the_end(
    handlers: Handlers, recorder: Recorder, connection: xdisplay.Display
) -> None:
    await handlers.view(recorder)
    # The viewer's picture is half the monitor's size: (50, 30) is (100, 60) on the monitor.
    await handlers.input.handle(InputPointer(x=50, y=30, width=160, height=120, down=(1,)))
    x, y, mask = pointer(connection)
    assert (x, y) == (100, 60)
    assert mask & (1 << 8), "button 1 is held"
    assert recorder.used == [Capability.SCREEN, Capability.INPUT]
    assert [a.kind for a in recorder.activities][-1] is ActivityKind.INPUT_SENT
    assert "is controlling your mouse and keyboard" in recorder.feed_text()
    assert "Ctrl+Shift+Escape" in recorder.feed_text()
    await handlers.input.handle(InputKey(code="ShiftLeft", key="Shift", down=True, shift=True))
    assert keys_down(connection), "Shift is held"
    await handlers.input.close()
    assert isinstance(await next_of(recorder, InputRevoked), InputRevoked)
    assert keys_down(connection) == []
    assert not pointer(connection)[2] & (1 << 8), "button 1 was released"
    assert "no longer controls your mouse" in recorder.feed_text()


async def test_a_typed_letter_reaches_the_x_server(
    handlers: Handlers, recorder: Recorder, connection: xdisplay.Display
) -> None:
    await handlers.view(recorder)
    root = connection.screen().root
    window = root.create_window(0, 0, 320, 240, 0, connection.screen().root_depth,
                                event_mask=0x1)  # KeyPressMask  # fmt: skip
    window.map()
    connection.sync()
    await handlers.input.handle(InputPointer(x=10, y=10, width=320, height=240))
    window.set_input_focus(0, 0)
    connection.sync()
    await handlers.input.handle(InputKey(code="KeyA", key="a", down=True))
    await handlers.input.handle(InputKey(code="KeyA", key="a", down=False))
    event = await asyncio.to_thread(connection.next_event)
    while event.type != 2:  # KeyPress; MappingNotify and the like come first
        event = await asyncio.to_thread(connection.next_event)
    keysym = connection.keycode_to_keysym(event.detail, 0)
    assert keysym == ord("a")


async def test_refused_without_the_grant_without_a_view_or_while_the_view_is_paused(
    handlers: Handlers, recorder: Recorder, connection: xdisplay.Display
) -> None:
    await handlers.input.handle(InputPointer(x=5, y=5, width=320, height=240))
    refused = await next_of(recorder, InputError)
    assert isinstance(refused, InputError) and refused.code == "screen.input.not_viewing"
    await handlers.view(recorder)
    await handlers.screen.set_paused(True)
    await handlers.input.handle(InputPointer(x=5, y=5, width=320, height=240))
    refused = await next_of(recorder, InputError)
    assert isinstance(refused, InputError) and refused.code == "screen.input.view_paused"
    await handlers.screen.set_paused(False)
    recorder.allowed.discard(Capability.INPUT)
    await handlers.input.handle(InputPointer(x=5, y=5, width=320, height=240))
    refused = await next_of(recorder, InputError)
    assert isinstance(refused, InputError) and refused.code == "screen.input.not_allowed"
    assert pointer(connection)[:2] != (5, 5), "nothing was sent"
    assert Capability.INPUT not in recorder.used


async def test_an_unknown_key_is_refused_with_its_code(
    handlers: Handlers, recorder: Recorder
) -> None:
    await handlers.view(recorder)
    await handlers.input.handle(InputKey(code="NoSuchKey", key="Unidentified", down=True))
    refused = await next_of(recorder, InputError)
    assert isinstance(refused, InputError) and refused.code == "screen.input.unknown_key"


async def test_the_persons_own_pointer_pauses_control_then_it_resumes(
    handlers: Handlers, recorder: Recorder, server: XServer, connection: xdisplay.Display
) -> None:
    need_xdotool()
    await handlers.view(recorder)
    await handlers.input.handle(InputPointer(x=10, y=10, width=320, height=240))
    await asyncio.to_thread(
        subprocess.run, ["xdotool", "mousemove", "200", "150"],
        env={"DISPLAY": server.name}, check=True, timeout=30,
    )  # fmt: skip
    assert isinstance(await next_of(recorder, InputPaused), InputPaused)
    assert isinstance(await next_of(recorder, InputResumed), InputResumed)
    assert "input_paused" in recorder.events()
    await handlers.input.handle(InputPointer(x=20, y=20, width=320, height=240))
    assert pointer(connection)[:2] == (20, 20)


async def test_the_take_back_keys_tell_the_viewer_then_revoke_input_as_the_person(
    handlers: Handlers, recorder: Recorder, server: XServer
) -> None:
    need_xdotool()
    revoked: list[Capability] = []
    handlers.services.revoke_by_person = revoked.append
    await handlers.view(recorder)
    await handlers.input.handle(InputPointer(x=10, y=10, width=320, height=240))
    await asyncio.to_thread(
        subprocess.run, ["xdotool", "key", "ctrl+shift+Escape"],
        env={"DISPLAY": server.name}, check=True, timeout=30,
    )  # fmt: skip
    # The keys are the person's input too: a pause may come first.
    told = await recorder.next_sent()
    while isinstance(told, InputPaused | InputResumed) or not told.type.startswith("input."):
        told = await recorder.next_sent()
    assert isinstance(told, InputRevoked) and told.reason == "take_back", told
    for _ in range(100):
        if revoked:
            break
        await asyncio.sleep(0.05)
    assert revoked == [Capability.INPUT]


def test_the_wire_form_and_its_refusals() -> None:
    pointer_event = InputPointer(x=3, y=4, width=10, height=10, down=(1,), wheel_y=-2)
    assert decode_app_message(encode_app_message(pointer_event)) == pointer_event
    assert CHANNEL_OF[InputPointer] is ChannelId.INPUT
    assert CHANNEL_OF[InputKey] is ChannelId.INPUT
    bad = [
        b'{"type":"input.pointer","x":10,"y":4,"width":10,"height":10}',  # outside the view
        b'{"type":"input.pointer","x":1,"y":1,"width":10,"height":10,"down":[4]}',
        b'{"type":"input.pointer","x":1,"y":1,"width":10,"height":10,"wheel_y":11}',
        b'{"type":"input.key","code":"Key A","key":"a","down":true}',
        b'{"type":"input.key","code":"KeyA","key":"a","down":"yes"}',
        b'{"type":"input.error","code":"files.nope"}',
        b'{"type":"input.revoked","reason":"because"}',
    ]
    for data in bad:
        with pytest.raises(ProtocolError) as raised:
            decode_app_message(data)
        assert raised.value.code == "protocol.invalid_field", data


def test_a_refused_event_is_answered_with_an_input_error() -> None:
    answer = refusal(InputKey(code="KeyA", key="a", down=True), "not_allowed")
    assert answer == InputError(
        code="screen.input.not_allowed", message="remote control: not_allowed"
    )
