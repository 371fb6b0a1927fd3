"""The terminal capability runs a real shell on a real pseudo-terminal."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from auxilio.agent.capabilities.terminal import PtyTerminal, TerminalExited, TerminalHost
from auxilio.agent.capabilities.terminal_commands import (
    CommandLineDetector,
    ObservedCommand,
    ShellReplaced,
)
from auxilio.protocol.frames import ActivitySource


def running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie not yet reaped by init is gone as far as the person is concerned.
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


class Collected:
    def __init__(self) -> None:
        self.output = b""
        self.exited: asyncio.Future[TerminalExited] = asyncio.get_running_loop().create_future()

    def on_output(self, data: bytes) -> None:
        self.output += data

    def on_exit(self, exited: TerminalExited) -> None:
        self.exited.set_result(exited)

    async def wait_for(self, text: bytes, seconds: float = 10) -> None:
        for _ in range(int(seconds / 0.02)):
            if text in self.output:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"{text!r} not in {self.output!r}")


async def test_it_runs_a_command_and_reports_the_exit_code() -> None:
    seen = Collected()
    pty = PtyTerminal(
        program="/bin/sh", cols=80, rows=24, on_output=seen.on_output, on_exit=seen.on_exit
    )
    pty.write(b"echo hel''lo\r")
    await seen.wait_for(b"hello\r\n")
    pty.write(b"exit 3\r")
    exited = await asyncio.wait_for(seen.exited, 10)
    assert exited == TerminalExited(exit_code=3, signal=None)


async def test_resize_reaches_the_shell() -> None:
    seen = Collected()
    pty = PtyTerminal(
        program="/bin/sh", cols=80, rows=24, on_output=seen.on_output, on_exit=seen.on_exit
    )
    pty.resize(cols=132, rows=43)
    pty.write(b"stty size\r")
    await seen.wait_for(b"43 132")
    pty.kill()
    exited = await asyncio.wait_for(seen.exited, 10)
    assert exited.signal is not None


async def test_the_shell_has_the_pty_as_controlling_terminal() -> None:
    seen = Collected()
    pty = PtyTerminal(
        program="/bin/sh", cols=80, rows=24, on_output=seen.on_output, on_exit=seen.on_exit
    )
    pty.write(b"tty && echo ctty-ok\r")
    await seen.wait_for(b"ctty-ok")
    assert b"/dev/pts/" in seen.output
    pty.write(b"exit\r")
    await asyncio.wait_for(seen.exited, 10)


async def test_kill_stops_background_jobs_too() -> None:
    seen = Collected()
    pty = PtyTerminal(
        program="/bin/sh", cols=80, rows=24, on_output=seen.on_output, on_exit=seen.on_exit
    )
    pty.write(b"sleep 300 & echo started-$!\r")
    await seen.wait_for(b"started-")
    pid = int(seen.output.split(b"started-")[-1].split(b"\r")[0])
    pty.kill()
    await asyncio.wait_for(seen.exited, 10)
    await asyncio.sleep(0.1)
    assert not running(pid)


async def test_the_host_reports_typed_lines_of_a_shell_without_integration_labelled() -> None:
    outputs: list[bytes] = []
    exits: list[TerminalExited] = []
    commands: list[ObservedCommand | ShellReplaced] = []
    host = TerminalHost(
        on_output=lambda _tid, data: outputs.append(data),
        on_exit=lambda _tid, exited: exits.append(exited),
        on_command=commands.append,
    )
    host.open(7, program="/bin/sh", cols=80, rows=24)
    assert host.write(7, b"echo o") is True
    assert commands == []
    host.write(7, b"ne\rls -l\r")
    assert [
        (c.terminal_id, c.text, c.source) for c in commands if isinstance(c, ObservedCommand)
    ] == [(7, "echo one", ActivitySource.KEYSTROKES), (7, "ls -l", ActivitySource.KEYSTROKES)]
    assert all(c.at.tzinfo is not None for c in commands)
    assert host.write(8, b"whoami\r") is False  # not open: nothing written anywhere
    assert len(commands) == 2
    await host.stop_all()
    assert len(host) == 0


def test_command_lines_follow_line_editing() -> None:
    detector = CommandLineDetector()
    assert detector.feed(b"lss\x7f -la\r") == ["ls -la"]
    assert detector.feed(b"rm -rf /\x15echo safe\r") == ["echo safe"]
    assert detector.feed(b"\x1b[A\x1b[Bpwd\r") == ["pwd"]
    assert detector.feed(b"half") == []
    assert detector.feed(b" a line\n") == ["half a line"]
    assert detector.feed(b"\r\r") == []
    assert detector.feed(b"sleep 9\x03\r") == []
    assert detector.feed(b"half a sec") == []
    detector.reset()  # the terminal stopped echoing: the partial line is dropped with it
    assert detector.feed(b"ret\r") == ["ret"]
