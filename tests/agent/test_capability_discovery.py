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


def test_chat_and_the_terminal_with_a_runnable_shell() -> None:
    assert available_capabilities(program="/bin/sh") == (Capability.CHAT, Capability.TERMINAL)


def test_no_terminal_when_the_shell_does_not_exist(tmp_path: Path) -> None:
    assert available_capabilities(program=str(tmp_path / "no-such-shell")) == (Capability.CHAT,)


def test_no_terminal_when_the_shell_cannot_be_run(tmp_path: Path) -> None:
    shell = tmp_path / "shell"
    shell.write_text("#!/bin/sh\n")
    os.chmod(shell, 0o600)
    assert available_capabilities(program=str(shell)) == (Capability.CHAT,)


def test_no_terminal_without_pseudo_terminals(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capability_discovery.sys, "platform", "win32")
    assert available_capabilities(program=sys.executable) == (Capability.CHAT,)


def test_never_more_than_an_agent_of_this_version_can_deliver() -> None:
    assert set(available_capabilities()) <= AGENT_CAPABILITIES
