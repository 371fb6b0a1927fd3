"""The terminal capability: a real pseudo-terminal running the shell the grant allows.

Output is read on the asyncio loop (``add_reader`` on the PTY master); the child is a session
leader with the PTY as its controlling terminal, so job control, Ctrl-C and ``SIGWINCH`` on resize
behave as in a local terminal.

The commands the person's feed and the audit show come from the shell itself where it can tell
(bash, zsh, fish: ``shell_integration``, source ``shell_integration``): what it runs, after line
editing, history recall and pasting. Other shells fall back to the technician's keystrokes up to
Enter (source ``keystrokes``: typed, which may differ from what ran). Nothing typed while the
terminal does not echo (a password prompt) is ever looked at. Metadata only, never the output.
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import psutil  # type: ignore[import-untyped]  # no stubs among the dev dependencies

from auxilio.agent.capabilities.shell_integration import (
    MAX_COMMAND_CHARS,
    MarkerKind,
    MarkerParser,
    ShellLaunch,
    prepare_shell,
)
from auxilio.protocol.frames import ActivitySource

MAX_SUBJECT = MAX_COMMAND_CHARS
# Programs whose input, when one of them (not the integrated shell) reads the terminal, is taken
# as command lines by the keystroke fallback.
SHELL_NAMES = frozenset(
    {"sh", "ash", "dash", "bash", "zsh", "fish", "ksh", "ksh93", "mksh", "pdksh", "oksh",
     "yash", "posh", "csh", "tcsh", "busybox", "elvish", "nu", "xonsh", "pwsh"}
)  # fmt: skip
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

    def reset(self) -> None:
        """Forget the line being typed (the terminal stopped echoing: what follows is secret, and
        so may be the rest of this line)."""
        self._line.clear()
        self._escape = 0

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


@dataclass(frozen=True, slots=True)
class ObservedCommand:
    """A command line seen in a terminal: reported by the shell as it ran it
    (``ActivitySource.SHELL_INTEGRATION``) or typed by the technician
    (``ActivitySource.KEYSTROKES``, which may differ from what ran)."""

    terminal_id: int
    text: str
    source: ActivitySource
    at: datetime


OutputSink = Callable[[bytes], None]
ExitSink = Callable[[TerminalExited], None]
CommandSink = Callable[[ObservedCommand], None]


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


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _process_facts(pid: int) -> tuple[list[str], str] | None:
    """A process's argv and name, or ``None`` when it is gone or hidden from us."""
    try:
        process = psutil.Process(pid)
        return list(process.cmdline()), str(process.name())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


class CommandWatch:
    """What one terminal ran: the shell's markers (taken out of the output), else keystrokes.

    The keystroke fallback reports a line (labelled ``keystrokes``) when the terminal echoed the
    batch it was typed in, and either the shell has no integration, or it was replaced
    (``exec``: its argv changed), or another shell (``sh`` started from it) reads the terminal.
    """

    def __init__(
        self,
        terminal_id: int,
        launch: ShellLaunch,
        *,
        on_command: CommandSink,
        clock: Callable[[], datetime],
    ) -> None:
        self.terminal_id = terminal_id
        self.launch = launch
        self._on_command = on_command
        self._clock = clock
        self._parser = MarkerParser(launch.nonce) if launch.nonce is not None else None
        self._detector = CommandLineDetector()
        self._pty: PtyTerminal | None = None
        self._argv: list[str] | None = None

    def attach(self, pty: PtyTerminal) -> None:
        self._pty = pty
        facts = _process_facts(pty.pid)
        self._argv = facts[0] if facts is not None else None

    def _emit(self, text: str, source: ActivitySource) -> None:
        if text.strip():
            self._on_command(ObservedCommand(self.terminal_id, text.strip(), source, self._clock()))

    def output(self, data: bytes) -> bytes:
        """The output with our markers taken out; each command marker is reported."""
        if self._parser is None:
            return data
        shown, markers = self._parser.feed(data)
        for marker in markers:
            if marker.kind is MarkerKind.PROMPT:
                self.launch.remove_files()  # read by now: nothing else needs them
            else:
                self._emit(marker.text, ActivitySource.SHELL_INTEGRATION)
        return shown

    def closing(self) -> bytes:
        self.launch.remove_files()
        return self._parser.flush() if self._parser is not None else b""

    def input(self, data: bytes) -> None:
        """Input about to be written to the terminal."""
        if self._pty is None:
            return
        if not self._pty.echoes():
            self._detector.reset()
            return
        lines = self._detector.feed(data)
        if lines and self._keystrokes_count():
            for line in lines:
                self._emit(line, ActivitySource.KEYSTROKES)

    def _keystrokes_count(self) -> bool:
        assert self._pty is not None  # noqa: S101 -- input() checked it
        if self._parser is None:
            return True
        shell = _process_facts(self._pty.pid)
        if shell is None or shell[0] != self._argv:
            return True  # the integrated shell was replaced (exec) or is gone
        group = self._pty.foreground_group()
        if group is None or group == self._pty.pid:
            return False  # the integrated shell reads this line and reports what it runs
        leader = _process_facts(group)
        return leader is not None and leader[1] in SHELL_NAMES


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
        clock: Callable[[], datetime] = _utc_now,
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
