"""``auxilio agent join`` as a real process, answered through a pseudo-terminal, against a
scripted broker speaking the real protocol (tests/agent/fake_broker.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from auxilio.protocol.frames import SessionActivity, SessionEnd

from .fake_broker import BAD_CODE, FakeBroker


@pytest.fixture
def broker() -> Iterator[FakeBroker]:
    made = FakeBroker()
    made.start()
    yield made
    made.stop()


def agent(*args: str) -> pexpect.spawn:
    return pexpect.spawn(
        sys.executable, ["-m", "auxilio.agent", *args], encoding="utf-8", timeout=20,
        dimensions=(50, 200), env={"PATH": "/usr/bin:/bin", "TERM": "dumb", "HOME": "/tmp"},
    )  # fmt: skip


def finish(child: pexpect.spawn) -> int:
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus is not None
    return child.exitstatus


def test_join_consent_terminal_and_end_with_report(tmp_path: Path, broker: FakeBroker) -> None:
    child = agent("join", "ABC-DEF-GHJ", "--server", broker.url, "--state-dir", str(tmp_path))
    child.expect("Server fingerprint: SHA256:")
    child.expect(r"Allow chat\? \[y/n\]")
    child.sendline("y")
    child.expect(r"Allow terminal\? \[y/n\]")
    child.sendline("y")
    child.expect("Session active")
    # The broker grants /bin/sh: no shell integration, so the line is shown as typed.
    child.expect(r"Technician typed \(may differ from what ran\): echo from-technician")
    child.sendline("q")
    child.expect("Session report")
    child.expect("Commands run: 1")
    child.expect(r"End reason: user_ended \(by end_user\)")
    assert finish(child) == 0
    [end] = [m for m in broker.received if isinstance(m, SessionEnd)]
    assert (end.ended_by, end.reason) == ("end_user", "user_ended")
    commands = [m for m in broker.received if isinstance(m, SessionActivity)
                and m.kind == "command_run"]  # fmt: skip
    # The person's report above lists the command; the server is sent no details (no auditor
    # key in this grant), only the kind.
    assert [m.sealed_details for m in commands] == [None]

    listing = agent("receipts", "--state-dir", str(tmp_path))
    listing.expect("technician Ana López")
    listing.expect("chat=granted, terminal=granted")
    listing.expect("signature ok")
    assert finish(listing) == 0


def test_refusing_everything_ends_cleanly(tmp_path: Path, broker: FakeBroker) -> None:
    child = agent("join", "ABC-DEF-GHJ", "--server", broker.url, "--state-dir", str(tmp_path))
    child.expect(r"Allow chat\? \[y/n\]")
    child.sendline("n")
    child.expect(r"Allow terminal\? \[y/n\]")
    child.sendline("n")
    child.expect(r"End reason: consent_refused")
    assert finish(child) == 0


def test_a_refused_join_code_exits_1_with_the_code(tmp_path: Path, broker: FakeBroker) -> None:
    child = agent("join", BAD_CODE, "--server", broker.url, "--state-dir", str(tmp_path))
    child.expect(r"Error join_code\.invalid: unknown join code")
    assert finish(child) == 1


def test_a_changed_server_key_is_refused_with_exit_3(tmp_path: Path, broker: FakeBroker) -> None:
    first = agent("join", BAD_CODE, "--server", broker.url, "--state-dir", str(tmp_path))
    first.expect("Pinned the server key")
    assert finish(first) == 1
    impostor = FakeBroker(port=0)
    impostor.start()
    try:
        # Same origin, other key: the pin is per scheme://host:port, so reuse the port's origin.
        known = (tmp_path / "known_servers.json").read_text()
        (tmp_path / "known_servers.json").write_text(known.replace(broker.url, impostor.url))
        child = agent("join", "ABC-DEF-GHJ", "--server", impostor.url, "--state-dir", str(tmp_path))
        child.expect(r"Error server\.key_changed")
        assert "Allow" not in (child.before or "")
        assert finish(child) == 3
    finally:
        impostor.stop()


def test_ctrl_c_ends_the_session_and_a_non_granted_terminal_never_opens(
    tmp_path: Path, broker: FakeBroker
) -> None:
    broker.command = b"touch " + str(tmp_path / "pwned").encode() + b"\r"
    child = agent("join", "ABC-DEF-GHJ", "--server", broker.url, "--state-dir", str(tmp_path))
    child.expect(r"Allow chat\? \[y/n\]")
    child.sendline("y")
    child.expect(r"Allow terminal\? \[y/n\]")
    child.sendline("n")
    child.expect("Refused: the technician tried to open a terminal; terminal is not allowed.")
    child.sendintr()
    child.expect(r"End reason: user_ended \(by end_user\)")
    assert finish(child) == 0
    assert not (tmp_path / "pwned").exists()
    assert not [m for m in broker.received if isinstance(m, SessionActivity)]
