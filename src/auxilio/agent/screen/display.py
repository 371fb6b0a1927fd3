"""What this desktop lets the agent do with the screen: view, control, clipboard, or nothing.

A pure function of the environment and of what a probe of the X server found, so that capability
discovery announces only what works and says why the rest is missing:

- X11 with the XTest extension: view, control (input) and the clipboard.
- X11 without XTest: view and the clipboard; no control
  (``screen.control_unavailable_no_xtest``).
- A Wayland session, including one where ``DISPLAY`` points at XWayland: nothing. Through
  XWayland a grab shows only the X windows (the rest black), injected input reaches only X
  windows and the clipboard bridge depends on the compositor, so offering any of it would
  promise what the person's desktop does not do (``screen.control_unavailable_wayland`` and its
  siblings).
- No display at all: nothing (``screen.no_display``).
"""

from __future__ import annotations

import gc
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from auxilio.protocol.types import Capability

NO_DISPLAY = "screen.no_display"
DISPLAY_UNREACHABLE = "screen.display_unreachable"
VIEW_UNAVAILABLE_WAYLAND = "screen.view_unavailable_wayland"
CONTROL_UNAVAILABLE_WAYLAND = "screen.control_unavailable_wayland"
CLIPBOARD_UNAVAILABLE_WAYLAND = "screen.clipboard_unavailable_wayland"
CONTROL_UNAVAILABLE_NO_XTEST = "screen.control_unavailable_no_xtest"


@dataclass(frozen=True, slots=True)
class XProbe:
    """What the X server named by ``DISPLAY`` answered: its extensions."""

    extensions: frozenset[str]

    @property
    def xtest(self) -> bool:
        return "XTEST" in self.extensions

    @property
    def xwayland(self) -> bool:
        # Xwayland announces an extension of its own name; a Wayland compositor's X server.
        return "XWAYLAND" in self.extensions


@dataclass(frozen=True, slots=True)
class DesktopSupport:
    """What may be offered; ``reasons`` maps each missing part (``view``, ``control``,
    ``clipboard``) to the stable code that says why."""

    session: str  # "x11", "wayland" or "none"
    display: str | None
    view: bool
    control: bool
    clipboard: bool
    reasons: Mapping[str, str]

    @property
    def capabilities(self) -> tuple[Capability, ...]:
        """The protocol capabilities this desktop can deliver."""
        found: list[Capability] = []
        if self.view:
            found.append(Capability.SCREEN)
        if self.control:
            found.append(Capability.INPUT)
        if self.clipboard:
            found.append(Capability.CLIPBOARD)
        return tuple(found)


Probe = Callable[[str], XProbe | None]
"""Connects to the named X display and answers its extensions, or None when it cannot."""


def probe_x_server(name: str) -> XProbe | None:
    """The real probe: one short python-xlib connection to ``name``."""
    from Xlib import display as xdisplay  # the screen extra; imported only when probing
    from Xlib import error as xerror

    failure: Exception | None = None
    try:
        connection = xdisplay.Display(name)
    except (xerror.DisplayError, OSError) as exc:
        failure = exc
    if failure is not None:
        # python-xlib leaves the socket of a failed connection open, held by the traceback's
        # frames: let it go here, quietly, rather than as a ResourceWarning at a later moment.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            failure = None
            gc.collect()
        return None
    try:
        return XProbe(extensions=frozenset(connection.list_extensions()))
    finally:
        connection.close()


def _nothing(session: str, display: str | None, code: str) -> DesktopSupport:
    return DesktopSupport(
        session=session,
        display=display,
        view=False,
        control=False,
        clipboard=False,
        reasons={"view": code, "control": code, "clipboard": code},
    )


def _wayland(display: str | None) -> DesktopSupport:
    return DesktopSupport(
        session="wayland",
        display=display,
        view=False,
        control=False,
        clipboard=False,
        reasons={
            "view": VIEW_UNAVAILABLE_WAYLAND,
            "control": CONTROL_UNAVAILABLE_WAYLAND,
            "clipboard": CLIPBOARD_UNAVAILABLE_WAYLAND,
        },
    )


def desktop_support(env: Mapping[str, str], probe: Probe = probe_x_server) -> DesktopSupport:
    """What the desktop described by ``env`` (``os.environ``) allows, asking ``probe`` about
    the X server only when there is one to ask."""
    display = env.get("DISPLAY") or None
    session_type = env.get("XDG_SESSION_TYPE", "").strip().lower()
    if session_type == "wayland" or (env.get("WAYLAND_DISPLAY") and display is None):
        return _wayland(display)
    if display is None:
        return _nothing("none", None, NO_DISPLAY)
    found = probe(display)
    if found is None:
        return _nothing("x11", display, DISPLAY_UNREACHABLE)
    if found.xwayland or env.get("WAYLAND_DISPLAY"):
        # DISPLAY names XWayland inside a Wayland session whose type was not exported.
        return _wayland(display)
    if not found.xtest:
        return DesktopSupport(
            session="x11",
            display=display,
            view=True,
            control=False,
            clipboard=True,
            reasons={"control": CONTROL_UNAVAILABLE_NO_XTEST},
        )
    return DesktopSupport(
        session="x11", display=display, view=True, control=True, clipboard=True, reasons={}
    )
