"""Screen view end to end: a real ``auxilio serve``, a real ``auxilio agent join`` on an Xvfb that
shows a Tk window of a known colour, and the console's live page in chromium.

The technician asks for chat and screen; the person allows both at the agent's prompt; the
console's canvas shows the window's colour at the window's place (pixels read back from the
canvas); the person types 'p' and the console says the view is paused; 'p' again and the
picture comes back; the session ends with a summary.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest

for module in ("mss", "av", "numpy", "Xlib"):
    pytest.importorskip(module, reason=f"the screen extra ({module}) is not installed")

from tests.agent.screen.conftest import XServer, xvfb_screen  # noqa: E402
from tests.e2e.conftest import AUXILIO  # noqa: E402

from .conftest import describe  # noqa: E402
from .test_live_session_real import _post, organisation, request_in_page  # noqa: E402, F401

WIDTH, HEIGHT = 640, 480
# The Tk window: its place on the screen and its colour.
LEFT, TOP, SIDE_W, SIDE_H = 120, 90, 240, 160
GREEN = (0, 192, 0)
TK_WINDOW = f"""
import tkinter
root = tkinter.Tk()
root.overrideredirect(True)
root.geometry("{SIDE_W}x{SIDE_H}+{LEFT}+{TOP}")
root.configure(background="#{GREEN[0]:02x}{GREEN[1]:02x}{GREEN[2]:02x}")
root.after(200, lambda: print("shown", flush=True))
root.mainloop()
"""
WAIT_MS = 60_000
# Lossy 4:2:0 video through the browser's colour conversion: (0, 192, 0) comes back near
# (0, 163, 1); the grey around it is far from both.
TOLERANCE = 40


@pytest.fixture
def desktop() -> Iterator[XServer]:
    """An Xvfb with a grey background (Xvfb's default root is a pattern) and the Tk window."""
    with xvfb_screen(WIDTH, HEIGHT) as server:
        env = {**os.environ, "DISPLAY": server.name}
        subprocess.run(["xsetroot", "-solid", "#404040"], env=env, check=False, timeout=60)
        window = subprocess.Popen([sys.executable, "-c", TK_WINDOW], env=env,
                                  stdout=subprocess.PIPE, text=True)  # fmt: skip
        try:
            assert window.stdout is not None
            assert window.stdout.readline().strip() == "shown"
            yield server
        finally:
            window.terminate()
            window.wait(timeout=30)
            if window.stdout is not None:
                window.stdout.close()


def canvas_pixel(page: Any, x: int, y: int) -> tuple[int, int, int]:
    found = page.evaluate(
        """([x, y]) => {
            const canvas = document.getElementById("screen-canvas");
            const data = canvas.getContext("2d").getImageData(x, y, 1, 1).data;
            return [data[0], data[1], data[2]];
        }""",
        [x, y],
    )
    return (int(found[0]), int(found[1]), int(found[2]))


def near(found: tuple[int, int, int], expected: tuple[int, int, int]) -> bool:
    return all(abs(a - b) <= TOLERANCE for a, b in zip(found, expected, strict=True))


def wait_for_pixel(page: Any, x: int, y: int, expected: tuple[int, int, int]) -> None:
    """Wait (bounded) until the canvas shows ``expected`` at (x, y); on a time-out, fail saying
    what the page shows instead."""
    try:
        page.wait_for_function(
            """([x, y, r, g, b, off]) => {
                const canvas = document.getElementById("screen-canvas");
                if (!canvas || canvas.width === 0) return false;
                const d = canvas.getContext("2d").getImageData(x, y, 1, 1).data;
                return Math.abs(d[0] - r) <= off && Math.abs(d[1] - g) <= off
                  && Math.abs(d[2] - b) <= off;
            }""",
            arg=[x, y, *expected, TOLERANCE],
            timeout=WAIT_MS,
        )
    except Exception as exc:
        status = page.locator("#screen-status").inner_text()
        decisions = page.locator("#decisions").inner_text()
        raise AssertionError(
            f"pixel {canvas_pixel(page, x, y)} at {x},{y}, wanted {expected}; status "
            f"{status!r}; decisions {decisions!r}"
        ) from exc


def test_the_console_sees_the_persons_screen_through_a_real_server_and_agent(
    page: Any, login: Callable[..., None], live_server: str, organisation: dict[str, Any],  # noqa: F811
    desktop: XServer, tmp_path: Path, axe: Callable[[Any], list[Any]],
) -> None:  # fmt: skip
    ticket = _post(live_server, "/tickets", organisation["token"](organisation["person"]),
                   {"title": "A window looks wrong", "category": "software"})  # fmt: skip
    login(page, organisation["technician"])
    page.goto(f"/console/tickets/{ticket['number']}")
    # The request form offers the screen view (the default policy lists screen_view).
    page.locator("input[name=capabilities][value=screen]").wait_for()
    created = request_in_page(page, ticket["id"], ["chat", "screen"])
    assert "join_code" in created, created
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"/console/sessions/{created['id']}")
    page.locator("#decisions", has_text="attached").wait_for()
    assert page.locator("#screen-panel").is_hidden()  # not granted yet
    env = {**os.environ, "COLUMNS": "220", "DISPLAY": desktop.name}
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
        for _ in range(2):  # chat, screen
            agent.expect(r"Allow (\w+)\? \[y/n\]")
            asked.append(agent.match.group(1).lower())
            agent.sendline("y")
        page.locator("#session-state[data-state=active]").wait_for(timeout=WAIT_MS)
        page.locator("#screen-panel").wait_for(state="visible")
        agent.expect("Your screen is being shared", timeout=60)
        page.wait_for_function(
            "() => document.getElementById('screen-canvas').width === 640", timeout=WAIT_MS
        )
        assert page.locator("#screen-canvas").evaluate("(c) => c.height") == HEIGHT
        # The Tk window's colour at its place; the grey desktop around it.
        wait_for_pixel(page, LEFT + SIDE_W // 2, TOP + SIDE_H // 2, GREEN)
        wait_for_pixel(page, 20, 20, (0x40, 0x40, 0x40))
        assert near(canvas_pixel(page, LEFT + 5, TOP + 5), GREEN)
        assert near(canvas_pixel(page, LEFT + SIDE_W + 10, TOP + 5), (0x40, 0x40, 0x40))
        violations = axe(page)  # the Screen panel with its controls, live
        assert not violations, describe(violations)

        # The person pauses: the console says so; resumed, the status clears.
        agent.sendline("p")
        agent.expect("Screen view paused")
        page.locator("#screen-status", has_text="paused").wait_for(timeout=WAIT_MS)
        agent.sendline("p")
        agent.expect("Screen view resumed")
        page.wait_for_function(
            "() => document.getElementById('screen-status').textContent === ''",
            timeout=WAIT_MS,
        )
        # The technician stops the view, and starts it again.
        page.click("#screen-stop")
        page.locator("#screen-status", has_text="stopped").wait_for()
        agent.expect("no longer shared")
        page.click("#screen-start")
        agent.expect("Your screen is being shared")
        wait_for_pixel(page, LEFT + SIDE_W // 2, TOP + SIDE_H // 2, GREEN)
        # The person revokes screen: the view stops, and cannot be started again.
        agent.sendline("r screen")
        agent.expect("no longer shared")
        page.locator("#decisions", has_text="screen revoked by end_user").wait_for(timeout=WAIT_MS)
        page.locator("#screen-status", has_text="stopped").wait_for(timeout=WAIT_MS)
        assert page.locator("#screen-start").is_disabled()

        page.fill("#summary-input", "Looked at the window on the person's screen.")
        page.click("#end-form button")
        page.locator("#session-state[data-state=ended]").wait_for(timeout=WAIT_MS)
        page.locator("#decisions", has_text="Summary saved").wait_for(timeout=WAIT_MS)
        agent.expect("Session report")
        agent.expect(pexpect.EOF)
    finally:
        agent.close()
    assert sorted(asked) == ["chat", "screen"]
    assert errors == []
    assert page.locator("#session-error").inner_text() == ""
