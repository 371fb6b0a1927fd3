"""The agent announces only what it can deliver on this device."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from auxilio.agent import capability_discovery
from auxilio.agent.capability_discovery import available_capabilities
from auxilio.protocol.frames import AGENT_CAPABILITIES
from auxilio.protocol.types import Capability

EVERYTHING = (
    Capability.CHAT, Capability.TERMINAL, Capability.FILES, Capability.DIAGNOSTICS,
    Capability.RUNBOOKS,
)  # fmt: skip
WITHOUT_TERMINAL = tuple(c for c in EVERYTHING if c is not Capability.TERMINAL)


@pytest.fixture(autouse=True)
def no_desktop(monkeypatch: pytest.MonkeyPatch) -> None:
    """No display here (a developer's desktop would add screen): screen's discovery is tested
    on Xvfb in tests/agent/test_screen_capability.py."""
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "XDG_SESSION_TYPE"):
        monkeypatch.delenv(name, raising=False)


def test_everything_with_a_runnable_shell_psutil_and_sh() -> None:
    assert available_capabilities(program="/bin/sh") == EVERYTHING


def test_no_terminal_when_the_shell_does_not_exist(tmp_path: Path) -> None:
    assert available_capabilities(program=str(tmp_path / "no-such-shell")) == WITHOUT_TERMINAL


def test_no_terminal_when_the_shell_cannot_be_run(tmp_path: Path) -> None:
    shell = tmp_path / "shell"
    shell.write_text("#!/bin/sh\n")
    os.chmod(shell, 0o600)
    assert available_capabilities(program=str(shell)) == WITHOUT_TERMINAL


def test_windows_has_files_and_diagnostics_but_no_terminal_nor_runbooks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(capability_discovery.sys, "platform", "win32")
    assert available_capabilities(program=sys.executable) == (
        Capability.CHAT, Capability.FILES, Capability.DIAGNOSTICS,
    )  # fmt: skip


def test_no_diagnostics_without_psutil(monkeypatch: pytest.MonkeyPatch) -> None:
    # As if psutil were not installed. Not through sys.modules["psutil"] = None: the test
    # hooks of tests/conftest.py use psutil around every test, and psutil looks itself up there.
    real = capability_discovery._imports
    monkeypatch.setattr(capability_discovery, "_imports", lambda m: m != "psutil" and real(m))
    found = available_capabilities(program="/bin/sh")
    assert Capability.DIAGNOSTICS not in found
    assert Capability.FILES in found and Capability.RUNBOOKS in found


def test_no_runbooks_without_sh(tmp_path: Path) -> None:
    found = available_capabilities(program="/bin/sh", runbook_shell=str(tmp_path / "no-sh"))
    assert Capability.RUNBOOKS not in found
    assert Capability.DIAGNOSTICS in found


def test_never_more_than_an_agent_of_this_version_can_deliver() -> None:
    assert set(available_capabilities()) <= AGENT_CAPABILITIES
