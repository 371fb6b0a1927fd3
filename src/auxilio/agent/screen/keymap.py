"""Browser key events to X keysyms, and keysyms to keycodes on the person's own keyboard layout.

The technician's browser reports each key as a ``KeyboardEvent``: ``code`` (the physical key on
*their* keyboard) and ``key`` (what it means in *their* layout). Two kinds come out of it:

- text: ``key`` is a character ("a", "@", "ñ", "€"). It is typed as that character on the
  person's layout, whatever keys produce it there: on a Spanish layout "@" is AltGr+2, on a US
  one Shift+2. So a technician with any layout types what they see, on any person's layout.
- a held key: Enter, arrows, F-keys, modifiers... pressed and released as the browser says,
  so that shortcuts (Ctrl+C, Alt+Tab) and key repeat work. ``code`` tells left from right
  modifiers; AltGraph is ``ISO_Level3_Shift``.

Dead keys compose in the technician's browser: the dead key itself (``key == "Dead"``) sends
nothing and the composed character ("ñ", "ú") arrives in the next event, as text.

The person's layout is the X server's current keyboard mapping, read again for each key so that
a layout switched mid-session is followed. A keysym with no keycode there (an "ñ" on a US
layout) is bound to a spare keycode (one with no symbols), as xdotool does; the binding is kept
for reuse while the session runs, since a client may still be reading the previous key event
when the mapping changes again, and every binding is restored by ``restore()``.
"""

from __future__ import annotations

import time
import unicodedata
from dataclasses import dataclass

from Xlib import X
from Xlib.display import Display

UNKNOWN_KEY = "screen.input.unknown_key"
NO_SPARE_KEYCODE = "screen.input.no_spare_keycode"

SHIFT_L = 0xFFE1
CAPS_LOCK = 0xFFE5
ISO_LEVEL3_SHIFT = 0xFE03
MODIFIER_KEYSYMS = frozenset(
    {0xFFE1, 0xFFE2, 0xFFE3, 0xFFE4, 0xFFE9, 0xFFEA, 0xFFEB, 0xFFEC, ISO_LEVEL3_SHIFT}
)

# KeyboardEvent.key values of keys that are not text (UI Events KeyboardEvent key values).
_NAMED: dict[str, int] = {
    "Enter": 0xFF0D,
    "Tab": 0xFF09,
    "Backspace": 0xFF08,
    "Escape": 0xFF1B,
    "Delete": 0xFFFF,
    "Insert": 0xFF63,
    "Home": 0xFF50,
    "End": 0xFF57,
    "PageUp": 0xFF55,
    "PageDown": 0xFF56,
    "ArrowLeft": 0xFF51,
    "ArrowUp": 0xFF52,
    "ArrowRight": 0xFF53,
    "ArrowDown": 0xFF54,
    "CapsLock": 0xFFE5,
    "NumLock": 0xFF7F,
    "ScrollLock": 0xFF14,
    "Pause": 0xFF13,
    "PrintScreen": 0xFF61,
    "ContextMenu": 0xFF67,
    "AltGraph": ISO_LEVEL3_SHIFT,
}
_NAMED.update({f"F{n}": 0xFFBE + n - 1 for n in range(1, 25)})  # F1 0xFFBE ... F24 contiguous

# Modifiers: the side comes from ``code``; ``key`` alone says only "Shift".
_MODIFIER_BY_CODE: dict[str, int] = {
    "ShiftLeft": 0xFFE1,
    "ShiftRight": 0xFFE2,
    "ControlLeft": 0xFFE3,
    "ControlRight": 0xFFE4,
    "AltLeft": 0xFFE9,
    "AltRight": 0xFFEA,
    "MetaLeft": 0xFFEB,
    "MetaRight": 0xFFEC,
    "OSLeft": 0xFFEB,
    "OSRight": 0xFFEC,
}
_MODIFIER_BY_KEY: dict[str, int] = {
    "Shift": 0xFFE1,
    "Control": 0xFFE3,
    "Alt": 0xFFE9,
    "Meta": 0xFFEB,
    "OS": 0xFFEB,
    "Super": 0xFFEB,
}

# Keys that produce nothing to send: composed on the technician's side, or an IME at work.
_SILENT = {"Dead": "dead key: the composed character follows", "Process": "input method"}

# Characters that common layouts (us, gb, es, de, fr) carry as legacy keysyms rather than as
# their Latin-1 code or the Unicode keysym 0x1000000 + code point (X11 keysymdef.h).
_LEGACY_KEYSYMS: dict[str, int] = {
    "€": 0x20AC,  # EuroSign
    "œ": 0x13BD,
    "Œ": 0x13BC,
    "Ÿ": 0x13BE,
    "…": 0xAAE,  # ellipsis
    "—": 0xAA9,  # emdash
    "–": 0xAAA,  # endash
    "‘": 0xAD0,
    "’": 0xAD1,
    "“": 0xAD2,
    "”": 0xAD3,
    "‚": 0xAFD,
    "„": 0xAFE,
    "†": 0xAF1,
    "‡": 0xAF2,
    "™": 0xAC9,
}

# Core keyboard mapping columns of group 1 (XKB's core view): level 1, 2, then 3, 4.
_COLUMNS = ((0, False, False), (1, True, False), (4, False, True), (5, True, True))

MAX_TEXT = 16


class UnknownKey(ValueError):
    """A browser key this agent cannot send, with a stable ``code``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class TypedText:
    """Characters to type as they are, on key down; the key up sends nothing."""

    text: str


@dataclass(frozen=True, slots=True)
class HeldKey:
    """A key pressed on key down and released on key up."""

    keysym: int


@dataclass(frozen=True, slots=True)
class NoKey:
    """A key that sends nothing, and why."""

    reason: str


BrowserKey = TypedText | HeldKey | NoKey


def _printable(text: str) -> bool:
    return all(unicodedata.category(char)[0] not in "C" for char in text)


def translate(code: str, key: str) -> BrowserKey:
    """What the browser's ``KeyboardEvent`` (``code``, ``key``) means to send."""
    if key in _SILENT:
        return NoKey(_SILENT[key])
    if key == "AltGraph":
        return HeldKey(ISO_LEVEL3_SHIFT)
    if key in _MODIFIER_BY_KEY:
        return HeldKey(_MODIFIER_BY_CODE.get(code, _MODIFIER_BY_KEY[key]))
    if key in _NAMED:
        return HeldKey(_NAMED[key])
    # A key value of several ASCII letters is a key name (UI Events: "MediaPlayPause",
    # "Unidentified"); one this agent does not know is refused, never typed as its name.
    is_name = len(key) > 1 and key.isascii() and key.isalnum()
    if key and not is_name and len(key) <= MAX_TEXT and _printable(key):
        return TypedText(key)
    raise UnknownKey(UNKNOWN_KEY, f"key {key[:40]!r} (code {code[:40]!r}) cannot be sent")


def char_keysyms(char: str) -> tuple[int, ...]:
    """The keysyms a layout may use for ``char``, most usual first."""
    point = ord(char)
    found: list[int] = []
    if 0x20 <= point <= 0x7E or 0xA0 <= point <= 0xFF:
        found.append(point)  # Latin-1 keysyms are their code points
    if char in _LEGACY_KEYSYMS:
        found.append(_LEGACY_KEYSYMS[char])
    found.append(0x1000000 + point)
    return tuple(found)


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a keysym sits on the layout: its keycode and the level modifiers it needs."""

    keycode: int
    shift: bool
    level3: bool


class ServerKeymap:
    """The X server's keyboard mapping, looked up per key; spare keycodes bound on demand."""

    def __init__(
        self, display: Display, *, spare_limit: int = 16, settle_seconds: float = 0.05
    ) -> None:
        self._display = display
        self._settle_seconds = settle_seconds
        self._first = int(display.display.info.min_keycode)
        self._count = int(display.display.info.max_keycode) - self._first + 1
        self._spare_limit = spare_limit
        # keysym -> keycode bound by us, oldest first: the first rebound when all are in use.
        self._bound: dict[int, int] = {}

    def _rows(self) -> list[tuple[int, ...]]:
        return [tuple(row) for row in self._display.get_keyboard_mapping(self._first, self._count)]

    def locate(self, keysym: int) -> Placement | None:
        """The lowest level at which ``keysym`` sits on the current layout, or None."""
        rows = self._rows()
        for column, shift, level3 in _COLUMNS:
            for offset, row in enumerate(rows):
                if column < len(row) and row[column] == keysym:
                    return Placement(self._first + offset, shift, level3)
        return None

    def keycode(self, keysym: int) -> int | None:
        """A keycode carrying ``keysym`` in any column (for modifiers and named keys)."""
        found = self.locate(keysym)
        if found is not None:
            return found.keycode
        for offset, row in enumerate(self._rows()):
            if keysym in row:
                return self._first + offset
        return None

    def bind(self, keysym: int) -> Placement:
        """A keycode for ``keysym``: where the layout has it, else a spare one bound to it."""
        found = self.locate(keysym)
        if found is not None:
            return found
        keycode = self._spare_keycode()
        self._display.change_keyboard_mapping(keycode, [(keysym, keysym)])
        self._display.sync()
        self._bound[keysym] = keycode
        # Each program applies a mapping change when it reads the notification; a character
        # typed right behind a fresh binding was lost once in about a hundred test phrases on
        # a loaded machine (a Tk entry). The X protocol cannot say when every program has the
        # change, so the first stroke on a new binding waits a moment (later ones reuse it).
        time.sleep(self._settle_seconds)
        return Placement(keycode, False, False)

    def _spare_keycode(self) -> int:
        if len(self._bound) >= self._spare_limit:
            oldest = next(iter(self._bound))
            return self._bound.pop(oldest)
        in_modifiers = {code for group in self._display.get_modifier_mapping() for code in group}
        ours = set(self._bound.values())
        for offset, row in reversed(list(enumerate(self._rows()))):
            keycode = self._first + offset
            if keycode in in_modifiers or keycode in ours:
                continue
            if all(symbol == X.NoSymbol for symbol in row):
                return keycode
        raise UnknownKey(NO_SPARE_KEYCODE, "the keyboard mapping has no free keycode to bind")

    def restore(self) -> None:
        """Give every keycode bound by ``bind`` its empty mapping back."""
        if not self._bound:
            return
        width = len(self._rows()[0])
        for keycode in self._bound.values():
            self._display.change_keyboard_mapping(keycode, [(X.NoSymbol,) * width])
        self._bound.clear()
        self._display.sync()

    @property
    def bound_keycodes(self) -> tuple[int, ...]:
        return tuple(self._bound.values())
