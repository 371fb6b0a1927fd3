"""The person's screen as pixels: monitors, a grab as a ``uint32`` array, and the pointer.

mss grabs through XShm (a few ms for a 1080p frame, ten times faster than python-xlib's
``get_image``); python-xlib answers the pointer position. Both talk to the same X server, named
by ``DISPLAY``. A Wayland session is refused outright: X11 capture there sees only the XWayland
windows and shows the rest as black, and a black screen that looks like the person's would
mislead the technician.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Self

import mss
import mss.exception
import numpy as np
import numpy.typing as npt
from Xlib import display as xdisplay
from Xlib import error as xerror

DISPLAY_UNAVAILABLE = "screen.display_unavailable"
MONITOR_UNKNOWN = "screen.monitor_unknown"
ENCODER_FAILED = "screen.encoder_failed"

Pixels = npt.NDArray[np.uint32]
"""A grabbed frame: one ``uint32`` per pixel, shape ``(height, width)``, bytes B, G, R, A."""


class ScreenError(Exception):
    """A screen capability failure with a stable ``code`` (one of the constants above)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Monitor:
    """One monitor, in X root-window coordinates; ``index`` is what the technician chooses."""

    index: int
    left: int
    top: int
    width: int
    height: int
    primary: bool
    name: str | None = None


@dataclass(frozen=True, slots=True)
class Frame:
    """One grab of the selected monitor."""

    pixels: Pixels
    monitor: Monitor

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    def bgra(self) -> npt.NDArray[np.uint8]:
        """The same memory seen as ``(height, width, 4)`` bytes, B G R A (no copy)."""
        return self.pixels.view(np.uint8).reshape(self.height, self.width, 4)


@dataclass(frozen=True, slots=True)
class CursorPosition:
    """The pointer relative to the selected monitor's top-left corner; ``inside`` is False when
    it is on another monitor (then x and y are outside the monitor's bounds)."""

    x: int
    y: int
    inside: bool


def x11_display_name(env: Mapping[str, str] | None = None) -> str:
    """The X display to capture, or ``screen.display_unavailable`` saying why there is none."""
    env = os.environ if env is None else env
    if env.get("XDG_SESSION_TYPE", "").lower() == "wayland" or (
        env.get("WAYLAND_DISPLAY") and not env.get("DISPLAY")
    ):
        raise ScreenError(
            DISPLAY_UNAVAILABLE,
            "this is a Wayland session; screen view needs an X11 session (X11 capture under "
            "Wayland would show other windows as black)",
        )
    name = env.get("DISPLAY", "")
    if not name:
        raise ScreenError(DISPLAY_UNAVAILABLE, "no X display (DISPLAY is not set)")
    return name


class ScreenSource:
    """Grabs one chosen monitor of an X display. Not thread-safe: one capture loop owns it."""

    def __init__(self, display: str | None = None, *, env: Mapping[str, str] | None = None):
        self.display = display if display is not None else x11_display_name(env)
        try:
            self._mss = mss.MSS(display=self.display)
        except mss.exception.ScreenShotError as exc:
            raise ScreenError(
                DISPLAY_UNAVAILABLE, f"cannot connect to X display {self.display}: {exc}"
            ) from exc
        try:
            self._x = xdisplay.Display(self.display)
        except (xerror.DisplayError, OSError) as exc:
            self._mss.close()
            raise ScreenError(
                DISPLAY_UNAVAILABLE, f"cannot connect to X display {self.display}: {exc}"
            ) from exc
        self._closed = False
        if "XWAYLAND" in self._x.list_extensions():
            # XDG_SESSION_TYPE may be missing (a service's environment); the server itself tells.
            self.close()
            raise ScreenError(
                DISPLAY_UNAVAILABLE,
                f"X display {self.display} is XWayland: screen view needs an X11 session",
            )
        self._monitors = self._read_monitors()
        self._selected = next((m for m in self._monitors if m.primary), self._monitors[0])

    def _read_monitors(self) -> list[Monitor]:
        # mss's entry 0 is the bounding box of all monitors, not a monitor.
        found = [
            Monitor(
                index=i,
                left=int(m["left"]),
                top=int(m["top"]),
                width=int(m["width"]),
                height=int(m["height"]),
                primary=bool(m.get("is_primary", False)),
                name=str(m["name"]) if m.get("name") else None,
            )
            for i, m in enumerate(self._mss.monitors[1:])
        ]
        if not found:
            raise ScreenError(DISPLAY_UNAVAILABLE, f"X display {self.display} has no monitor")
        return found

    def monitors(self) -> list[Monitor]:
        return list(self._monitors)

    @property
    def monitor(self) -> Monitor:
        return self._selected

    def select(self, index: int) -> Monitor:
        """Capture the monitor numbered ``index`` (as listed by ``monitors()``) from now on."""
        for monitor in self._monitors:
            if monitor.index == index:
                self._selected = monitor
                return monitor
        raise ScreenError(
            MONITOR_UNKNOWN,
            f"no monitor {index}; this display has {len(self._monitors)} "
            f"(0 to {len(self._monitors) - 1})",
        )

    def grab(self) -> Frame:
        m = self._selected
        region = {"left": m.left, "top": m.top, "width": m.width, "height": m.height}
        try:
            shot = self._mss.grab(region)
        # mss 10's XCB backend fails an internal assert, not a ScreenShotError, when the X
        # server has gone away; the probe below tells that apart from a bug and re-raises bugs.
        except (mss.exception.ScreenShotError, AssertionError) as exc:
            self._raise_if_gone(exc)
            raise
        width, height = shot.size
        pixels = np.frombuffer(shot.raw, dtype=np.uint32).reshape(height, width)
        return Frame(pixels=pixels, monitor=m)

    def cursor(self) -> CursorPosition:
        try:
            pointer = self._x.screen().root.query_pointer()
        except (xerror.ConnectionClosedError, OSError) as exc:
            raise self._gone(exc) from exc
        m = self._selected
        x, y = int(pointer.root_x) - m.left, int(pointer.root_y) - m.top
        return CursorPosition(x=x, y=y, inside=0 <= x < m.width and 0 <= y < m.height)

    def _raise_if_gone(self, cause: BaseException) -> None:
        """Raise ``screen.display_unavailable`` if the X server no longer answers."""
        try:
            self._x.get_input_focus()
        except (xerror.ConnectionClosedError, OSError) as exc:
            raise self._gone(exc) from cause

    def _gone(self, exc: BaseException) -> ScreenError:
        return ScreenError(
            DISPLAY_UNAVAILABLE, f"the X display {self.display} went away during capture ({exc})"
        )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # The X server may already be gone (that is one reason to close); both libraries then
        # report the lost connection while freeing it, which changes nothing here.
        with contextlib.suppress(mss.exception.ScreenShotError):
            self._mss.close()
        with contextlib.suppress(xerror.ConnectionClosedError, OSError):
            self._x.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
