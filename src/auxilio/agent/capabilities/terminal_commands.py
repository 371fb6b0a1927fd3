"""What ran in a terminal: the shell's own markers, or else the technician's keystrokes.

The shell reports a line just before it runs it (``shell_integration``); where it cannot (a shell
without integration, a replaced shell, another shell started from it), typed lines up to Enter are
taken instead and labelled ``keystrokes``: what was typed, which may differ from what ran. The
fallback never looks at input typed while the terminal does not echo (a password prompt).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import psutil  # type: ignore[import-untyped]  # no stubs among the dev dependencies

from auxilio.agent.capabilities.shell_integration import (
    MAX_COMMAND_CHARS,
    MarkerKind,
    MarkerParser,
    ShellLaunch,
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


class CommandLineDetector:
    """Turns input bytes into the command lines they submit: the keystroke fallback only.

    Line editing is approximated (backspace, Ctrl-U, Ctrl-C, escape sequences such as arrow keys
    are dropped): the shell's history recall and its own key bindings cannot be seen from the
    input alone, which is why its lines are labelled as typed, not as run.
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
class ObservedCommand:
    """A command line seen in a terminal: reported by the shell as it ran it
    (``ActivitySource.SHELL_INTEGRATION``) or typed by the technician
    (``ActivitySource.KEYSTROKES``, which may differ from what ran)."""

    terminal_id: int
    text: str
    source: ActivitySource
    at: datetime


@dataclass(frozen=True, slots=True)
class ShellReplaced:
    """The integrated shell of a terminal is no longer running there (``exec``): from now on its
    commands can only be seen as typed, and not at all where the new program edits lines."""

    terminal_id: int
    program: str  # the name of what runs now
    at: datetime


CommandSink = Callable[[ObservedCommand | ShellReplaced], None]


class WatchedTerminal(Protocol):
    """What the watch needs of a PTY (``terminal.PtyTerminal``)."""

    @property
    def pid(self) -> int: ...

    def echoes(self) -> bool: ...

    def foreground_group(self) -> int | None: ...


def utc_now() -> datetime:
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
    (``exec``: its argv changed; said once, as :class:`ShellReplaced`), or another shell (``sh``
    started from it) reads the terminal.
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
        self._pty: WatchedTerminal | None = None
        self._argv: list[str] | None = None
        self._replaced = False

    def attach(self, pty: WatchedTerminal) -> None:
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
        if self._parser is not None and not self._replaced and (b"\r" in data or b"\n" in data):
            self._check_replaced(self._pty)
        if not self._pty.echoes():
            self._detector.reset()
            return
        lines = self._detector.feed(data)
        if lines and self._keystrokes_count(self._pty):
            for line in lines:
                self._emit(line, ActivitySource.KEYSTROKES)

    def _check_replaced(self, pty: WatchedTerminal) -> None:
        # Each Enter: had the line before it ``exec``ed something in place of the shell?
        shell = _process_facts(pty.pid)
        if shell is None or self._argv is None or shell[0] == self._argv:
            return  # the same shell, or one that is exiting (the terminal closes next)
        self._replaced = True
        self._on_command(ShellReplaced(self.terminal_id, shell[1], self._clock()))

    def _keystrokes_count(self, pty: WatchedTerminal) -> bool:
        if self._parser is None or self._replaced:
            return True
        group = pty.foreground_group()
        if group is None or group == pty.pid:
            return False  # the integrated shell reads this line and reports what it runs
        leader = _process_facts(group)
        return leader is not None and leader[1] in SHELL_NAMES
