"""The person's own mouse and keyboard always win over the technician's.

The X RECORD extension hands this watcher every input event the X server processes, from any
device, before any window sees it. Ours come back too (XTest events are device events like any
other), so each recorded event is first offered to the ``InjectedLedger`` that ``RemoteInput``
writes before sending; what the ledger does not claim is the person's. Then:

- any of their pointer or keyboard activity pauses remote input for ``pause_seconds`` (1.5 s by
  default) from their last event, releasing whatever the technician held; events the technician
  sends meanwhile are dropped and refused (``screen.input.paused``);
- pressing **Ctrl+Shift+Escape** on the device's keyboard takes control back at once: remote
  input is revoked for the rest of the grant (the technician must ask again, and the person
  consent again). Only the person's own key presses count: the technician cannot send it.

The callbacks run on the watcher's thread; the agent session hands them to its own loop (the
person's feed, the technician's notice).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from Xlib import X
from Xlib.display import Display
from Xlib.ext import record
from Xlib.protocol import rq

from auxilio.agent.screen.input import Claim, RemoteInput

log = logging.getLogger(__name__)

DEFAULT_PAUSE_SECONDS = 1.5
RECORD_UNAVAILABLE = "screen.local_input.record_unavailable"

CONTROL_KEYSYMS = frozenset({0xFFE3, 0xFFE4})
SHIFT_KEYSYMS = frozenset({0xFFE1, 0xFFE2})
ESCAPE = 0xFF1B
TAKE_BACK_LABEL = "Ctrl+Shift+Escape"


class LocalInputError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class LocalActivity:
    """The person's event that started a pause: ``pointer`` or ``keyboard``, and where the
    pointer was (root-window coordinates)."""

    kind: str
    x: int
    y: int


_KINDS = {
    X.KeyPress: "keyboard",
    X.KeyRelease: "keyboard",
    X.ButtonPress: "pointer",
    X.ButtonRelease: "pointer",
    X.MotionNotify: "pointer",
}


class LocalInputWatcher:
    """Watches the X display ``display_name`` for the person's input, on a thread of its own."""

    def __init__(
        self,
        display_name: str,
        remote: RemoteInput,
        *,
        pause_seconds: float = DEFAULT_PAUSE_SECONDS,
        on_pause: Callable[[LocalActivity], None] | None = None,
        on_take_back: Callable[[], None] | None = None,
    ) -> None:
        self._remote = remote
        self._pause_seconds = pause_seconds
        self._on_pause = on_pause
        self._on_take_back = on_take_back
        # RECORD needs two connections: one blocks delivering data, the other controls it.
        self._control = Display(display_name)
        if not self._control.has_extension("RECORD"):
            self._control.close()
            raise LocalInputError(
                RECORD_UNAVAILABLE,
                "the X server has no RECORD extension: the person's input cannot be told from "
                "the technician's, so remote control is not offered",
            )
        self._data = Display(display_name)
        ranges: Any = [  # the stubs type ext ranges as pairs; the extension wants 4-tuples
            (
                (0, 0),  # core requests
                (0, 0),  # core replies
                (0, 0, 0, 0),  # extension requests
                (0, 0, 0, 0),  # extension replies
                (0, 0),  # delivered events
                (X.KeyPress, X.MotionNotify),  # device events: keys, buttons, motion
                (0, 0),  # errors
                False,
                False,
            )
        ]
        self._context = self._control.record_create_context(0, [record.AllClients], ranges)
        self._control.sync()
        self._local_keys: set[int] = set()  # keysyms the person holds now
        self._took_back = False
        self._person_events = 0
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="auxilio-local-input", daemon=True)

    @property
    def person_events(self) -> int:
        """How many of the person's own input events were seen so far."""
        return self._person_events

    def start(self) -> None:
        """Watch from now on: returns once the server records (its first reply says so)."""
        self._thread.start()
        if not self._started.wait(timeout=30):
            raise LocalInputError(RECORD_UNAVAILABLE, "the X server did not start recording")

    def stop(self) -> None:
        """Stop watching (the session ended or control was revoked) and close both connections."""
        if self._thread.is_alive():
            self._control.record_disable_context(self._context)
            self._control.sync()
            self._thread.join(timeout=30)
        self._control.record_free_context(self._context)
        self._control.close()
        self._data.close()

    def _run(self) -> None:
        self._data.record_enable_context(self._context, self._on_record)

    def _on_record(self, reply: Any) -> None:
        if reply.category == record.StartOfData:
            self._started.set()
            return
        if reply.category != record.FromServer or reply.client_swapped:
            return
        data: Any = reply.data
        field = rq.EventField("event")  # the name is unused when parsing
        try:
            while data:
                event, data = field.parse_binary_value(data, self._data.display, None, None)
                self._on_event(event)
        except Exception:  # a watcher that fails leaves remote input unguarded: revoke it
            log.exception("the local input watcher failed; remote control is revoked")
            self._remote.revoke()
            raise

    def _on_event(self, event: Any) -> None:
        kind = int(event.type)
        if kind not in _KINDS:
            return
        detail, x, y = int(event.detail), int(event.root_x), int(event.root_y)
        whose = self._remote.ledger.claim(kind, detail, x, y)
        if whose is Claim.SENT:
            return
        if whose is Claim.HELD:
            # Most likely the autorepeat of a key the technician holds: no pause. It may be
            # the person pressing that same key, so it counts towards the take-back (a
            # technician alone cannot complete it: the rest of their keys are SENT).
            self._track_key(kind, detail)
            return
        self._person_events += 1
        if kind in (X.KeyPress, X.KeyRelease):
            self._track_key(kind, detail)
            if self._took_back:
                return
        was_paused = self._remote.paused
        self._remote.pause_for(self._pause_seconds)
        if not was_paused and self._on_pause is not None:
            self._on_pause(LocalActivity(_KINDS[kind], x, y))

    def _track_key(self, kind: int, keycode: int) -> None:
        keysym = int(self._control.get_keyboard_mapping(keycode, 1)[0][0])
        if kind == X.KeyRelease:
            self._local_keys.discard(keysym)
            return
        self._local_keys.add(keysym)
        combination = (
            keysym == ESCAPE
            and self._local_keys & CONTROL_KEYSYMS
            and self._local_keys & SHIFT_KEYSYMS
        )
        if combination and not self._took_back:
            self._took_back = True
            self._remote.revoke()
            if self._on_take_back is not None:
                self._on_take_back()
