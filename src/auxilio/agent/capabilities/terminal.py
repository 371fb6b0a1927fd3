"""The terminal capability: a real pseudo-terminal running the shell the grant allows.

Output is read on the asyncio loop (``add_reader`` on the PTY master); the child is a session
leader with the PTY as its controlling terminal, so job control, Ctrl-C and ``SIGWINCH`` on resize
behave as in a local terminal.

Each terminal's commands are watched (``terminal_commands``): the shell's own reports where it
can give them (bash, zsh, fish through ``shell_integration``; their markers are taken out of the
output here, before anyone sees it), else the technician's keystrokes, labelled as typed. They go
to ``on_command`` for the person's feed and the audit: metadata only, never the output.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pwd
import shutil
import signal
import struct
import subprocess
import termios
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import psutil  # type: ignore[import-untyped]  # no stubs among the dev dependencies

from auxilio.agent.capabilities.shell_integration import prepare_shell
from auxilio.agent.capabilities.terminal_commands import (
    CommandSink,
    CommandWatch,
    utc_now,
)


def login_shell() -> str:
    """The person's login shell, the default when the grant names none."""
    try:
        shell = pwd.getpwuid(os.getuid()).pw_shell
    except KeyError:
        shell = ""
    return shell or os.environ.get("SHELL") or "/bin/sh"


def choose_shell(shell: str | None, shells: Sequence[str] | None) -> str | None:
    """The program a granted terminal runs: the grant's named ``shell``; else, where the grant
    lists the policy's approved ``shells``, the login shell if its name is listed, or the first
    listed one found on this device (None: none is, so no terminal); else the login shell."""
    if shell is not None:
        return shell
    own = login_shell()
    if shells is None:
        return own
    names = set(shells)
    if own in names or os.path.basename(own) in names:
        return own
    for name in shells:
        found = name if os.path.isabs(name) else shutil.which(name)
        if found is not None:
            return found
    return None


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
        argv: Sequence[str] | None = None,
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
            # argv is ``[program]`` or the program with our start-up file (shell_integration).
            self._process = subprocess.Popen(  # noqa: S603 - fixed argv from the signed grant
                list(argv or [program]),
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

    def echoes(self) -> bool:
        """Whether the terminal echoes input now (termios ``ECHO``, shared by master and slave).
        Off at a password prompt, and in line editors and full-screen programs that echo
        themselves; a closed terminal echoes nothing."""
        if self._closed:
            return False
        try:
            return bool(termios.tcgetattr(self._master)[3] & termios.ECHO)
        except termios.error:
            return False

    def foreground_group(self) -> int | None:
        """The process group reading the terminal now (the shell at its prompt, or a job)."""
        if self._closed:
            return None
        try:
            return os.tcgetpgrp(self._master)
        except OSError:
            return None

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
    before every call that opens a terminal or writes to one. Every command line seen in a
    terminal goes to ``on_command``, as it is seen: keystroke lines during :meth:`write`, the
    shell's own reports later, from the output.
    """

    def __init__(
        self,
        *,
        on_output: Callable[[int, bytes], None],
        on_exit: Callable[[int, TerminalExited], None],
        on_command: CommandSink,
        max_terminals: int = 4,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._on_output = on_output
        self._on_exit = on_exit
        self._on_command = on_command
        self._max = max_terminals
        self._clock = clock
        self._open: dict[int, tuple[PtyTerminal, CommandWatch]] = {}

    def __len__(self) -> int:
        return len(self._open)

    def __contains__(self, terminal_id: int) -> bool:
        return terminal_id in self._open

    def can_open(self, terminal_id: int) -> bool:
        return terminal_id not in self._open and len(self._open) < self._max

    def open(self, terminal_id: int, *, program: str, cols: int, rows: int) -> PtyTerminal:
        """Start ``program`` (a shell) on a new PTY; ``OSError`` if it cannot be started."""
        env = dict(os.environ)
        launch = prepare_shell(program, env=env)
        watch = CommandWatch(terminal_id, launch, on_command=self._on_command, clock=self._clock)

        def output(data: bytes) -> None:
            shown = watch.output(data)
            if shown:
                self._on_output(terminal_id, shown)

        def exited(exited: TerminalExited) -> None:
            held = watch.closing()
            if held:
                self._on_output(terminal_id, held)
            self._on_exit(terminal_id, exited)

        try:
            pty = PtyTerminal(
                program=program,
                argv=launch.argv,
                env={**env, **launch.env},
                cols=cols,
                rows=rows,
                on_output=output,
                on_exit=exited,
            )
        except BaseException:
            launch.remove_files()
            raise
        watch.attach(pty)
        self._open[terminal_id] = (pty, watch)
        return pty

    def get(self, terminal_id: int) -> PtyTerminal | None:
        entry = self._open.get(terminal_id)
        return entry[0] if entry is not None else None

    def write(self, terminal_id: int, data: bytes) -> bool:
        """Send input to a terminal; ``False`` (and nothing written) if it is not open."""
        entry = self._open.get(terminal_id)
        if entry is None:
            return False
        pty, watch = entry
        watch.input(data)
        pty.write(data)
        return True

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
