"""Browser keys become X keysyms, typed on the person's own layout: what the technician types
is what arrives, on us, gb, es, de and fr keyboards."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from Xlib import display as xdisplay

from auxilio.agent.screen.input import RemoteInput
from auxilio.agent.screen.keymap import (
    ISO_LEVEL3_SHIFT,
    UNKNOWN_KEY,
    HeldKey,
    NoKey,
    ServerKeymap,
    TypedText,
    UnknownKey,
    char_keysyms,
    translate,
)
from tests.agent.screen.test_display import xvfb_display

WAIT_SECONDS = 60.0
PHRASE = "Hola, ñandú! @#€"

# What a US technician's browser sends for each character of PHRASE: (code, key, shift held).
US_TECHNICIAN = {
    "H": ("KeyH", True), "o": ("KeyO", False), "l": ("KeyL", False), "a": ("KeyA", False),
    ",": ("Comma", False), " ": ("Space", False), "ñ": ("KeyN", False), "n": ("KeyN", False),
    "d": ("KeyD", False), "ú": ("KeyU", False), "!": ("Digit1", True), "@": ("Digit2", True),
    "#": ("Digit3", True), "€": ("KeyE", False),
}  # fmt: skip

# A Tk entry, as a person's program: it writes what it holds to a file after every change.
TEXT_WINDOW = """
import os, sys, tkinter
out = sys.argv[1]
root = tkinter.Tk()
root.geometry("600x60+40+40")
text = tkinter.StringVar()
entry = tkinter.Entry(root, textvariable=text, width=60)
entry.pack()
def save(*_):
    with open(out + ".tmp", "w", encoding="utf-8") as file:
        file.write(text.get())
    os.replace(out + ".tmp", out)
text.trace_add("write", save)
def ready():
    entry.focus_force()
    open(out + ".ready", "w").close()
root.after(200, ready)
root.mainloop()
"""


@dataclass(frozen=True)
class Area:
    left: int
    top: int
    width: int
    height: int


class TextWindow:
    def __init__(self, display: str, directory: Path) -> None:
        self.out = directory / "typed.txt"
        self.process = subprocess.Popen(
            [sys.executable, "-c", TEXT_WINDOW, str(self.out)], env={"DISPLAY": display}
        )
        ready = self.out.with_name("typed.txt.ready")
        deadline = time.monotonic() + WAIT_SECONDS
        while not ready.exists():
            assert self.process.poll() is None, "the Tk window did not start"
            assert time.monotonic() < deadline, "the Tk window did not take the focus"
            time.sleep(0.05)

    def wait_for(self, expected: str) -> str:
        """What the window holds once it holds ``expected``, or whatever it holds at the end
        of a generous wait (the assertion then shows the difference)."""
        deadline = time.monotonic() + WAIT_SECONDS
        held = ""
        while time.monotonic() < deadline:
            held = self.out.read_text(encoding="utf-8") if self.out.exists() else ""
            if held == expected:
                break
            time.sleep(0.05)
        return held

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


@pytest.fixture
def x_display() -> Iterator[str]:
    with xvfb_display() as name:
        yield name


def set_layout(display: str, layout: str) -> None:
    if shutil.which("setxkbmap") is None:
        pytest.skip("setxkbmap is not installed (apt-get install x11-xkb-utils)")
    subprocess.run(["setxkbmap", layout], env={"DISPLAY": display}, check=True, timeout=60)


def type_as_browser(remote: RemoteInput, text: str) -> None:
    """Key events as a US technician's browser sends them, Shift pressed around capitals."""
    for char in text:
        code, shift = US_TECHNICIAN[char]
        if shift:
            remote.key("ShiftLeft", "Shift", True)
        remote.key(code, char, True)
        remote.key(code, char, False)
        if shift:
            remote.key("ShiftLeft", "Shift", False)


# -- browser events to keysyms ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "key", "expected"),
    [
        ("KeyA", "a", TypedText("a")),
        ("KeyA", "A", TypedText("A")),
        ("Digit7", "7", TypedText("7")),
        ("Slash", "/", TypedText("/")),
        ("Semicolon", "ñ", TypedText("ñ")),
        ("Space", " ", TypedText(" ")),
        ("Enter", "Enter", HeldKey(0xFF0D)),
        ("NumpadEnter", "Enter", HeldKey(0xFF0D)),
        ("Backspace", "Backspace", HeldKey(0xFF08)),
        ("Tab", "Tab", HeldKey(0xFF09)),
        ("Escape", "Escape", HeldKey(0xFF1B)),
        ("F1", "F1", HeldKey(0xFFBE)),
        ("F12", "F12", HeldKey(0xFFC9)),
        ("ArrowLeft", "ArrowLeft", HeldKey(0xFF51)),
        ("PageDown", "PageDown", HeldKey(0xFF56)),
        ("Home", "Home", HeldKey(0xFF50)),
        ("Delete", "Delete", HeldKey(0xFFFF)),
        ("ShiftLeft", "Shift", HeldKey(0xFFE1)),
        ("ShiftRight", "Shift", HeldKey(0xFFE2)),
        ("ControlRight", "Control", HeldKey(0xFFE4)),
        ("AltLeft", "Alt", HeldKey(0xFFE9)),
        ("MetaLeft", "Meta", HeldKey(0xFFEB)),
        ("AltRight", "AltGraph", HeldKey(ISO_LEVEL3_SHIFT)),
        ("BracketLeft", "Dead", NoKey("dead key: the composed character follows")),
    ],
)
def test_browser_keys_translate_to_keysyms(code: str, key: str, expected: object) -> None:
    assert translate(code, key) == expected


@pytest.mark.parametrize("key", ["Unidentified", "MediaPlayPause", "\x1b", "", "x" * 17])
def test_keys_that_cannot_be_sent_are_refused_with_a_code(key: str) -> None:
    with pytest.raises(UnknownKey) as refused:
        translate("KeyA", key)
    assert refused.value.code == UNKNOWN_KEY


def test_characters_have_their_latin1_legacy_and_unicode_keysyms() -> None:
    assert char_keysyms("a") == (0x61, 0x1000061)
    assert char_keysyms("ñ") == (0xF1, 0x10000F1)
    assert char_keysyms("€") == (0x20AC, 0x10020AC)
    assert char_keysyms("☃") == (0x1002603,)


# -- the person's layout ----------------------------------------------------------------------


def test_a_keysym_is_found_at_its_level_on_the_current_layout(x_display: str) -> None:
    connection = xdisplay.Display(x_display)
    try:
        keymap = ServerKeymap(connection)
        set_layout(x_display, "us")
        at_us = keymap.locate(ord("@"))
        set_layout(x_display, "es")  # read again: the layout changed under us
        at_es = keymap.locate(ord("@"))
    finally:
        connection.close()
    assert at_us is not None and (at_us.shift, at_us.level3) == (True, False)
    assert at_es is not None and (at_es.shift, at_es.level3) == (False, True)
    assert at_us.keycode == at_es.keycode  # the same key, 2, at another level


@pytest.mark.parametrize("layout", ["us", "gb", "es", "de", "fr"])
def test_the_phrase_arrives_exactly_on_each_layout(
    x_display: str, tmp_path: Path, layout: str
) -> None:
    set_layout(x_display, layout)
    window = TextWindow(x_display, tmp_path)
    connection = xdisplay.Display(x_display)
    try:
        remote = RemoteInput(connection, Area(0, 0, 1280, 1024))
        first = connection.display.info.min_keycode
        count = connection.display.info.max_keycode - first + 1
        before = connection.get_keyboard_mapping(first, count)
        type_as_browser(remote, PHRASE)
        assert window.wait_for(PHRASE) == PHRASE
        remote.end()
        assert connection.get_keyboard_mapping(first, count) == before  # spare keys restored
    finally:
        window.close()
        connection.close()


def test_shortcuts_keep_control_held_while_text_is_typed(x_display: str, tmp_path: Path) -> None:
    set_layout(x_display, "de")
    window = TextWindow(x_display, tmp_path)
    connection = xdisplay.Display(x_display)
    try:
        remote = RemoteInput(connection, Area(0, 0, 1280, 1024))
        for char in "abc":
            remote.key(f"Key{char.upper()}", char, True)
        assert window.wait_for("abc") == "abc"
        # Ctrl+A is the start of the line in a Tk entry; what follows goes in front.
        remote.key("ControlLeft", "Control", True)
        remote.key("KeyA", "a", True)
        remote.key("KeyA", "a", False)
        remote.key("ControlLeft", "Control", False)
        remote.key("KeyZ", "z", True)
        assert window.wait_for("zabc") == "zabc"
        remote.end()
    finally:
        window.close()
        connection.close()


def test_caps_lock_on_the_device_does_not_change_what_is_typed(
    x_display: str, tmp_path: Path
) -> None:
    set_layout(x_display, "fr")
    window = TextWindow(x_display, tmp_path)
    connection = xdisplay.Display(x_display)
    try:
        remote = RemoteInput(connection, Area(0, 0, 1280, 1024))
        remote.key("CapsLock", "CapsLock", True)
        remote.key("CapsLock", "CapsLock", False)
        remote.key("ShiftLeft", "Shift", True)
        remote.key("KeyQ", "A", True)
        remote.key("ShiftLeft", "Shift", False)
        for char in "bé1":
            remote.key("KeyB", char, True)
        assert window.wait_for("Abé1") == "Abé1"
        remote.end()
    finally:
        window.close()
        connection.close()


def test_spare_keycodes_are_rebound_oldest_first_and_all_given_back(x_display: str) -> None:
    connection = xdisplay.Display(x_display)
    try:
        first = connection.display.info.min_keycode
        count = connection.display.info.max_keycode - first + 1
        before = connection.get_keyboard_mapping(first, count)
        keymap = ServerKeymap(connection, spare_limit=2)
        snowman, comet, umbrella = (0x1000000 + ord(c) for c in "☃☄☂")
        one = keymap.bind(snowman)
        two = keymap.bind(comet)
        assert one.keycode != two.keycode
        assert keymap.bind(snowman) == one  # bound already: found, not bound again
        three = keymap.bind(umbrella)  # over the limit: the oldest binding gives its keycode
        assert three.keycode == one.keycode
        assert keymap.locate(snowman) is None
        assert keymap.locate(umbrella) == three
        assert (three.shift, three.level3) == (False, False)
        keymap.restore()
        assert connection.get_keyboard_mapping(first, count) == before
    finally:
        connection.close()
