"""The technician's mouse and keyboard reach the person's X display, validated, and let go."""

from __future__ import annotations

import select
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from Xlib import X
from Xlib import display as xdisplay

from auxilio.agent.screen.input import (
    COMBINATION_REFUSED,
    ENDED,
    OUT_OF_RANGE,
    PAUSED,
    RATE_LIMITED,
    REVOKED,
    UNKNOWN_BUTTON,
    UNKNOWN_KEY,
    Claim,
    InjectedLedger,
    InputRefused,
    InputState,
    Modifiers,
    RemoteInput,
)
from tests.agent.screen.test_display import xvfb_display

WAIT_SECONDS = 60.0


@dataclass(frozen=True)
class Area:
    left: int
    top: int
    width: int
    height: int


SCREEN = Area(0, 0, 1280, 1024)  # tests/agent/xserver.py's Xvfb screen


class Clock:
    """Time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class EventWindow:
    """A plain X window of a second client that records the pointer events it receives."""

    def __init__(self, name: str, x: int, y: int, width: int, height: int) -> None:
        self.x = xdisplay.Display(name)
        screen = self.x.screen()
        mask = X.ButtonPressMask | X.ButtonReleaseMask | X.PointerMotionMask
        self.window = screen.root.create_window(
            x, y, width, height, 0, screen.root_depth, X.InputOutput, X.CopyFromParent,
            background_pixel=screen.white_pixel, override_redirect=True, event_mask=mask,
        )  # fmt: skip
        self.window.map()
        self.x.sync()

    def next(self, kinds: tuple[int, ...]) -> Any:
        """The next event of one of ``kinds`` that this window receives."""
        while True:
            while self.x.pending_events():
                event = self.x.next_event()
                if event.type in kinds:
                    return event
            ready, _, _ = select.select([self.x.fileno()], [], [], WAIT_SECONDS)
            assert ready, f"no event of {kinds} arrived"

    def close(self) -> None:
        self.x.close()


@pytest.fixture
def x_display() -> Iterator[str]:
    with xvfb_display() as name:
        yield name


@pytest.fixture
def connection(x_display: str) -> Iterator[xdisplay.Display]:
    opened = xdisplay.Display(x_display)
    yield opened
    opened.close()


@pytest.fixture
def window(x_display: str) -> Iterator[EventWindow]:
    made = EventWindow(x_display, 200, 150, 400, 300)
    yield made
    made.close()


def keys_down(connection: xdisplay.Display) -> list[int]:
    """The keycodes the X server holds down now."""
    keymap = connection.query_keymap()
    return [
        byte * 8 + bit for byte, bits in enumerate(keymap) for bit in range(8) if bits >> bit & 1
    ]


def pointer(connection: xdisplay.Display) -> tuple[int, int, int]:
    reply = connection.screen().root.query_pointer()
    return reply.root_x, reply.root_y, reply.mask


def test_a_click_lands_on_the_window_at_the_scaled_place(
    connection: xdisplay.Display, window: EventWindow
) -> None:
    remote = RemoteInput(connection, SCREEN)
    # The technician's view is half the monitor's size: (150, 100) there is (300, 200) here,
    # which is (100, 50) inside the window at (200, 150).
    assert remote.move(150, 100, 640, 512) == (300, 200)
    remote.button(1, True)
    remote.button(1, False)
    pressed = window.next((X.ButtonPress,))
    released = window.next((X.ButtonRelease,))
    assert (pressed.detail, pressed.event_x, pressed.event_y) == (1, 100, 50)
    assert (released.detail, released.event_x, released.event_y) == (1, 100, 50)
    remote.button(3, True)
    remote.button(3, False)
    assert window.next((X.ButtonPress,)).detail == 3


def test_coordinates_are_those_of_the_chosen_monitor(
    connection: xdisplay.Display, window: EventWindow
) -> None:
    # A 640x480 monitor whose top-left corner is at (100, 100) of the X screen.
    remote = RemoteInput(connection, Area(100, 100, 640, 480))
    assert remote.move(0, 0, 640, 480) == (100, 100)
    assert remote.move(639, 479, 640, 480) == (739, 579)
    remote.move(320, 240, 1280, 960)  # (160, 120) of the monitor: (260, 220) of the screen
    remote.button(2, True)
    event = window.next((X.ButtonPress,))
    assert (event.detail, event.event_x, event.event_y) == (2, 60, 70)
    remote.select_monitor(Area(0, 0, 1280, 1024))
    assert remote.move(640, 512, 1280, 1024) == (640, 512)


def test_the_wheel_sends_buttons_4_to_7(connection: xdisplay.Display, window: EventWindow) -> None:
    remote = RemoteInput(connection, SCREEN)
    remote.move(300, 200, 1280, 1024)
    for direction, button in (("up", 4), ("down", 5), ("left", 6), ("right", 7)):
        remote.wheel(direction)
        assert window.next((X.ButtonPress,)).detail == button
        assert window.next((X.ButtonRelease,)).detail == button
    assert remote.held == (frozenset(), frozenset())


@pytest.mark.parametrize(
    ("x", "y", "width", "height"),
    [(-1, 10, 640, 480), (640, 10, 640, 480), (10, 480, 640, 480), (10, 10, 0, 480),
     (10, 10, 640, -5), (10, 10, 100_000, 480)],
)  # fmt: skip
def test_a_point_outside_the_view_is_refused_and_the_pointer_stays(
    connection: xdisplay.Display, x: int, y: int, width: int, height: int
) -> None:
    remote = RemoteInput(connection, SCREEN)
    remote.move(50, 60, 1280, 1024)
    with pytest.raises(InputRefused) as refused:
        remote.move(x, y, width, height)
    assert refused.value.code == OUT_OF_RANGE
    assert pointer(connection)[:2] == (50, 60)


def test_unknown_buttons_and_wheel_directions_are_refused(connection: xdisplay.Display) -> None:
    remote = RemoteInput(connection, SCREEN)
    for number in (0, 4, 8):
        with pytest.raises(InputRefused) as refused:
            remote.button(number, True)
        assert refused.value.code == UNKNOWN_BUTTON
    with pytest.raises(InputRefused) as refused:
        remote.wheel("sideways")
    assert refused.value.code == UNKNOWN_BUTTON
    assert pointer(connection)[2] & (X.Button1Mask | X.Button2Mask | X.Button3Mask) == 0


def test_a_key_that_cannot_be_sent_is_refused(connection: xdisplay.Display) -> None:
    remote = RemoteInput(connection, SCREEN)
    for code, key in (("", "Unidentified"), ("", "MediaPlayPause"), ("KeyA", "\x07"), ("KeyA", "")):
        with pytest.raises(InputRefused) as refused:
            remote.key(code, key, True)
        assert refused.value.code == UNKNOWN_KEY
    assert keys_down(connection) == []


def test_events_beyond_the_rate_are_refused_until_time_passes(
    connection: xdisplay.Display,
) -> None:
    clock = Clock()
    remote = RemoteInput(connection, SCREEN, max_events_per_second=5, clock=clock)
    for x in range(5):
        remote.move(x, 0, 1280, 1024)
    with pytest.raises(InputRefused) as refused:
        remote.move(100, 100, 1280, 1024)
    assert refused.value.code == RATE_LIMITED
    assert pointer(connection)[:2] == (4, 0)  # the refused one was not sent
    clock.now += 0.2  # one event's worth
    remote.move(7, 7, 1280, 1024)
    with pytest.raises(InputRefused):
        remote.wheel("up")
    clock.now += 1.0
    remote.move(8, 8, 1280, 1024)


def test_release_all_leaves_no_key_or_button_down(connection: xdisplay.Display) -> None:
    remote = RemoteInput(connection, SCREEN)
    remote.move(10, 10, 1280, 1024)
    remote.key("ControlLeft", "Control", True)
    remote.key("ShiftRight", "Shift", True)
    remote.key("ArrowLeft", "ArrowLeft", True)
    remote.key("AltRight", "AltGraph", True)
    remote.button(1, True)
    remote.button(3, True)
    assert len(keys_down(connection)) == 4
    assert pointer(connection)[2] & (X.Button1Mask | X.Button3Mask)
    remote.release_all()
    assert keys_down(connection) == []
    assert pointer(connection)[2] & (X.Button1Mask | X.Button3Mask) == 0
    assert remote.held == (frozenset(), frozenset())


def test_a_pause_releases_what_is_held_and_drops_events_until_it_ends(
    connection: xdisplay.Display,
) -> None:
    clock = Clock()
    remote = RemoteInput(connection, SCREEN, clock=clock)
    remote.key("ShiftLeft", "Shift", True)
    remote.button(1, True)
    remote.pause_for(1.5)
    assert keys_down(connection) == []
    assert pointer(connection)[2] & X.Button1Mask == 0
    for event in (
        lambda: remote.move(5, 5, 1280, 1024),
        lambda: remote.button(1, True),
        lambda: remote.wheel("down"),
        lambda: remote.key("KeyA", "a", True),
    ):
        with pytest.raises(InputRefused) as refused:
            event()
        assert refused.value.code == PAUSED
    assert keys_down(connection) == []
    clock.now += 1.6
    assert not remote.paused
    remote.key("ShiftLeft", "Shift", True)
    assert len(keys_down(connection)) == 1
    remote.end()


def test_revoke_releases_and_refuses_everything_after(connection: xdisplay.Display) -> None:
    remote = RemoteInput(connection, SCREEN)
    remote.key("ControlLeft", "Control", True)
    remote.button(2, True)
    remote.revoke()
    assert remote.state is InputState.REVOKED
    assert keys_down(connection) == []
    assert pointer(connection)[2] & X.Button2Mask == 0
    with pytest.raises(InputRefused) as refused:
        remote.move(1, 1, 10, 10)
    assert refused.value.code == REVOKED
    remote.end()
    with pytest.raises(InputRefused) as refused:
        remote.key("KeyA", "a", True)
    assert refused.value.code == ENDED


def test_the_end_gives_the_spare_keycodes_back(connection: xdisplay.Display) -> None:
    remote = RemoteInput(connection, SCREEN)
    first = connection.display.info.min_keycode
    before = connection.get_keyboard_mapping(first, connection.display.info.max_keycode - first + 1)
    remote.key("KeyQ", "☃", True)  # a snowman is on no layout: a spare keycode is bound to it
    during = connection.get_keyboard_mapping(first, len(before))
    assert [row[0] for row in during].count(0x1000000 + ord("☃")) == 1
    remote.end()
    assert connection.get_keyboard_mapping(first, len(before)) == before
    assert keys_down(connection) == []


def test_a_modifier_the_browser_says_is_up_is_released(connection: xdisplay.Display) -> None:
    remote = RemoteInput(connection, SCREEN)
    remote.key("ControlLeft", "Control", True)
    remote.key("ShiftLeft", "Shift", True)
    assert len(keys_down(connection)) == 2
    # The browser lost Control's key up (the console tab lost focus): the next event says so.
    remote.key("ArrowDown", "ArrowDown", True, Modifiers(ctrl=False, shift=True))
    remote.key("ArrowDown", "ArrowDown", False, Modifiers(ctrl=False, shift=True))
    assert remote.held[0] == frozenset({0xFFE1})
    assert len(keys_down(connection)) == 1
    remote.end()


def test_every_event_sent_is_in_the_ledger_first(connection: xdisplay.Display) -> None:
    clock = Clock()
    ledger = InjectedLedger(clock)
    remote = RemoteInput(connection, SCREEN, ledger=ledger)
    remote.move(30, 40, 1280, 1024)
    remote.button(1, True)
    remote.button(1, False)
    assert ledger.claim(X.MotionNotify, 0, 30, 40) is Claim.SENT
    assert ledger.claim(X.MotionNotify, 0, 30, 40) is Claim.NOT_OURS  # claimed once
    assert ledger.claim(X.MotionNotify, 0, 31, 40) is Claim.NOT_OURS
    assert ledger.claim(X.ButtonPress, 1, 0, 0) is Claim.SENT
    assert ledger.claim(X.ButtonPress, 3, 0, 0) is Claim.NOT_OURS
    clock.now += 60  # an event never seen back is forgotten, not claimed forever
    assert ledger.claim(X.ButtonRelease, 1, 0, 0) is Claim.NOT_OURS


def test_a_key_we_hold_repeating_is_told_from_a_sent_one(connection: xdisplay.Display) -> None:
    ledger = InjectedLedger()
    remote = RemoteInput(connection, SCREEN, ledger=ledger)
    remote.key("ArrowDown", "ArrowDown", True)
    (keycode,) = keys_down(connection)
    assert ledger.claim(X.KeyPress, keycode, 0, 0) is Claim.SENT
    assert ledger.claim(X.KeyPress, keycode, 0, 0) is Claim.HELD  # the server's autorepeat
    remote.key("ArrowDown", "ArrowDown", False)
    assert ledger.claim(X.KeyRelease, keycode, 0, 0) is Claim.SENT
    assert ledger.claim(X.KeyPress, keycode, 0, 0) is Claim.NOT_OURS


@pytest.mark.parametrize(
    ("code", "key"), [("Backspace", "Backspace"), ("F1", "F1"), ("F12", "F12")]
)
def test_ctrl_alt_keys_of_the_x_server_itself_are_refused(
    connection: xdisplay.Display, code: str, key: str
) -> None:
    remote = RemoteInput(connection, SCREEN)
    remote.key("ControlLeft", "Control", True)
    remote.key("AltLeft", "Alt", True)
    with pytest.raises(InputRefused) as refused:
        remote.key(code, key, True)
    assert refused.value.code == COMBINATION_REFUSED
    assert len(keys_down(connection)) == 2  # Control and Alt only
    remote.key("AltLeft", "Alt", False)
    remote.key(code, key, True)  # Ctrl+F1 or Ctrl+Backspace is a program's: sent
    assert len(keys_down(connection)) == 2
    remote.end()
