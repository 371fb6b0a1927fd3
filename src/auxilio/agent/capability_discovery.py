"""What this agent can deliver on this device, announced in ``agent.hello``.

The server offers the person only what is announced here, so nothing is listed that the agent
cannot actually do: chat always; the terminal where the platform has pseudo-terminals and the
person's login shell exists and can be run. Files, screen, input, diagnostics and runbooks have no
implementation yet and are never announced; the issues that add them add them here.
"""

from __future__ import annotations

import os
import shutil
import sys

from auxilio.agent.capabilities.terminal import login_shell
from auxilio.protocol.types import Capability


def _has_pty() -> bool:
    # The terminal capability forks onto a PTY (os.openpty + TIOCSCTTY): POSIX only.
    return sys.platform != "win32" and hasattr(os, "openpty")


def _runnable(program: str) -> bool:
    found = program if os.path.isabs(program) else shutil.which(program)
    return found is not None and os.path.isfile(found) and os.access(found, os.X_OK)


def available_capabilities(*, program: str | None = None) -> tuple[Capability, ...]:
    """The capabilities this device can deliver now, in a stable order.

    ``program`` is the shell the terminal would run (the person's login shell by default)."""
    found = [Capability.CHAT]
    if _has_pty() and _runnable(program if program is not None else login_shell()):
        found.append(Capability.TERMINAL)
    return tuple(found)
