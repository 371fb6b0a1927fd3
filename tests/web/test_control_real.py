"""Remote control end to end: a real ``auxilio serve``, a real ``auxilio agent join`` on an Xvfb
that shows a Tk window with a button and an entry, and the console's live page in chromium.

The technician asks for chat, screen and input; the person allows all three; the technician
presses "Control the mouse and keyboard", clicks the Tk button on the canvas (the Tk window
sees the click, and the canvas shows the button's new colour), types a word (it arrives in the
Tk entry); the person moves their own mouse (the console says control is paused, then it
resumes); the person presses Ctrl+Shift+Escape (the console says they took control back, and
shows input revoked by the person: the take-back is their revocation); the session ends.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pexpect
import pytest

for module in ("mss", "av", "numpy", "Xlib"):
    pytest.importorskip(module, reason=f"the screen extra ({module}) is not installed")

from tests.agent.screen.conftest import XServer, xvfb_screen  # noqa: E402
from tests.agent.xserver import need_xdotool  # noqa: E402
from tests.e2e.conftest import AUXILIO  # noqa: E402

from .conftest import describe  # noqa: E402
from .test_live_session_real import _post, organisation, request_in_page  # noqa: E402, F401
from .test_screen_real import WAIT_MS, canvas_pixel  # noqa: E402

WIDTH, HEIGHT = 640, 480
LEFT, TOP, SIDE_W, SIDE_H = 100, 80, 300, 200
# The button fills the window's top half, the entry its bottom half.
BUTTON_X, BUTTON_Y = LEFT + SIDE_W // 2, TOP + SIDE_H // 4
BLUE, GREEN = 2, 1  # the channel that dominates the pixel (lossy video shifts the levels)
TK_WINDOW = f"""
import tkinter
root = tkinter.Tk()
root.overrideredirect(True)
root.geometry("{SIDE_W}x{SIDE_H}+{LEFT}+{TOP}")
def pressed():
    button.configure(text="Pressed", background="#0000e0", activebackground="#0000e0")
    print("clicked", flush=True)
button = tkinter.Button(root, text="Press me", command=pressed, background="#00c000",
                        activebackground="#00c000", relief="flat", borderwidth=0,
                        highlightthickness=0)
button.place(x=0, y=0, width={SIDE_W}, height={SIDE_H // 2})
entry = tkinter.Entry(root)
entry.place(x=0, y={SIDE_H // 2}, width={SIDE_W}, height={SIDE_H // 2})
entry.bind("<KeyRelease>", lambda e: print("typed", entry.get(), flush=True))
entry.focus_set()
root.after(200, lambda: print("shown", flush=True))
root.mainloop()
"""


def wait_for_colour(page: Any, x: int, y: int, channel: int) -> None:
    """Wait (bounded) until the canvas's pixel at (x, y) is clearly of ``channel`` (0 red,
    1 green, 2 blue): that channel above 60, the other two below 30."""
    try:
        page.wait_for_function(
            """([x, y, channel]) => {
                const canvas = document.getElementById("screen-canvas");
                if (!canvas || canvas.width === 0) return false;
                const d = canvas.getContext("2d").getImageData(x, y, 1, 1).data;
                return [0, 1, 2].every((c) => c === channel ? d[c] > 60 : d[c] < 30);
            }""",
            arg=[x, y, channel],
            timeout=WAIT_MS,
        )
    except Exception as exc:
        found = canvas_pixel(page, x, y)
        raise AssertionError(f"pixel {found} at {x},{y}, wanted channel {channel}") from exc


@dataclass
class Desktop:
    server: XServer
    lines: queue.Queue[str]

    def expect(self, wanted: str) -> None:
        """Wait (bounded) for the Tk window to print ``wanted``."""
        seen = []
        while True:
            try:
                line = self.lines.get(timeout=WAIT_MS / 1000)
            except queue.Empty:
                raise AssertionError(f"the Tk window printed {seen}, not {wanted!r}") from None
            seen.append(line)
            if line == wanted:
                return

    def person(self, *args: str) -> None:
        subprocess.run(["xdotool", *args], env={"DISPLAY": self.server.name}, check=True,
                       timeout=30)  # fmt: skip


@pytest.fixture
def desktop() -> Iterator[Desktop]:
    need_xdotool()
    with xvfb_screen(WIDTH, HEIGHT) as server:
        env = {**os.environ, "DISPLAY": server.name}
        subprocess.run(["xsetroot", "-solid", "#404040"], env=env, check=False, timeout=60)
        window = subprocess.Popen([sys.executable, "-c", TK_WINDOW], env=env,
                                  stdout=subprocess.PIPE, text=True)  # fmt: skip
        lines: queue.Queue[str] = queue.Queue()

        def read() -> None:
            assert window.stdout is not None
            for line in window.stdout:
                lines.put(line.strip())

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        made = Desktop(server, lines)
        try:
            made.expect("shown")
            yield made
        finally:
            window.terminate()
            window.wait(timeout=30)
            reader.join(timeout=30)
            if window.stdout is not None:
                window.stdout.close()


def test_the_technician_clicks_and_types_on_the_persons_desktop_until_they_take_it_back(
    page: Any, login: Callable[..., None], live_server: str, organisation: dict[str, Any],  # noqa: F811
    desktop: Desktop, tmp_path: Path, axe: Callable[[Any], list[Any]],
) -> None:  # fmt: skip
    ticket = _post(live_server, "/tickets", organisation["token"](organisation["person"]),
                   {"title": "A button does nothing", "category": "software"})  # fmt: skip
    login(page, organisation["technician"])
    page.goto(f"/console/tickets/{ticket['number']}")
    # The request form offers remote control (the default policy lists remote_control).
    page.locator("input[name=capabilities][value=input]").wait_for()
    created = request_in_page(page, ticket["id"], ["chat", "screen", "input"])
    assert "join_code" in created, created
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"/console/sessions/{created['id']}")
    page.locator("#decisions", has_text="attached").wait_for()
    env = {**os.environ, "COLUMNS": "220", "DISPLAY": desktop.server.name}
    env.pop("WAYLAND_DISPLAY", None)
    env.pop("XDG_SESSION_TYPE", None)
    agent = pexpect.spawn(
        AUXILIO[0],
        [*AUXILIO[1:], "agent", "join", created["join_code"], "--server", live_server,
         "--state-dir", str(tmp_path / "agent-state"), "--terminal"],
        encoding="utf-8", timeout=60, dimensions=(50, 220), env=env,
    )  # fmt: skip
    try:
        asked = []
        for _ in range(3):  # chat, screen, input
            agent.expect(r"Allow ([\w ]+)\? \[y/n\]")
            asked.append(agent.match.group(1).lower())
            agent.sendline("y")
        page.locator("#session-state[data-state=active]").wait_for(timeout=WAIT_MS)
        agent.expect("Your screen is being shared", timeout=60)
        wait_for_colour(page, BUTTON_X, BUTTON_Y, GREEN)
        control = page.locator("#screen-control")
        page.wait_for_function(
            "() => !document.getElementById('screen-control').disabled", timeout=WAIT_MS
        )
        control.click()
        assert control.get_attribute("aria-pressed") == "true"
        page.locator("#screen-control-status", has_text="You control").wait_for()
        violations = axe(page)  # the Screen panel with control on, the canvas focusable
        assert not violations, describe(violations)

        # A click on the canvas lands on the Tk button: Tk runs its command, the canvas shows
        # the button's new colour.
        box = page.locator("#screen-canvas").bounding_box()
        assert box is not None
        page.mouse.click(box["x"] + BUTTON_X * box["width"] / WIDTH,
                         box["y"] + BUTTON_Y * box["height"] / HEIGHT)  # fmt: skip
        desktop.expect("clicked")
        agent.expect("is controlling your mouse and keyboard")
        wait_for_colour(page, BUTTON_X, BUTTON_Y, BLUE)
        # Typed on the canvas (it has the keyboard focus): the word arrives in the Tk entry.
        page.keyboard.type("hola")
        desktop.expect("typed hola")

        # The person moves their own mouse: control pauses, then resumes.
        desktop.person("mousemove", "10", "10")
        page.locator("#screen-control-status", has_text="paused").wait_for(timeout=WAIT_MS)
        page.locator("#screen-control-status", has_text="You control").wait_for(timeout=WAIT_MS)
        # The person takes control back with Ctrl+Shift+Escape on their keyboard.
        desktop.person("key", "ctrl+shift+Escape")
        page.locator("#screen-control-status", has_text="took control back").wait_for(
            timeout=WAIT_MS
        )
        agent.expect("You took control back")
        assert control.is_disabled()
        assert control.get_attribute("aria-pressed") == "false"
        # Taking control back is the person's revocation of input: the server is told and the
        # console shows it, with nothing typed on the device.
        page.locator("#decisions", has_text="input revoked by end_user").wait_for(timeout=WAIT_MS)

        page.fill("#summary-input", "Pressed the button for the person.")
        page.click("#end-form button")
        page.locator("#session-state[data-state=ended]").wait_for(timeout=WAIT_MS)
        agent.expect("Session report")
        agent.expect(pexpect.EOF)
    finally:
        agent.close()
    assert sorted(asked) == ["chat", "input", "screen"]
    assert errors == []
    assert page.locator("#session-error").inner_text() == ""
