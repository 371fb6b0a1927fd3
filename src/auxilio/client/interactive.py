"""The interactive mode of ``auxilio connect``: chat by default, the remote terminal on ``/term``.

Standard input is read with the event loop's reader on file descriptor 0 in both modes: in chat
mode the TTY is cooked and each read is a line; in terminal mode it is raw and every key goes to
the agent as typed, until Ctrl-] (the telnet/ssh-style escape) returns to chat.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import termios
import tty
from typing import Any

from auxilio.client.output import InteractiveOutput
from auxilio.client.session import TechnicianSession
from auxilio.client.steps import COMMAND_USAGE, StepError, parse_command, run_step

ESCAPE = b"\x1d"  # Ctrl-]
COMMANDS = ("/term", "/end", "/help", *COMMAND_USAGE)
HELP = (
    "Type a line to send it as a chat message. Commands: /term opens the remote terminal "
    "(Ctrl-] comes back here), /end ends the session, /help shows this. Files, diagnostics "
    "and runbooks: /ls PATH, /get REMOTE [LOCAL], /put LOCAL REMOTE, /replace LOCAL REMOTE, "
    '/diag, /runbook ID [name=value ...], each with --reason "TEXT" when it enters the '
    "person's documents, or /reason TEXT before it. A chat message that starts with / is "
    "typed with two (//)."
)


def unknown_command(line: str) -> str | None:
    """The error for a ``/command`` this client does not know, or None for anything else.

    Never sent as chat: ``/screen`` typed in the hope of a screen view must not reach the
    person as a message."""
    if not line.startswith("/") or line.startswith("//"):
        return None
    if line in COMMANDS:
        return None
    word = line.split(maxsplit=1)[0]
    if word in COMMAND_USAGE:
        return None
    if word in COMMANDS:
        return f"{word} takes no arguments (nothing was sent)"
    return f"unknown command {word}; commands: {', '.join(COMMANDS)} (nothing was sent)"


class InteractiveDriver:
    def __init__(self, output: InteractiveOutput) -> None:
        self.output = output
        self._fd = sys.stdin.fileno()
        self._saved: list[Any] | None = None
        self._pending = b""
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        # File, diagnostics and runbook steps run beside the chat: a download does not hold it.
        self.steps: set[asyncio.Task[None]] = set()

    async def __call__(self, session: TechnicianSession) -> None:
        loop = asyncio.get_running_loop()
        loop.add_reader(self._fd, self._on_stdin)
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(
                signal.SIGWINCH, lambda: asyncio.ensure_future(self._resize(session))
            )
        self.output.info(HELP)
        try:
            while not session.ended.is_set():
                data = await self._next(session)
                if data is None:
                    break
                if self.output.raw_terminal:
                    await self._terminal_keys(session, data)
                else:
                    await self._chat_input(session, data)
        finally:
            for step in self.steps:
                step.cancel()
            self._leave_raw()
            loop.remove_reader(self._fd)
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signal.SIGWINCH)

    def _on_stdin(self) -> None:
        try:
            data = os.read(self._fd, 4096)
        except OSError:
            data = b""
        self._queue.put_nowait(data)

    async def _next(self, session: TechnicianSession) -> bytes | None:
        getter = asyncio.ensure_future(self._queue.get())
        ended = asyncio.ensure_future(session.ended.wait())
        await asyncio.wait({getter, ended}, return_when=asyncio.FIRST_COMPLETED)
        ended.cancel()
        if not getter.done():
            getter.cancel()
            return None
        data = getter.result()
        if not data:  # end of input: the technician closed stdin, end as with /end
            await session.end()
            return None
        return data

    async def _chat_input(self, session: TechnicianSession, data: bytes) -> None:
        self._pending += data
        while b"\n" in self._pending:
            raw, self._pending = self._pending.split(b"\n", 1)
            line = raw.decode("utf-8", errors="replace").strip()
            if not line:
                continue
            if line == "/end":
                await session.end()
                return
            problem = unknown_command(line)
            if problem is not None:
                self.output.error(problem)
            elif line == "/help":
                self.output.info(HELP)
            elif line == "/term":
                await self._enter_terminal(session)
                return
            elif line.split(maxsplit=1)[0] in COMMAND_USAGE:
                self._start_step(session, line)
            else:
                await session.send_chat(line[1:] if line.startswith("//") else line)

    def _start_step(self, session: TechnicianSession, line: str) -> None:
        try:
            action = parse_command(line)
        except StepError as exc:
            self.output.error(f"{exc} (nothing was sent)")
            return
        if action is None:  # not reached: the caller checked the command word
            return
        step = asyncio.create_task(run_step(session, action))
        self.steps.add(step)
        step.add_done_callback(self.steps.discard)

    async def _enter_terminal(self, session: TechnicianSession) -> None:
        if "terminal" in session.revoked:
            by, at = session.revoked["terminal"]
            self.output.info(f"the terminal was revoked by the {by.replace('_', ' ')} at "
                             f"{at.astimezone():%H:%M:%S %Z}")  # fmt: skip
            return
        if "terminal" not in session.granted:
            self.output.info("the terminal was not granted in this session")
            return
        if not os.isatty(self._fd):
            self.output.info("/term needs a terminal on standard input")
            return
        cols, rows = shutil.get_terminal_size()
        if not session.terminal_open:
            await session.open_terminal(cols, rows)
        self.output.info("remote terminal; Ctrl-] returns to chat")
        self._saved = termios.tcgetattr(self._fd)
        tty.setraw(self._fd)
        self.output.raw_terminal = True

    async def _terminal_keys(self, session: TechnicianSession, data: bytes) -> None:
        if ESCAPE in data:
            before = data.split(ESCAPE, 1)[0]
            if before:
                await session.terminal_input(before)
            self._leave_raw()
            self.output.info("back in chat")
            return
        if not session.terminal_open:
            self._leave_raw()
            self.output.info("the remote terminal is closed; back in chat")
            return
        await session.terminal_input(data)

    def _leave_raw(self) -> None:
        if self._saved is not None:
            termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
            self._saved = None
        self.output.raw_terminal = False

    async def _resize(self, session: TechnicianSession) -> None:
        cols, rows = shutil.get_terminal_size()
        await session.resize_terminal(cols, rows)
