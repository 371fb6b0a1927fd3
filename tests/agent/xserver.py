"""A real X server (Xvfb) for the window tests, and the person's hands on it (xdotool).

Buttons are found by the stable X names the agent gives them (``auxilio-end-session``, see
``consent_window.WidgetNames``) and pressed with a real pointer click, as a person would.
Every wait is generous: the machine may be loaded, and nothing here measures time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

WAIT_SECONDS = 60.0


DISPLAYS_PER_WORKER = 50


def _display_numbers() -> range:
    """The display numbers this process may take: 180-229 alone, and under pytest-xdist a range
    of its own per worker (gw0 180-229, gw1 230-279, ...), so that two workers never race for
    one number."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[:2] == "gw" and worker[2:].isdigit() else 0
    first = 180 + index * DISPLAYS_PER_WORKER
    return range(first, first + DISPLAYS_PER_WORKER)


def _start(number: int) -> subprocess.Popen[bytes] | None:
    """Xvfb on ``:number`` once its socket exists; None when it exits first (the number was
    taken meanwhile, e.g. by another test run on this machine)."""
    command = ["Xvfb", f":{number}", "-screen", "0", "1280x1024x24", "-nolisten", "tcp",
               "-noreset"]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    socket = Path(f"/tmp/.X11-unix/X{number}")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return None
        if socket.exists():
            return proc
        time.sleep(0.05)
    proc.kill()
    proc.wait(timeout=10)
    return None


@contextmanager
def xvfb() -> Iterator[str]:
    """A fresh Xvfb on a free display number; ``-noreset`` so that the server does not reset
    (dropping its state) each time its last client, such as one window, disconnects."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb)")
    for number in _display_numbers():
        taken = Path(f"/tmp/.X11-unix/X{number}").exists() or Path(f"/tmp/.X{number}-lock").exists()
        if not taken and (proc := _start(number)) is not None:
            break
    else:
        raise AssertionError(f"no free X display in {_display_numbers()}")
    try:
        yield f":{number}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def need_xdotool() -> None:
    if shutil.which("xdotool") is None:
        pytest.skip("xdotool is not installed (apt-get install xdotool); .ci/run installs it")


def find_window(display: str, name: str, *, visible: bool = True) -> str:
    """The X window id of the widget or window called exactly ``name``, once it exists."""
    need_xdotool()
    args = ["xdotool", "search", *(["--onlyvisible"] if visible else []), "--name", f"^{name}$"]
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        found = subprocess.run(args, capture_output=True, text=True, env={"DISPLAY": display},
                               check=False).stdout.split()  # fmt: skip
        if found:
            return found[-1]
        time.sleep(0.2)
    raise AssertionError(f"no window named {name!r} appeared on {display}")


def click(display: str, name: str) -> None:
    """A real left click in the middle-ish of the button called ``name``."""
    window = find_window(display, name)
    subprocess.run(["xdotool", "mousemove", "--window", window, "6", "6", "click", "1"],
                   env={"DISPLAY": display}, check=True, timeout=30)  # fmt: skip


def screenshot(display: str, title: str, path: Path) -> Path:
    """A PNG of the top-level window titled ``title`` (ImageMagick's ``import``)."""
    if shutil.which("import") is None:
        pytest.skip("ImageMagick is not installed (apt-get install imagemagick)")
    window = find_window(display, title)
    subprocess.run(["import", "-window", window, str(path)], env={"DISPLAY": display},
                   check=True, timeout=60)  # fmt: skip
    return path


@pytest.fixture
def display(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A private X server for this test, as ``DISPLAY``."""
    with xvfb() as name:
        monkeypatch.setenv("DISPLAY", name)
        yield name
