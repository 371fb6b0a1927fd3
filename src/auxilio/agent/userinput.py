"""Lines typed by the person, delivered to the asyncio loop.

Line-based on purpose: the consent questions and the session commands (``q``, ``r terminal``, chat
text) must work through any terminal, a screen reader, and a pseudo-terminal driven by a test. A
thread does the blocking reads with ``os.read`` on the descriptor (not ``sys.stdin``), so no
buffered-reader lock is held when the process exits with the thread still waiting.
"""

from __future__ import annotations

import asyncio
import os
import threading
from enum import Enum


class Signal(Enum):
    EOF = "eof"  # nobody can type any more (stdin closed)
    INTERRUPT = "interrupt"  # Ctrl-C


Line = str | Signal


class LineInput:
    def __init__(self, fd: int = 0) -> None:
        self._fd = fd
        self._queue: asyncio.Queue[Line] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._read, name="agent-stdin", daemon=True)
            self._thread.start()

    def interrupt(self) -> None:
        """Called from the SIGINT handler: Ctrl-C is an answer too (refuse, or end)."""
        self._queue.put_nowait(Signal.INTERRUPT)

    async def get(self) -> Line:
        """The next line (without its end), or a ``Signal``."""
        self.start()
        return await self._queue.get()

    def _deliver(self, item: Line) -> bool:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: the agent is exiting
            return False
        return True

    def _read(self) -> None:
        pending = b""
        while True:
            try:
                chunk = os.read(self._fd, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                if pending:
                    self._deliver(pending.decode("utf-8", "replace"))
                self._deliver(Signal.EOF)
                return
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                if not self._deliver(line.rstrip(b"\r").decode("utf-8", "replace")):
                    return
