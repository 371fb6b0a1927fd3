"""The technician's mouse and keyboard on the person's X display, through XTest.

Every event passes one gate (``_admit``) before anything reaches the X server: control still
granted, the rate limit, the event itself valid (inside the chosen monitor, a known button, a
key that can be sent), and not during a pause that the person's own input started
(``local_input``). A refused event raises ``InputRefused`` with a stable code and sends nothing.

Each event sent is first written in the ``InjectedLedger``, so that the watcher of the person's
input, which sees every input event of the X server (ours too), can tell ours from theirs.

Keys and buttons held by the technician are released on pause, revoke and end
(``release_all``): a key left down would go on typing into the person's desktop.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from Xlib import X
from Xlib.display import Display
from Xlib.ext import xtest

from auxilio.agent.screen.keymap import (
    CAPS_LOCK,
    ISO_LEVEL3_SHIFT,
    SHIFT_L,
    NoKey,
    ServerKeymap,
    TypedText,
    UnknownKey,
    char_keysyms,
    translate,
)

OUT_OF_RANGE = "screen.input.out_of_range"
UNKNOWN_BUTTON = "screen.input.unknown_button"
UNKNOWN_KEY = "screen.input.unknown_key"
RATE_LIMITED = "screen.input.rate_limited"
PAUSED = "screen.input.paused"
REVOKED = "screen.input.revoked"
ENDED = "screen.input.ended"
COMBINATION_REFUSED = "screen.input.combination_refused"

BUTTONS = (1, 2, 3)  # left, middle, right
WHEEL_BUTTONS = {"up": 4, "down": 5, "left": 6, "right": 7}
MAX_VIEW_SIZE = 16384
DEFAULT_EVENTS_PER_SECOND = 250
LEDGER_SECONDS = 10.0  # generous: the watcher's thread may lag on a loaded machine

# Ctrl+Alt with these is the X server's, not a program's: Backspace terminates the server
# where that is enabled, F1 to F12 switch to another virtual terminal. Neither is sent.
_SERVER_KEYS = frozenset({0xFF08, *range(0xFFBE, 0xFFCA)})
_CONTROLS = frozenset({0xFFE3, 0xFFE4})
_ALTS = frozenset({0xFFE9, 0xFFEA})

# What the browser says is held (KeyboardEvent.ctrlKey...) and the keysyms each covers: a
# modifier we hold that the browser says is up is released (its key up was lost, e.g. the
# console tab lost focus). Never pressed from these: AltGr reports Ctrl+Alt on some systems.
_MODIFIER_FLAGS = {
    "ctrl": (0xFFE3, 0xFFE4),
    "shift": (0xFFE1, 0xFFE2),
    "alt": (0xFFE9, 0xFFEA),
    "meta": (0xFFEB, 0xFFEC),
}


class InputRefused(Exception):
    """An injected event refused before anything was sent, with a stable ``code``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class MonitorArea(Protocol):
    """The chosen monitor in root-window coordinates (``capture.Monitor`` is one)."""

    @property
    def left(self) -> int: ...
    @property
    def top(self) -> int: ...
    @property
    def width(self) -> int: ...
    @property
    def height(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Modifiers:
    """The browser event's modifier flags."""

    ctrl: bool = False
    shift: bool = False
    alt: bool = False
    meta: bool = False


class InputState(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"
    ENDED = "ended"


_TRANSITIONS: dict[InputState, frozenset[InputState]] = {
    InputState.ACTIVE: frozenset({InputState.REVOKED, InputState.ENDED}),
    InputState.REVOKED: frozenset({InputState.ENDED}),
    InputState.ENDED: frozenset(),
}


class IllegalTransition(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class _Expected:
    kind: int
    detail: int
    x: int | None
    y: int | None
    until: float


class Claim(StrEnum):
    """Whose a recorded input event is, as far as the ledger knows."""

    SENT = "sent"  # one we sent, seen back
    HELD = "held"  # a key we hold: the server's autorepeat, or the person on the same key
    NOT_OURS = "not_ours"


class InjectedLedger:
    """The events we sent and have not yet seen come back, for the watcher to tell apart.

    An event that never comes back (a move to where the pointer already is) is forgotten after
    ``LEDGER_SECONDS``; until then one of the person's events exactly like it would be taken
    for ours, and the next of theirs is still seen. Thread-safe: the injecting thread writes,
    the watcher's thread claims."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._expected: deque[_Expected] = deque()
        self._held_keycodes: set[int] = set()

    def expect(self, kind: int, detail: int, x: int | None = None, y: int | None = None) -> None:
        with self._lock:
            self._expected.append(_Expected(kind, detail, x, y, self._clock() + LEDGER_SECONDS))

    def hold(self, keycode: int, held: bool) -> None:
        with self._lock:
            if held:
                self._held_keycodes.add(keycode)
            else:
                self._held_keycodes.discard(keycode)

    def claim(self, kind: int, detail: int, x: int, y: int) -> Claim:
        """Whose this recorded event is; one we sent is forgotten once claimed."""
        with self._lock:
            now = self._clock()
            while self._expected and self._expected[0].until < now:
                self._expected.popleft()
            for index, expected in enumerate(self._expected):
                if expected.kind != kind:
                    continue
                if kind == X.MotionNotify:
                    if (expected.x, expected.y) != (x, y):
                        continue
                elif expected.detail != detail:
                    continue
                del self._expected[index]
                return Claim.SENT
            if kind in (X.KeyPress, X.KeyRelease) and detail in self._held_keycodes:
                return Claim.HELD
            return Claim.NOT_OURS


class _RateLimit:
    """A token bucket: ``rate`` events a second, bursts up to one second's worth."""

    def __init__(self, rate: int, clock: Callable[[], float]) -> None:
        self._rate = float(rate)
        self._tokens = float(rate)
        self._clock = clock
        self._at = clock()

    def take(self) -> bool:
        now = self._clock()
        self._tokens = min(self._rate, self._tokens + (now - self._at) * self._rate)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


class RemoteInput:
    """Injects the technician's validated events into one X display, on one chosen monitor."""

    def __init__(
        self,
        display: Display,
        monitor: MonitorArea,
        *,
        ledger: InjectedLedger | None = None,
        max_events_per_second: int = DEFAULT_EVENTS_PER_SECOND,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._display = display
        self._root = display.screen().root
        self._monitor = monitor
        self.ledger = ledger if ledger is not None else InjectedLedger()
        self._clock = clock
        self._rate = _RateLimit(max_events_per_second, clock)
        self._keymap = ServerKeymap(display)
        self._lock = threading.RLock()
        self._state = InputState.ACTIVE
        self._paused_until = float("-inf")
        self._held_keys: dict[int, int] = {}  # keysym -> keycode pressed by us
        self._held_buttons: set[int] = set()

    # -- state ---------------------------------------------------------------------------------

    @property
    def state(self) -> InputState:
        return self._state

    @property
    def paused(self) -> bool:
        return self._clock() < self._paused_until

    def _move_to(self, target: InputState) -> None:
        if target not in _TRANSITIONS[self._state]:
            raise IllegalTransition(f"remote input cannot go from {self._state} to {target}")
        self._state = target

    def select_monitor(self, monitor: MonitorArea) -> None:
        with self._lock:
            self._monitor = monitor

    def pause_for(self, seconds: float) -> None:
        """The person is using their own mouse or keyboard: nothing of ours for ``seconds``
        from now, and nothing of ours left held under their hands."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + seconds)
            if self._state is InputState.ACTIVE:
                self._release_all()

    def revoke(self) -> None:
        """Control taken back (by the person, or the grant withdrawn): release, refuse all."""
        with self._lock:
            if self._state is InputState.ACTIVE:
                self._release_all()
                self._move_to(InputState.REVOKED)

    def end(self) -> None:
        """The session ends: release what is held, give back the spare keycodes."""
        with self._lock:
            if self._state is InputState.ENDED:
                return
            if self._state is InputState.ACTIVE:
                self._release_all()
            self._keymap.restore()
            self._move_to(InputState.ENDED)

    def release_all(self) -> None:
        with self._lock:
            self._release_all()

    def _release_all(self) -> None:
        for keysym in list(self._held_keys):
            self._key_up(keysym)
        for button in sorted(self._held_buttons):
            self._send(X.ButtonRelease, button)
        self._held_buttons.clear()
        self._display.sync()

    # -- the gate ------------------------------------------------------------------------------

    def _admit(self) -> None:
        """Refusals that do not depend on the event: control gone, too many events, a pause."""
        if self._state is InputState.REVOKED:
            raise InputRefused(REVOKED, "control was taken back; remote input is off")
        if self._state is InputState.ENDED:
            raise InputRefused(ENDED, "the session's remote input has ended")
        if not self._rate.take():
            raise InputRefused(RATE_LIMITED, "too many input events a second; this one dropped")

    def _not_paused(self) -> None:
        if self.paused:
            raise InputRefused(
                PAUSED, "the person is using their mouse or keyboard; this event was dropped"
            )

    # -- events --------------------------------------------------------------------------------

    def move(self, x: int, y: int, view_width: int, view_height: int) -> tuple[int, int]:
        """The pointer to (x, y) of the technician's view of the monitor, which is
        ``view_width`` x ``view_height``; answers the root-window position it went to."""
        with self._lock:
            self._admit()
            target = self._scale(x, y, view_width, view_height)
            self._not_paused()
            self._send(X.MotionNotify, 0, *target)
            self._display.sync()
            return target

    def _scale(self, x: int, y: int, view_width: int, view_height: int) -> tuple[int, int]:
        sizes_valid = 0 < view_width <= MAX_VIEW_SIZE and 0 < view_height <= MAX_VIEW_SIZE
        if not sizes_valid or not (0 <= x < view_width and 0 <= y < view_height):
            raise InputRefused(
                OUT_OF_RANGE,
                f"({x}, {y}) is outside the {view_width}x{view_height} view of the monitor",
            )
        monitor = self._monitor
        return (
            monitor.left + x * monitor.width // view_width,
            monitor.top + y * monitor.height // view_height,
        )

    def button(self, number: int, pressed: bool) -> None:
        """Button 1, 2 or 3 down or up where the pointer is."""
        with self._lock:
            self._admit()
            if number not in BUTTONS:
                raise InputRefused(UNKNOWN_BUTTON, f"button {number} is not 1, 2 or 3")
            self._not_paused()
            if pressed == (number in self._held_buttons):
                return  # already in that state: a repeated down or a stray up
            self._send(X.ButtonPress if pressed else X.ButtonRelease, number)
            if pressed:
                self._held_buttons.add(number)
            else:
                self._held_buttons.discard(number)
            self._display.sync()

    def wheel(self, direction: str) -> None:
        """One wheel step: up, down, left or right (buttons 4 to 7, pressed and released)."""
        with self._lock:
            self._admit()
            number = WHEEL_BUTTONS.get(direction)
            if number is None:
                raise InputRefused(
                    UNKNOWN_BUTTON, f"wheel direction {direction[:20]!r} is not up/down/left/right"
                )
            self._not_paused()
            self._send(X.ButtonPress, number)
            self._send(X.ButtonRelease, number)
            self._display.sync()

    def key(self, code: str, key: str, pressed: bool, modifiers: Modifiers | None = None) -> None:
        """A browser key event (``KeyboardEvent.code``, ``.key``) down or up."""
        with self._lock:
            self._admit()
            try:
                meaning = translate(code, key)
            except UnknownKey as exc:
                raise InputRefused(UNKNOWN_KEY, exc.message) from exc
            self._not_paused()
            if modifiers is not None:
                self._drop_released_modifiers(modifiers)
            if isinstance(meaning, NoKey):
                return
            if isinstance(meaning, TypedText):
                if pressed:
                    try:
                        for char in meaning.text:
                            self._type_char(char)
                    except UnknownKey as exc:
                        raise InputRefused(UNKNOWN_KEY, exc.message) from exc
            elif pressed:
                held = self._held_keys.keys()
                if meaning.keysym in _SERVER_KEYS and held & _CONTROLS and held & _ALTS:
                    raise InputRefused(
                        COMBINATION_REFUSED,
                        "Ctrl+Alt with Backspace or an F-key acts on the X server itself "
                        "(ending it, switching terminal); not sent",
                    )
                self._key_down(meaning.keysym)
            else:
                self._key_up(meaning.keysym)
            self._display.sync()

    def _drop_released_modifiers(self, modifiers: Modifiers) -> None:
        for flag, keysyms in _MODIFIER_FLAGS.items():
            if not getattr(modifiers, flag):
                for keysym in keysyms:
                    if keysym in self._held_keys:
                        self._key_up(keysym)

    def _key_down(self, keysym: int) -> None:
        if keysym in self._held_keys:
            return  # the browser repeats a held key; the X server's autorepeat already does
        keycode = self._keymap.keycode(keysym)
        if keycode is None:
            raise InputRefused(UNKNOWN_KEY, f"keysym {keysym:#x} is not on this keyboard layout")
        self._held_keys[keysym] = keycode
        self.ledger.hold(keycode, True)
        self._send(X.KeyPress, keycode)

    def _key_up(self, keysym: int) -> None:
        keycode = self._held_keys.pop(keysym, None)
        if keycode is None:
            return
        self._send(X.KeyRelease, keycode)
        if keycode not in self._held_keys.values():
            self.ledger.hold(keycode, False)

    def _type_char(self, char: str) -> None:
        """One character on the person's layout: the level modifiers it needs pressed, the
        ones it must not have released for the stroke, then put back as they were."""
        placement = None
        for keysym in char_keysyms(char):
            placement = self._keymap.locate(keysym)
            if placement is not None:
                break
        if placement is None:
            placement = self._keymap.bind(char_keysyms(char)[0])
        want_shift = placement.shift
        # Caps Lock on the device would change the case of any letter typed (X converts the
        # keysym's case, not only on letter keys): it is switched off for the stroke.
        caps_lock = None
        if char.lower() != char.upper() and self._caps_locked():
            caps_lock = self._keymap.keycode(CAPS_LOCK)
        held_shift = [k for k in (0xFFE1, 0xFFE2) if k in self._held_keys]
        held_level3 = ISO_LEVEL3_SHIFT in self._held_keys
        undo: list[tuple[int, bool]] = []  # (keysym, press it again?) in the order to undo
        if want_shift and not held_shift:
            self._key_down(SHIFT_L)
            undo.append((SHIFT_L, False))
        if not want_shift:
            for keysym in held_shift:
                self._key_up(keysym)
                undo.append((keysym, True))
        if placement.level3 and not held_level3:
            self._key_down(ISO_LEVEL3_SHIFT)
            undo.append((ISO_LEVEL3_SHIFT, False))
        if not placement.level3 and held_level3:
            self._key_up(ISO_LEVEL3_SHIFT)
            undo.append((ISO_LEVEL3_SHIFT, True))
        if caps_lock is not None:
            self._send(X.KeyPress, caps_lock)
            self._send(X.KeyRelease, caps_lock)
        self._send(X.KeyPress, placement.keycode)
        self._send(X.KeyRelease, placement.keycode)
        if caps_lock is not None:
            self._send(X.KeyPress, caps_lock)
            self._send(X.KeyRelease, caps_lock)
        for keysym, press_again in reversed(undo):
            if press_again:
                self._key_down(keysym)
            else:
                self._key_up(keysym)

    def _caps_locked(self) -> bool:
        return bool(self._root.query_pointer().mask & X.LockMask)

    @property
    def held(self) -> tuple[frozenset[int], frozenset[int]]:
        """The keysyms and buttons we hold down now."""
        return frozenset(self._held_keys), frozenset(self._held_buttons)

    def _send(self, kind: int, detail: int, x: int | None = None, y: int | None = None) -> None:
        # Written down before it is sent: the watcher may see it come back at once.
        self.ledger.expect(kind, detail, x, y)
        if kind == X.MotionNotify:
            assert x is not None and y is not None  # noqa: S101  # only move() sends motion
            xtest.fake_input(self._display, kind, 0, root=self._root, x=x, y=y)
        else:
            xtest.fake_input(self._display, kind, detail)
