"""How ``auxilio connect`` shows what happens: stable prefixes for scripts, plain text for people.

Scripted output is a contract for tests and automation: every received item is one line that
starts with ``chat< ``, ``term< ``, ``state< `` or ``error< ``. Terminal output is split into lines
with escape sequences and carriage returns removed, because a shell's prompt redraws are noise to a
line-based reader.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Protocol, TextIO

# CSI and OSC sequences, and the two-byte escapes a shell's line editor emits.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
# Bound on a partial terminal line kept between reads: a program printing without newlines must
# not grow it without limit.
_MAX_PARTIAL = 64 * 1024


def clean_terminal_text(data: str) -> str:
    return _ANSI.sub("", data).replace("\r", "")


class SessionOutput(Protocol):
    def state(self, text: str) -> None: ...
    def chat(self, text: str) -> None: ...
    def term(self, data: bytes) -> None: ...
    def flush_term(self) -> None: ...
    def info(self, text: str) -> None: ...
    def error(self, text: str) -> None: ...


class PrefixedOutput:
    """One line per received item, with a stable prefix (scripted mode)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stdout
        self._partial = ""

    def _line(self, text: str) -> None:
        self._stream.write(text + "\n")
        self._stream.flush()

    def state(self, text: str) -> None:
        self._line(f"state< {text}")

    def chat(self, text: str) -> None:
        for line in text.splitlines() or [""]:
            self._line(f"chat< {line}")

    def term(self, data: bytes) -> None:
        text = self._partial + clean_terminal_text(data.decode("utf-8", errors="replace"))
        *complete, self._partial = text.split("\n")
        for line in complete:
            self._line(f"term< {line}")
        if len(self._partial) > _MAX_PARTIAL:
            self.flush_term()

    def flush_term(self) -> None:
        if self._partial:
            partial, self._partial = self._partial, ""
            self._line(f"term< {partial}")

    def info(self, text: str) -> None:
        self._line(text)

    def error(self, text: str) -> None:
        self._line(f"error< {text}")


class InteractiveOutput(PrefixedOutput):
    """For a person at a TTY: the same lines, except that in terminal mode the remote terminal's
    bytes go to the screen unchanged (colours, cursor movement and all)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self.raw_terminal = False

    def term(self, data: bytes) -> None:
        if self.raw_terminal:
            os.write(sys.stdout.fileno(), data)
            return
        super().term(data)

    def _line(self, text: str) -> None:
        # In raw mode the TTY does no CR/LF translation: end lines with both.
        end = "\r\n" if self.raw_terminal else "\n"
        self._stream.write(text + end)
        self._stream.flush()
