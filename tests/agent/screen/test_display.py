"""What the desktop allows decides what is offered: X11 with XTest all, Wayland nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from auxilio.agent.screen.display import (
    CLIPBOARD_UNAVAILABLE_WAYLAND,
    CONTROL_UNAVAILABLE_NO_XTEST,
    CONTROL_UNAVAILABLE_WAYLAND,
    DISPLAY_UNREACHABLE,
    NO_DISPLAY,
    VIEW_UNAVAILABLE_WAYLAND,
    XProbe,
    desktop_support,
    probe_x_server,
)
from auxilio.protocol.types import Capability


@contextmanager
def xvfb_display(*extra: str) -> Iterator[str]:
    """A private 1280x1024 Xvfb (``extra`` arguments added), as ``DISPLAY``. It picks its own
    display number (``-displayfd``) and writes it once it accepts connections, so that
    parallel runs never race for a number."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb); .ci/run installs it")
    read, write = os.pipe()
    command = ["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x1024x24",
               "-nolisten", "tcp", "-noreset", *extra]  # fmt: skip
    proc = subprocess.Popen(command, pass_fds=(write,), stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as answer:
        number = answer.readline().strip()
    try:
        assert number, "Xvfb did not start"
        yield f":{number}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def xvfb_without(extension: str) -> AbstractContextManager[str]:
    """An Xvfb with ``extension`` switched off."""
    return xvfb_display("-extension", extension)


X11_WITH_XTEST = XProbe(extensions=frozenset({"XTEST", "RECORD", "XFIXES"}))


class Probe:
    """Answers as an X server would, and remembers whom it was asked about."""

    def __init__(self, answer: XProbe | None) -> None:
        self.answer = answer
        self.asked: list[str] = []

    def __call__(self, name: str) -> XProbe | None:
        self.asked.append(name)
        return self.answer


def test_an_x11_desktop_with_xtest_offers_view_control_and_clipboard() -> None:
    probe = Probe(X11_WITH_XTEST)
    found = desktop_support({"DISPLAY": ":0", "XDG_SESSION_TYPE": "x11"}, probe)
    assert (found.session, found.view, found.control, found.clipboard) == ("x11", True, True, True)
    assert found.capabilities == (Capability.SCREEN, Capability.INPUT, Capability.CLIPBOARD)
    assert found.reasons == {}
    assert probe.asked == [":0"]


def test_a_wayland_session_offers_no_control_even_with_xwayland_and_xtest() -> None:
    probe = Probe(X11_WITH_XTEST)
    env = {"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0", "XDG_SESSION_TYPE": "wayland"}
    found = desktop_support(env, probe)
    assert found.session == "wayland"
    assert not (found.view or found.control or found.clipboard)
    assert found.capabilities == ()
    assert found.reasons["control"] == CONTROL_UNAVAILABLE_WAYLAND
    assert found.reasons["view"] == VIEW_UNAVAILABLE_WAYLAND
    assert found.reasons["clipboard"] == CLIPBOARD_UNAVAILABLE_WAYLAND
    assert probe.asked == []  # the session type alone decides


def test_wayland_display_without_an_x_display_is_wayland() -> None:
    found = desktop_support({"WAYLAND_DISPLAY": "wayland-0"}, Probe(None))
    assert found.session == "wayland"
    assert found.reasons["control"] == CONTROL_UNAVAILABLE_WAYLAND


@pytest.mark.parametrize(
    "env",
    [
        {"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0"},  # session type not exported
        {"DISPLAY": ":0"},  # the X server itself says it is Xwayland
    ],
)
def test_xwayland_only_offers_no_control(env: dict[str, str]) -> None:
    probe = Probe(XProbe(extensions=frozenset({"XTEST", "XWAYLAND"})))
    found = desktop_support(env, probe)
    assert found.session == "wayland"
    assert found.capabilities == ()
    assert found.reasons["control"] == CONTROL_UNAVAILABLE_WAYLAND


def test_no_display_offers_nothing_and_asks_no_server() -> None:
    probe = Probe(X11_WITH_XTEST)
    found = desktop_support({"XDG_SESSION_TYPE": "tty"}, probe)
    assert found.session == "none"
    assert found.capabilities == ()
    assert set(found.reasons.values()) == {NO_DISPLAY}
    assert probe.asked == []


def test_an_x_server_that_does_not_answer_offers_nothing() -> None:
    found = desktop_support({"DISPLAY": ":99"}, Probe(None))
    assert found.capabilities == ()
    assert found.reasons["control"] == DISPLAY_UNREACHABLE


def test_x11_without_xtest_offers_the_view_but_not_control() -> None:
    found = desktop_support({"DISPLAY": ":0"}, Probe(XProbe(extensions=frozenset({"RECORD"}))))
    assert found.capabilities == (Capability.SCREEN, Capability.CLIPBOARD)
    assert found.clipboard
    assert found.reasons == {"control": CONTROL_UNAVAILABLE_NO_XTEST}


def test_the_real_probe_sees_xtest_on_xvfb() -> None:
    with xvfb_display() as name:
        found = desktop_support({"DISPLAY": name}, probe_x_server)
    assert found.capabilities == (Capability.SCREEN, Capability.INPUT, Capability.CLIPBOARD)


def test_the_real_probe_sees_an_xvfb_without_xtest() -> None:
    with xvfb_without("XTEST") as name:
        found = probe_x_server(name)
    assert found is not None
    assert not found.xtest
    support = desktop_support({"DISPLAY": name}, lambda _name: found)
    assert support.capabilities == (Capability.SCREEN, Capability.CLIPBOARD)
    assert support.reasons == {"control": CONTROL_UNAVAILABLE_NO_XTEST}


def test_a_display_nobody_listens_on_is_unreachable() -> None:
    number = next(n for n in range(600, 700) if not Path(f"/tmp/.X11-unix/X{n}").exists())
    found = desktop_support({"DISPLAY": f":{number}"}, probe_x_server)
    assert found.reasons["view"] == DISPLAY_UNREACHABLE
