"""Clipboard text both ways on a real X server, each transfer a fact; bad clipboards refused.

The person's other programs are xsel (where installed) and plain python-xlib clients that own
or ask for the CLIPBOARD selection the way any X program does."""

from __future__ import annotations

import hashlib
import os
import select
import shutil
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from Xlib import X, Xatom
from Xlib import display as xdisplay
from Xlib.protocol import event as xevent

from auxilio.agent.screen.clipboard import (
    EMPTY,
    FROM_DEVICE,
    NOT_TEXT,
    TIMEOUT,
    TO_DEVICE,
    TOO_LARGE,
    ClipboardRefused,
    ClipboardTransfer,
    X11Clipboard,
)
from tests.agent.screen.test_display import xvfb_display

WAIT_SECONDS = 60.0
PHRASE = "Hola, ñandú! @#€"


@pytest.fixture
def x_display() -> Iterator[str]:
    with xvfb_display() as name:
        yield name


@pytest.fixture
def clipboard(x_display: str) -> Iterator[X11Clipboard]:
    made = X11Clipboard(x_display, max_bytes=1000)
    yield made
    made.close()


def need_xsel() -> None:
    if shutil.which("xsel") is None:
        pytest.skip("xsel is not installed (apt-get install xsel); .ci/run installs it")


def xsel_read(display: str) -> str:
    need_xsel()
    return subprocess.run(["xsel", "--clipboard", "--output"], env={"DISPLAY": display},
                          capture_output=True, check=True, timeout=60).stdout.decode()  # fmt: skip


class XselOwner:
    """xsel holding ``text`` on the clipboard until it is stopped (or loses the selection)."""

    def __init__(self, display: str, text: bytes) -> None:
        need_xsel()
        check = xdisplay.Display(display)
        clipboard_atom = check.intern_atom("CLIPBOARD")
        before = check.get_selection_owner(clipboard_atom)  # maybe ours, after a set_text
        self.process = subprocess.Popen(
            ["xsel", "--nodetach", "--clipboard", "--input"],
            stdin=subprocess.PIPE,
            env={"DISPLAY": display},
        )
        assert self.process.stdin is not None
        self.process.stdin.write(text)
        self.process.stdin.close()
        try:  # owned once xsel has read its input: a new owner, not the one before
            for _ in range(int(WAIT_SECONDS / 0.02)):
                if check.get_selection_owner(clipboard_atom) not in (X.NONE, before):
                    break
                select.select([], [], [], 0.02)
        finally:
            check.close()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


@pytest.fixture
def xsel_owner(x_display: str) -> Iterator[Any]:
    owners: list[XselOwner] = []

    def own(text: bytes) -> XselOwner:
        owners.append(XselOwner(x_display, text))
        return owners[-1]

    yield own
    for owner in owners:
        owner.stop()


class Requestor:
    """A program asking the clipboard's owner for one target, as X programs do."""

    def __init__(self, display: str) -> None:
        self.x = xdisplay.Display(display)
        self.window = self.x.screen().root.create_window(0, 0, 1, 1, 0, X.CopyFromParent)
        self.prop = self.x.intern_atom("ANSWER")

    def ask(self, target: str) -> tuple[str, bytes | list[int]] | None:
        """The (type, value) the owner answered for ``target``, or None when it refused."""
        atom = Xatom.STRING if target == "STRING" else self.x.intern_atom(target)
        self.window.convert_selection(
            self.x.intern_atom("CLIPBOARD"), atom, self.prop, X.CurrentTime
        )
        self.x.flush()
        while True:
            while self.x.pending_events():
                event = self.x.next_event()
                if event.type == X.SelectionNotify:
                    if event.property == X.NONE:
                        return None
                    answer = self.window.get_full_property(self.prop, X.AnyPropertyType)
                    return self.x.get_atom_name(answer.property_type), answer.value
            ready, _, _ = select.select([self.x.fileno()], [], [], WAIT_SECONDS)
            assert ready, "the owner did not answer"

    def close(self) -> None:
        self.x.close()


class PlainOwner:
    """A python-xlib program owning the clipboard: it answers ``answers[target]`` as
    (type, bytes), refuses other targets, or never answers at all (``silent``)."""

    def __init__(
        self, display: str, answers: dict[str, tuple[str, bytes]], *, silent: bool = False
    ) -> None:
        self.x = xdisplay.Display(display)
        self.window = self.x.screen().root.create_window(0, 0, 1, 1, 0, X.CopyFromParent)
        self.answers = {
            self.x.intern_atom(k): (self.x.intern_atom(t), v) for k, (t, v) in answers.items()
        }
        self.silent = silent
        self.window.set_selection_owner(self.x.intern_atom("CLIPBOARD"), X.CurrentTime)
        self.x.sync()
        self.stop_read, self.stop_write = os.pipe()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            while self.x.pending_events():
                request = self.x.next_event()
                if request.type != X.SelectionRequest or self.silent:
                    continue
                prop = X.NONE
                if request.target in self.answers:
                    kind, value = self.answers[request.target]
                    prop = request.property
                    request.requestor.change_property(prop, kind, 8, value)
                notify = xevent.SelectionNotify(time=request.time, requestor=request.requestor,
                                                selection=request.selection, target=request.target,
                                                property=prop)  # fmt: skip
                request.requestor.send_event(notify)
                self.x.flush()
            ready, _, _ = select.select([self.x.fileno(), self.stop_read], [], [])
            if self.stop_read in ready:
                return

    def close(self) -> None:
        os.write(self.stop_write, b"x")
        self.thread.join(timeout=30)
        os.close(self.stop_read)
        os.close(self.stop_write)
        self.x.close()


def fact(direction: str, data: bytes) -> ClipboardTransfer:
    return ClipboardTransfer(direction, len(data), hashlib.sha256(data).hexdigest())


def test_text_set_by_the_technician_is_what_the_persons_programs_paste(
    x_display: str, clipboard: X11Clipboard
) -> None:
    transfer = clipboard.set_text(PHRASE)
    assert transfer == fact(TO_DEVICE, PHRASE.encode())
    assert xsel_read(x_display) == PHRASE


def test_text_copied_on_the_device_reaches_the_technician(
    clipboard: X11Clipboard, xsel_owner: Any
) -> None:
    xsel_owner(PHRASE.encode())
    text, transfer = clipboard.get_text()
    assert text == PHRASE
    assert transfer == fact(FROM_DEVICE, PHRASE.encode())
    assert transfer.size == 20  # bytes of UTF-8, not characters


def test_the_owner_answers_targets_utf8_text_and_latin1_string(
    x_display: str, clipboard: X11Clipboard
) -> None:
    clipboard.set_text(PHRASE)
    requestor = Requestor(x_display)
    try:
        targets = requestor.ask("TARGETS")
        assert targets is not None and targets[0] == "ATOM"
        names = {requestor.x.get_atom_name(atom) for atom in targets[1]}
        assert names == {"TARGETS", "UTF8_STRING", "TEXT", "STRING"}
        assert requestor.ask("UTF8_STRING") == ("UTF8_STRING", PHRASE.encode())
        assert requestor.ask("TEXT") == ("UTF8_STRING", PHRASE.encode())
        # STRING is Latin-1: the euro sign has no place there.
        assert requestor.ask("STRING") == ("STRING", "Hola, ñandú! @#?".encode("latin-1"))
        assert requestor.ask("image/png") is None
    finally:
        requestor.close()


def test_text_too_large_for_the_device_is_refused_and_the_clipboard_kept(
    x_display: str, clipboard: X11Clipboard
) -> None:
    clipboard.set_text("kept")
    with pytest.raises(ClipboardRefused) as refused:
        clipboard.set_text("ñ" * 501)  # 1002 bytes of UTF-8 over a 1000-byte limit
    assert refused.value.code == TOO_LARGE
    assert xsel_read(x_display) == "kept"
    clipboard.set_text("ñ" * 500)  # exactly the limit
    assert xsel_read(x_display) == "ñ" * 500


def test_text_too_large_on_the_device_is_refused(clipboard: X11Clipboard, xsel_owner: Any) -> None:
    xsel_owner(b"x" * 1001)
    with pytest.raises(ClipboardRefused) as refused:
        clipboard.get_text()
    assert refused.value.code == TOO_LARGE


def test_an_empty_clipboard_is_said_to_be_empty(clipboard: X11Clipboard) -> None:
    with pytest.raises(ClipboardRefused) as refused:
        clipboard.get_text()
    assert refused.value.code == EMPTY


def test_a_clipboard_holding_no_text_is_refused(x_display: str, clipboard: X11Clipboard) -> None:
    owner = PlainOwner(x_display, {"image/png": ("image/png", b"\x89PNG\r\n")})
    try:
        with pytest.raises(ClipboardRefused) as refused:
            clipboard.get_text()
        assert refused.value.code == NOT_TEXT
    finally:
        owner.close()


def test_text_that_is_not_utf8_is_refused(x_display: str, clipboard: X11Clipboard) -> None:
    owner = PlainOwner(x_display, {"UTF8_STRING": ("UTF8_STRING", b"caf\xe9")})
    try:
        with pytest.raises(ClipboardRefused) as refused:
            clipboard.get_text()
        assert refused.value.code == NOT_TEXT
    finally:
        owner.close()


def test_an_old_program_offering_only_latin1_is_read(
    x_display: str, clipboard: X11Clipboard
) -> None:
    owner = PlainOwner(x_display, {"STRING": ("STRING", "ñandú".encode("latin-1"))})
    try:
        text, transfer = clipboard.get_text()
        assert text == "ñandú"
        assert transfer == fact(FROM_DEVICE, "ñandú".encode())
    finally:
        owner.close()


def test_an_owner_that_never_answers_times_out(x_display: str) -> None:
    owner = PlainOwner(x_display, {}, silent=True)
    clipboard = X11Clipboard(x_display, timeout_seconds=0.5)
    try:
        with pytest.raises(ClipboardRefused) as refused:
            clipboard.get_text()
        assert refused.value.code == TIMEOUT
    finally:
        clipboard.close()
        owner.close()


def test_after_another_program_copies_its_text_is_read_not_ours(
    clipboard: X11Clipboard, xsel_owner: Any
) -> None:
    clipboard.set_text("from the technician")
    xsel_owner(b"the person copied this")
    assert clipboard.get_text()[0] == "the person copied this"


def test_a_limit_beyond_one_x_request_is_refused(x_display: str) -> None:
    with pytest.raises(ValueError, match="one X request"):
        X11Clipboard(x_display, max_bytes=10_000_000)
    with pytest.raises(ValueError):
        X11Clipboard(x_display, max_bytes=0)
