"""The person's own input wins: their mouse or keyboard pauses the technician's, and
Ctrl+Shift+Escape on the device takes control back. Here xdotool is the person's hands: another
X client, whose events the watcher must tell from the ones ``RemoteInput`` sent."""

from __future__ import annotations

import queue
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from Xlib import display as xdisplay

from auxilio.agent.screen.input import PAUSED, REVOKED, InputRefused, InputState, RemoteInput
from auxilio.agent.screen.local_input import (
    RECORD_UNAVAILABLE,
    LocalActivity,
    LocalInputError,
    LocalInputWatcher,
)
from tests.agent.screen.test_display import xvfb_display, xvfb_without
from tests.agent.screen.test_input import keys_down
from tests.agent.xserver import need_xdotool

WAIT_SECONDS = 60.0


@dataclass(frozen=True)
class Area:
    left: int
    top: int
    width: int
    height: int


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Watched:
    display: str
    remote: RemoteInput
    clock: Clock
    pauses: queue.Queue[LocalActivity]
    take_backs: queue.Queue[bool]
    connection: xdisplay.Display
    watcher: LocalInputWatcher

    def wait_for_person_events(self, count: int) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        while self.watcher.person_events < count:
            assert time.monotonic() < deadline, f"{self.watcher.person_events} events seen"
            time.sleep(0.02)


@pytest.fixture
def watched() -> Iterator[Watched]:
    need_xdotool()
    with xvfb_display() as name:
        connection = xdisplay.Display(name)
        clock = Clock()
        remote = RemoteInput(connection, Area(0, 0, 1280, 1024), clock=clock)
        pauses: queue.Queue[LocalActivity] = queue.Queue()
        take_backs: queue.Queue[bool] = queue.Queue()
        watcher = LocalInputWatcher(
            name,
            remote,
            pause_seconds=1.5,
            on_pause=pauses.put,
            on_take_back=lambda: take_backs.put(True),
        )
        watcher.start()
        try:
            yield Watched(name, remote, clock, pauses, take_backs, connection, watcher)
        finally:
            watcher.stop()
            remote.end()
            connection.close()


def person(display: str, *args: str) -> None:
    """The person's hands: xdotool, an X client of its own."""
    subprocess.run(["xdotool", *args], env={"DISPLAY": display}, check=True, timeout=60)


def test_the_person_moving_the_mouse_pauses_remote_input_and_drops_its_events(
    watched: Watched,
) -> None:
    remote = watched.remote
    # The technician's own events first: the watcher sees them too, and must not count them.
    remote.move(10, 10, 1280, 1024)
    remote.button(1, True)
    remote.button(1, False)
    remote.wheel("down")
    remote.key("KeyA", "a", True)
    remote.key("ShiftLeft", "Shift", True)
    person(watched.display, "mousemove", "700", "500")
    # The first activity reported is the person's: ours, recorded before it, were told apart.
    first = watched.pauses.get(timeout=WAIT_SECONDS)
    assert first == LocalActivity("pointer", 700, 500)
    assert remote.paused
    assert keys_down(watched.connection) == []  # the technician's Shift was let go
    with pytest.raises(InputRefused) as refused:
        remote.move(20, 20, 1280, 1024)
    assert refused.value.code == PAUSED
    with pytest.raises(InputRefused):
        remote.key("KeyB", "b", True)
    pointer = watched.connection.screen().root.query_pointer()
    assert (pointer.root_x, pointer.root_y) == (700, 500)  # the dropped move was not sent
    # The moment passes (the remote's clock, moved by the test): the technician goes on.
    watched.clock.now += 1.6
    assert remote.move(30, 30, 1280, 1024) == (30, 30)
    assert remote.state is InputState.ACTIVE


def test_the_person_typing_pauses_remote_input(watched: Watched) -> None:
    person(watched.display, "key", "x")
    assert watched.pauses.get(timeout=WAIT_SECONDS).kind == "keyboard"
    with pytest.raises(InputRefused) as refused:
        watched.remote.wheel("up")
    assert refused.value.code == PAUSED
    assert watched.take_backs.empty()


def test_a_pause_is_reported_once_while_the_person_goes_on(watched: Watched) -> None:
    person(watched.display, "mousemove", "100", "100")
    assert watched.pauses.get(timeout=WAIT_SECONDS) == LocalActivity("pointer", 100, 100)
    person(watched.display, "mousemove", "200", "200")
    watched.wait_for_person_events(2)  # seen, within the pause: not reported again
    assert watched.pauses.empty()
    # After the moment, the next movement of theirs starts (and reports) a new pause.
    watched.clock.now += 1.6
    person(watched.display, "mousemove", "300", "300")
    assert watched.pauses.get(timeout=WAIT_SECONDS) == LocalActivity("pointer", 300, 300)
    assert watched.pauses.empty()


def test_ctrl_shift_escape_on_the_device_takes_control_back(watched: Watched) -> None:
    remote = watched.remote
    # The technician holds the right Control: xdotool's keys are the left ones, and it shares
    # the XTest keyboard with us (a real keyboard would not), so one key held by both would be
    # one press on the server.
    remote.key("ControlRight", "Control", True)
    remote.button(3, True)
    person(watched.display, "key", "ctrl+shift+Escape")
    assert watched.take_backs.get(timeout=WAIT_SECONDS)
    assert remote.state is InputState.REVOKED
    assert keys_down(watched.connection) == []
    watched.clock.now += 3600  # no pause is left: control is simply gone
    with pytest.raises(InputRefused) as refused:
        remote.move(1, 1, 1280, 1024)
    assert refused.value.code == REVOKED


def test_the_technician_cannot_send_the_take_back_combination(watched: Watched) -> None:
    remote = watched.remote
    remote.key("ControlLeft", "Control", True)
    remote.key("ShiftLeft", "Shift", True)
    remote.key("Escape", "Escape", True)
    remote.key("Escape", "Escape", False)
    remote.key("ShiftLeft", "Shift", False)
    remote.key("ControlLeft", "Control", False)
    person(watched.display, "mousemove", "640", "480")  # a marker: all ours came before it
    assert watched.pauses.get(timeout=WAIT_SECONDS) == LocalActivity("pointer", 640, 480)
    assert watched.take_backs.empty()
    assert remote.state is InputState.ACTIVE


def test_without_the_record_extension_the_watcher_refuses_to_start() -> None:
    with xvfb_without("RECORD") as name:
        connection = xdisplay.Display(name)
        try:
            remote = RemoteInput(connection, Area(0, 0, 640, 480))
            with pytest.raises(LocalInputError) as refused:
                LocalInputWatcher(name, remote)
            assert refused.value.code == RECORD_UNAVAILABLE
        finally:
            connection.close()
