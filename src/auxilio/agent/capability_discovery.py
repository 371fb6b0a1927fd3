"""What this agent can deliver on this device, announced in ``agent.hello``.

The server offers the person only what is announced here, so nothing is listed that the agent
cannot actually do: chat always; the terminal where the platform has pseudo-terminals and the
person's login shell exists and can be run; files always (plain file I/O, POSIX and Windows
alike); diagnostics where psutil imports (the report is gathered with it); runbooks on POSIX
where ``sh`` can be run (the shipped runbooks are shell scripts, and a runbook's own interpreter
missing is refused per run: ``runbook.interpreter_missing``); screen (view only) where the
screen extra imports (mss, numpy, python-xlib, and a JPEG encoder: Pillow or PyAV) and
``screen.display.desktop_support`` says the desktop lets it be seen: an X11 session, never
Wayland (XWayland included) nor no display. Without PyAV (the single-file agent,
docs/adr/0011-one-file-agent.md) the screen is offered all the same and streams JPEG
rectangles only: ``screen_codecs`` is then ``("jpeg",)`` and vp8/vp9 are never sent. Input
(remote control) where the desktop also has XTest (``desktop_support``'s ``control``) and the
X server records input (RECORD: the person's own input must be told from
the technician's, ``screen.local_input``).
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from collections.abc import Mapping

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


_SCREEN_MODULES = ("mss", "numpy", "Xlib")


def screen_codecs() -> tuple[str, ...]:
    """The codec families the screen capability can stream on this install, best first:
    ``("vp9", "vp8", "jpeg")`` with PyAV, ``("jpeg",)`` with Pillow alone, ``()`` when the
    screen extra is missing."""
    if not all(_imports(m) for m in _SCREEN_MODULES):
        return ()
    from auxilio.agent.screen.encoder import encodable_codecs

    return encodable_codecs()


def _screen_installed() -> bool:
    return bool(screen_codecs())


def screen_viewable(env: Mapping[str, str]) -> bool:
    """The screen extra is installed and the desktop ``env`` describes can be seen."""
    if not _screen_installed():
        return False
    from auxilio.agent.screen.display import desktop_support

    return desktop_support(env).view


def screen_capabilities(env: Mapping[str, str]) -> tuple[Capability, ...]:
    """SCREEN, and INPUT, as far as the screen extra and the desktop ``env`` describes allow."""
    if not _screen_installed():
        return ()
    from auxilio.agent.screen.display import XProbe, desktop_support, probe_x_server

    probed: list[XProbe | None] = []

    def probe(name: str) -> XProbe | None:
        probed.append(probe_x_server(name))
        return probed[-1]

    found = list(desktop_support(env, probe).capabilities)
    recorded = any(p is not None and "RECORD" in p.extensions for p in probed)
    if Capability.INPUT in found and not recorded:
        found.remove(Capability.INPUT)
    return tuple(found)


def available_capabilities(
    *,
    program: str | None = None,
    runbook_shell: str = "sh",
    env: Mapping[str, str] | None = None,
) -> tuple[Capability, ...]:
    """The capabilities this device can deliver now, in a stable order.

    ``program`` is the shell the terminal would run (the person's login shell by default);
    ``runbook_shell`` the one runbooks need; ``env`` the environment that names the desktop
    (``os.environ`` by default)."""
    found = [Capability.CHAT]
    if _has_pty() and _runnable(program if program is not None else login_shell()):
        found.append(Capability.TERMINAL)
    found.append(Capability.FILES)
    if _imports("psutil"):
        found.append(Capability.DIAGNOSTICS)
    if sys.platform != "win32" and _runnable(runbook_shell):
        found.append(Capability.RUNBOOKS)
    found.extend(screen_capabilities(os.environ if env is None else env))
    return tuple(found)
