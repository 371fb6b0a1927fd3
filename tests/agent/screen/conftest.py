"""A private Xvfb of a chosen size, and a scene painted on it in known colours.

The scene is made of plain X windows with a background colour (override-redirect, so that they
sit exactly where they are put, with no window manager), painted through python-xlib: what the
grab must show is known to the pixel. Xvfb picks its own free display number (``-displayfd``),
so that parallel runs never share a server.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import pytest

for module in ("mss", "av", "numpy", "Xlib"):
    pytest.importorskip(module, reason=f"the screen extra ({module}) is not installed")

from Xlib import X  # noqa: E402 - only once the extra is known to be there
from Xlib import display as xdisplay  # noqa: E402
from Xlib import error as xerror  # noqa: E402


@dataclass
class XServer:
    name: str
    process: subprocess.Popen[bytes]

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=30)


@contextmanager
def xvfb_screen(width: int, height: int) -> Iterator[XServer]:
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb); .ci/run installs it")
    read, write = os.pipe()
    command = ["Xvfb", "-displayfd", str(write), "-screen", "0", f"{width}x{height}x24",
               "-nolisten", "tcp", "-noreset"]  # fmt: skip
    proc = subprocess.Popen(command, pass_fds=(write,), stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as answer:
        number = answer.readline().strip()  # Xvfb writes it once it accepts connections
    if not number:
        proc.kill()
        proc.wait(timeout=30)
        pytest.fail("Xvfb did not start")
    try:
        yield XServer(name=f":{number}", process=proc)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)


def set_monitors(display: str, monitors: list[tuple[str, int, int, int, int]]) -> None:
    """RandR 1.5 monitors (name, left, top, width, height) on one Xvfb screen, as a desk with
    several screens shows them."""
    for name, left, top, width, height in monitors:
        geometry = f"{width}/300x{height}/200+{left}+{top}"
        subprocess.run(["xrandr", "--setmonitor", name, geometry, "none"],
                       env={"DISPLAY": display}, check=True, timeout=60)  # fmt: skip


class Scene:
    """Coloured rectangles on the X server; ``rgb`` as 0xRRGGBB (what a grab reads back)."""

    def __init__(self, display: str) -> None:
        self._x = xdisplay.Display(display)
        self._screen = self._x.screen()
        self.windows: list[Any] = []

    def background(self, rgb: int) -> None:
        root = self._screen.root
        root.change_attributes(background_pixel=rgb)
        root.clear_area(0, 0, 0, 0)
        self._x.sync()

    def paint(self, x: int, y: int, w: int, h: int, rgb: int) -> Any:
        window = self._screen.root.create_window(
            x, y, w, h, 0, self._screen.root_depth, X.InputOutput, X.CopyFromParent,
            background_pixel=rgb, override_redirect=True,
        )  # fmt: skip
        window.map()
        self._x.sync()
        self.windows.append(window)
        return window

    def move(self, window: Any, x: int, y: int) -> None:
        window.configure(x=x, y=y)
        self._x.sync()

    def recolour(self, window: Any, rgb: int) -> None:
        window.change_attributes(background_pixel=rgb)
        window.clear_area(0, 0, 0, 0)
        self._x.sync()

    def pointer(self, x: int, y: int) -> None:
        self._screen.root.warp_pointer(x, y)
        self._x.sync()

    def close(self) -> None:
        self._x.close()


@pytest.fixture
def screen() -> Iterator[Callable[..., XServer]]:
    """Start an Xvfb of the given size; each is stopped after the test."""
    with ExitStack() as stack:

        def start(width: int = 1920, height: int = 1080) -> XServer:
            return stack.enter_context(xvfb_screen(width, height))

        yield start


@pytest.fixture
def scene_for() -> Iterator[Callable[[str], Scene]]:
    scenes: list[Scene] = []

    def make(display: str) -> Scene:
        scenes.append(Scene(display))
        return scenes[-1]

    yield make
    for scene in scenes:
        # The test may have killed the server under the scene.
        with suppress(OSError, xerror.ConnectionClosedError):
            scene.close()
