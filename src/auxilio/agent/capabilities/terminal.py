"""The terminal capability: a real pseudo-terminal running the shell the grant allows.

Output is read on the asyncio loop (``add_reader`` on the PTY master); the child is a session
leader with the PTY as its controlling terminal, so job control, Ctrl-C and ``SIGWINCH`` on resize
behave as in a local terminal. Command lines are recovered from the technician's keystrokes (up to
a carriage return) for the person's feed and the audit: metadata only, never the output.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pwd
import signal
import struct
import subprocess
import termios
from collections.abc import Callable
from dataclasses import dataclass

import psutil  # type: ignore[import-untyped]  # no stubs among the dev dependencies

MAX_SUBJECT = 4096
_ESCAPE_FINAL = range(0x40, 0x7F)


def login_shell() -> str:
    """The person's login shell, the default when the grant names none."""
    try:
        shell = pwd.getpwuid(os.getuid()).pw_shell
    except KeyError:
        shell = ""
    return shell or os.environ.get("SHELL") or "/bin/sh"


class CommandLineDetector:
    """Turns input bytes into the command lines they submit.

    Line editing is approximated (backspace, Ctrl-U, Ctrl-C, escape sequences such as arrow keys
    are dropped): the shell's history recall cannot be seen from the input alone, so a recalled
    command shows as what was typed. The audit says what was typed, which is what the technician
    did.
    """

    def __init__(self) -> None:
        self._line = bytearray()
        self._escape = 0  # 0 none, 1 after ESC, 2 inside a CSI sequence

    def feed(self, data: bytes) -> list[str]:
        lines: list[str] = []
        for byte in data:
            if self._escape == 1:
                self._escape = 2 if byte in (0x5B, 0x4F) else 0  # "[" or "O"
                continue
            if self._escape == 2:
                if byte in _ESCAPE_FINAL:
                    self._escape = 0
                continue
            if byte == 0x1B:
                self._escape = 1
            elif byte in (0x0D, 0x0A):
                text = self._line.decode("utf-8", "replace").strip()
                self._line.clear()
                if text:
                    lines.append(text[:MAX_SUBJECT])
            elif byte in (0x7F, 0x08):
                if self._line:
                    del self._line[-1]
            elif byte in (0x03, 0x15):  # Ctrl-C, Ctrl-U: the line is abandoned
                self._line.clear()
            elif byte >= 0x20 or byte == 0x09:
                self._line.append(byte)
        return lines


@dataclass(frozen=True, slots=True)
class TerminalExited:
    exit_code: int | None
    signal: int | None


OutputSink = Callable[[bytes], None]
ExitSink = Callable[[TerminalExited], None]


def _make_controlling_tty() -> None:
    # Runs in the child between fork and exec: after setsid (start_new_session) the PTY slave
    # on fd 0 becomes the controlling terminal, so the shell gets job control and signals.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class PtyTerminal:
    """One shell on one pseudo-terminal."""

    def __init__(
        self,
        *,
        program: str,
        cols: int,
        rows: int,
        on_output: OutputSink,
        on_exit: ExitSink,
        env: dict[str, str] | None = None,
    ) -> None:
        self.program = program
        self._on_output = on_output
        self._on_exit = on_exit
        self._loop = asyncio.get_running_loop()
        self._master, slave = os.openpty()
        self._closed = False
        try:
            self.resize(cols, rows)
            child_env = dict(os.environ if env is None else env)
            child_env["TERM"] = child_env.get("TERM") or "xterm-256color"
            # The shell is the grant's limits.shell or the login shell, started as a list (no
            # shell=True): nothing from the technician's input reaches the command line.
            self._process = subprocess.Popen(  # noqa: S603 - fixed argv from the signed grant
                [program],
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=child_env,
                cwd=os.path.expanduser("~"),
                start_new_session=True,
                preexec_fn=_make_controlling_tty,
                close_fds=True,
            )
        except BaseException:
            os.close(self._master)
            raise
        finally:
            os.close(slave)
        self._loop.add_reader(self._master, self._readable)
        self._waiter = asyncio.ensure_future(self._wait())

    @property
    def pid(self) -> int:
        return self._process.pid

    def write(self, data: bytes) -> None:
        if not self._closed:
            os.write(self._master, data)

    def resize(self, cols: int, rows: int) -> None:
        # TIOCSWINSZ on the master also sends SIGWINCH to the foreground process group.
        fcntl.ioctl(self._master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def _readable(self) -> None:
        try:
            data = os.read(self._master, 65536)
        except OSError:  # EIO: every slave descriptor is closed, the shell is gone
            data = b""
        if data:
            self._on_output(data)
        else:
            self._loop.remove_reader(self._master)

    async def _wait(self) -> None:
        returncode = await asyncio.to_thread(self._process.wait)
        # Let the reader drain what the shell printed last before saying it exited.
        await asyncio.sleep(0.05)
        self._readable_drain()
        self._close_master()
        if returncode < 0:
            self._on_exit(TerminalExited(exit_code=None, signal=-returncode))
        else:
            self._on_exit(TerminalExited(exit_code=returncode, signal=None))

    def _readable_drain(self) -> None:
        if self._closed:
            return
        os.set_blocking(self._master, False)
        while True:
            try:
                data = os.read(self._master, 65536)
            except OSError:
                break
            if not data:
                break
            self._on_output(data)

    def _close_master(self) -> None:
        if not self._closed:
            self._closed = True
            self._loop.remove_reader(self._master)
            os.close(self._master)

    def kill(self) -> None:
        """Stop the shell and everything it started, at once (revocation, end of session).

        Background jobs of an interactive shell live in their own process groups, so killing the
        shell's group is not enough: every descendant is killed, children before the shell."""
        if self._process.poll() is not None:
            return
        try:
            shell = psutil.Process(self._process.pid)
            victims = [*shell.children(recursive=True), shell]
        except psutil.NoSuchProcess:
            return
        for victim in victims:
            with contextlib.suppress(psutil.NoSuchProcess):
                victim.send_signal(signal.SIGKILL)

    async def wait_closed(self) -> None:
        await self._waiter


class TerminalHost:
    """The terminals the technician opened in one support session, by ``terminal_id``.

    It only runs them; whether the terminal capability is allowed is decided by the session,
    before every call that opens a terminal or writes to one.
    """

    def __init__(
        self,
        *,
        on_output: Callable[[int, bytes], None],
        on_exit: Callable[[int, TerminalExited], None],
        max_terminals: int = 4,
    ) -> None:
        self._on_output = on_output
        self._on_exit = on_exit
        self._max = max_terminals
        self._open: dict[int, tuple[PtyTerminal, CommandLineDetector]] = {}

    def __len__(self) -> int:
        return len(self._open)

    def __contains__(self, terminal_id: int) -> bool:
        return terminal_id in self._open

    def can_open(self, terminal_id: int) -> bool:
        return terminal_id not in self._open and len(self._open) < self._max

    def open(self, terminal_id: int, *, program: str, cols: int, rows: int) -> PtyTerminal:
        """Start ``program`` (a shell) on a new PTY; ``OSError`` if it cannot be started."""
        pty = PtyTerminal(
            program=program,
            cols=cols,
            rows=rows,
            on_output=lambda data: self._on_output(terminal_id, data),
            on_exit=lambda exited: self._on_exit(terminal_id, exited),
        )
        self._open[terminal_id] = (pty, CommandLineDetector())
        return pty

    def write(self, terminal_id: int, data: bytes) -> list[str] | None:
        """Send input to a terminal; the command lines it submits, or ``None`` if not open."""
        entry = self._open.get(terminal_id)
        if entry is None:
            return None
        pty, detector = entry
        lines = detector.feed(data)
        pty.write(data)
        return lines

    def resize(self, terminal_id: int, cols: int, rows: int) -> None:
        entry = self._open.get(terminal_id)
        if entry is not None:
            entry[0].resize(cols, rows)

    def kill(self, terminal_id: int) -> None:
        entry = self._open.get(terminal_id)
        if entry is not None:
            entry[0].kill()

    def forget(self, terminal_id: int) -> bool:
        """The terminal exited; ``True`` if it was one of ours."""
        return self._open.pop(terminal_id, None) is not None

    async def stop_all(self) -> None:
        """Kill every terminal now and wait until each is gone (revocation, end, re-keying)."""
        terminals, self._open = self._open, {}
        for pty, _ in terminals.values():
            pty.kill()
        for pty, _ in terminals.values():
            await pty.wait_closed()
