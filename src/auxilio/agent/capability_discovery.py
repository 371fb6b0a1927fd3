"""What this agent can deliver on this device, announced in ``agent.hello``.

The server offers the person only what is announced here, so nothing is listed that the agent
cannot actually do: chat always; the terminal where the platform has pseudo-terminals and the
person's login shell exists and can be run; files always (plain file I/O, POSIX and Windows
alike); diagnostics where psutil imports (the report is gathered with it); runbooks on POSIX
where ``sh`` can be run (the shipped runbooks are shell scripts, and a runbook's own interpreter
missing is refused per run: ``runbook.interpreter_missing``). Screen and input have no
implementation yet and are never announced; the issue that adds them adds them here.
"""

from __future__ import annotations

import importlib
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


def _imports(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def available_capabilities(
    *, program: str | None = None, runbook_shell: str = "sh"
) -> tuple[Capability, ...]:
    """The capabilities this device can deliver now, in a stable order.

    ``program`` is the shell the terminal would run (the person's login shell by default);
    ``runbook_shell`` the one runbooks need."""
    found = [Capability.CHAT]
    if _has_pty() and _runnable(program if program is not None else login_shell()):
        found.append(Capability.TERMINAL)
    found.append(Capability.FILES)
    if _imports("psutil"):
        found.append(Capability.DIAGNOSTICS)
    if sys.platform != "win32" and _runnable(runbook_shell):
        found.append(Capability.RUNBOOKS)
    return tuple(found)
