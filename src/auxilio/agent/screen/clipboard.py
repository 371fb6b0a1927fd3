"""The X11 CLIPBOARD as text, both ways, each transfer a fact for the person's feed.

Setting it makes the agent the selection's owner: a thread of its own answers other programs'
``SelectionRequest`` (``TARGETS``, ``UTF8_STRING``, ``TEXT``, ``STRING``) until another
program takes the selection. Reading it asks the owner for ``UTF8_STRING`` (then ``STRING``,
Latin-1, for old programs) and waits for its answer.

Text only, up to ``max_bytes`` of UTF-8 either way (``screen.clipboard.too_large``): the limit
keeps each answer within one X request, and an owner answering ``INCR`` (the incremental
protocol, for data larger than one request) is over it by definition.
"""

from __future__ import annotations

import hashlib
import os
import queue
import select
import threading
import time
from dataclasses import dataclass
from typing import Any

from Xlib import X, Xatom
from Xlib import error as xerror
from Xlib.display import Display
from Xlib.protocol import event as xevent

TOO_LARGE = "screen.clipboard.too_large"
EMPTY = "screen.clipboard.empty"
NOT_TEXT = "screen.clipboard.not_text"
TIMEOUT = "screen.clipboard.timeout"

DEFAULT_MAX_BYTES = 128 * 1024
DEFAULT_TIMEOUT_SECONDS = 5.0
_CHANGE_PROPERTY_HEADER = 24  # bytes of a ChangeProperty request before its data

TO_DEVICE = "to_device"  # the technician's text put on the person's clipboard
FROM_DEVICE = "from_device"  # the person's clipboard read for the technician


class ClipboardRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class ClipboardTransfer:
    """What crossed, for the person's feed: which way, how many bytes (UTF-8), their SHA-256."""

    direction: str
    size: int
    sha256: str

    @classmethod
    def of(cls, direction: str, data: bytes) -> ClipboardTransfer:
        return cls(direction=direction, size=len(data), sha256=hashlib.sha256(data).hexdigest())


class X11Clipboard:
    """Text on the CLIPBOARD selection of the X display ``display_name``."""

    def __init__(
        self,
        display_name: str,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        # Two connections: the owner's thread reads its own events, ``get_text`` reads answers.
        self._serve = Display(display_name)
        self._ask = Display(display_name)
        one_request = self._serve.display.info.max_request_length * 4 - _CHANGE_PROPERTY_HEADER
        if not 0 < max_bytes <= one_request:
            self.close()
            raise ValueError(f"max_bytes must be between 1 and {one_request} (one X request)")
        self.max_bytes = max_bytes
        self._timeout = timeout_seconds
        self._atoms = {
            name: self._serve.intern_atom(name)
            for name in ("CLIPBOARD", "TARGETS", "UTF8_STRING", "TEXT", "INCR")
        }
        self._owner = self._window(self._serve)
        self._asker = self._window(self._ask)
        self._property = self._ask.intern_atom("AUXILIO_CLIPBOARD")
        self._lock = threading.Lock()
        self._owned: bytes | None = None  # UTF-8 we serve while we own the selection
        self._claims: queue.SimpleQueue[tuple[bytes, threading.Event]] = queue.SimpleQueue()
        self._wake_read, self._wake_write = os.pipe()
        self._thread = threading.Thread(target=self._run, name="auxilio-clipboard", daemon=True)
        self._thread.start()

    @staticmethod
    def _window(display: Display) -> Any:
        screen = display.screen()
        window = screen.root.create_window(0, 0, 1, 1, 0, X.CopyFromParent, X.InputOnly)
        display.sync()
        return window

    # -- technician -> device --------------------------------------------------------------

    def set_text(self, text: str) -> ClipboardTransfer:
        """Put ``text`` on the person's clipboard (the agent owns the selection from now on)."""
        data = text.encode("utf-8")
        if len(data) > self.max_bytes:
            raise ClipboardRefused(
                TOO_LARGE, f"{len(data)} bytes of text; the clipboard takes {self.max_bytes}"
            )
        # The owner's thread takes the selection itself: the server sends SelectionRequest to
        # the connection that took it, and only that thread reads that connection's events.
        done = threading.Event()
        self._claims.put((data, done))
        os.write(self._wake_write, b"c")
        if not done.wait(self._timeout):
            raise ClipboardRefused(TIMEOUT, "the clipboard could not be taken in time")
        return ClipboardTransfer.of(TO_DEVICE, data)

    def _run(self) -> None:
        fileno = self._serve.fileno()
        while True:
            while self._serve.pending_events():  # reads what arrived; never blocks
                event = self._serve.next_event()
                if event.type == X.SelectionRequest:
                    self._answer(event)
                elif event.type == X.SelectionClear and event.window == self._owner:
                    self._lost()
            ready, _, _ = select.select([fileno, self._wake_read], [], [])
            if self._wake_read in ready:
                if b"x" in os.read(self._wake_read, 64):
                    return
                while not self._claims.empty():
                    self._claim(*self._claims.get())

    def _claim(self, data: bytes, done: threading.Event) -> None:
        with self._lock:
            self._owned = data
        self._owner.set_selection_owner(self._atoms["CLIPBOARD"], X.CurrentTime)
        self._serve.sync()
        done.set()

    def _lost(self) -> None:
        # A SelectionClear may be older than our latest claim: believe the server's owner.
        if self._serve.get_selection_owner(self._atoms["CLIPBOARD"]) != self._owner:
            with self._lock:
                self._owned = None  # another program owns the clipboard now

    def _answer(self, request: Any) -> None:
        prop = request.property if request.property != X.NONE else request.target
        with self._lock:
            data = self._owned
        atoms = self._atoms
        catch = xerror.CatchError()  # the requestor may be gone already; nothing to do then
        if data is None or request.selection != atoms["CLIPBOARD"]:
            prop = X.NONE
        elif request.target == atoms["TARGETS"]:
            offered = [atoms["TARGETS"], atoms["UTF8_STRING"], atoms["TEXT"], Xatom.STRING]
            request.requestor.change_property(prop, Xatom.ATOM, 32, offered, onerror=catch)
        elif request.target in (atoms["UTF8_STRING"], atoms["TEXT"]):
            request.requestor.change_property(prop, atoms["UTF8_STRING"], 8, data, onerror=catch)
        elif request.target == Xatom.STRING:
            latin1 = data.decode("utf-8").encode("latin-1", "replace")
            request.requestor.change_property(prop, Xatom.STRING, 8, latin1, onerror=catch)
        else:
            prop = X.NONE  # not text: refused, as ICCCM says
        notify = xevent.SelectionNotify(
            time=request.time,
            requestor=request.requestor,
            selection=request.selection,
            target=request.target,
            property=prop,
        )
        request.requestor.send_event(notify, onerror=catch)
        self._serve.flush()

    # -- device -> technician --------------------------------------------------------------

    def get_text(self) -> tuple[str, ClipboardTransfer]:
        """The person's clipboard text, and the fact of its transfer."""
        clipboard = self._atoms["CLIPBOARD"]
        owner = self._ask.get_selection_owner(clipboard)
        if owner == X.NONE:
            raise ClipboardRefused(EMPTY, "the clipboard is empty")
        if owner == self._owner:
            with self._lock:
                data = self._owned
            if data is not None:
                return data.decode("utf-8"), ClipboardTransfer.of(FROM_DEVICE, data)
        data = self._convert(self._atoms["UTF8_STRING"])
        if data is not None:
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ClipboardRefused(NOT_TEXT, "the clipboard's text is not valid UTF-8") from exc
        else:
            data = self._convert(Xatom.STRING)
            if data is None:
                raise ClipboardRefused(NOT_TEXT, "the clipboard holds no text")
            text = data.decode("latin-1")
        encoded = text.encode("utf-8")
        if len(encoded) > self.max_bytes:
            raise ClipboardRefused(
                TOO_LARGE, f"{len(encoded)} bytes of text; the clipboard takes {self.max_bytes}"
            )
        return text, ClipboardTransfer.of(FROM_DEVICE, encoded)

    def _convert(self, target: int) -> bytes | None:
        """The owner's answer for ``target``, or None when it has none."""
        self._asker.delete_property(self._property)
        self._asker.convert_selection(
            self._atoms["CLIPBOARD"], target, self._property, X.CurrentTime
        )
        self._ask.flush()
        notify = self._wait_for_notify()
        if notify.property == X.NONE:
            return None
        head = self._asker.get_property(self._property, X.AnyPropertyType, 0, 0)
        if head is None:
            return None
        try:
            if head.property_type == self._atoms["INCR"] or head.bytes_after > self.max_bytes:
                raise ClipboardRefused(
                    TOO_LARGE, f"the clipboard holds more than {self.max_bytes} bytes"
                )
            whole = self._asker.get_property(
                self._property, X.AnyPropertyType, 0, (head.bytes_after + 3) // 4
            )
        finally:
            self._asker.delete_property(self._property)
            self._ask.flush()
        if whole is None or whole.format != 8:
            return None
        value = whole.value
        return value if isinstance(value, bytes) else bytes(value)

    def _wait_for_notify(self) -> Any:
        deadline = time.monotonic() + self._timeout
        while True:
            while self._ask.pending_events():
                event = self._ask.next_event()
                if event.type == X.SelectionNotify and event.requestor == self._asker:
                    return event
            left = deadline - time.monotonic()
            if left <= 0:
                raise ClipboardRefused(TIMEOUT, "the program holding the clipboard did not answer")
            select.select([self._ask.fileno()], [], [], left)

    def close(self) -> None:
        """Stop answering and close both connections (the selection goes with them)."""
        if hasattr(self, "_thread") and self._thread.is_alive():
            os.write(self._wake_write, b"x")
            self._thread.join(timeout=30)
        if hasattr(self, "_wake_read"):
            os.close(self._wake_read)
            os.close(self._wake_write)
        self._serve.close()
        self._ask.close()
