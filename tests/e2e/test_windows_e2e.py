"""Done when (issue 8): a real agent, with no terminal option, is driven through its consent
window and its session window by real clicks on a real X server.

Real processes: ``auxilio serve``, the technician's ``auxilio connect`` and ``auxilio agent join
CODE --server URL`` (no ``--terminal``, no bypass of any kind) with ``DISPLAY`` set to a private
Xvfb. The person allows chat and terminal in the consent window, sees the technician's message
in the session window, stops the terminal there and ends the session with "End session"; the
technician and the audit log see each step.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from tests.agent.xserver import click, need_xdotool, screenshot, xvfb
from tests.e2e import test_proxy_attacks as attacks
from tests.e2e.conftest import AUXILIO
from tests.e2e.test_support_session_e2e import JOIN_CODE

pytestmark = pytest.mark.e2e
world = attacks.world  # the fixture: server, technician logged in, auditor key, a ticket
# Generous: two cores shared by many processes; nothing here measures time.
WAIT = 120


@pytest.fixture
def display() -> Iterator[str]:
    need_xdotool()
    with xvfb() as name:
        yield name


def test_the_person_consents_stops_terminal_and_ends_the_session_in_windows(
    world: attacks.World, display: str, tmp_path: Path
) -> None:
    technician = pexpect.spawn(
        AUXILIO[0],
        [*AUXILIO[1:], "connect", "--ticket", str(world.ticket), "-c", "chat", "-c", "terminal",
         "--send", "chat:Hello, this is the technician", "--send", "wait:900", "--send", "end",
         "--summary", "Window walkthrough."],
        env=world.client_env, encoding="utf-8", timeout=WAIT,
    )  # fmt: skip
    technician.expect(JOIN_CODE)
    code = technician.match.group(1)
    agent = pexpect.spawn(
        AUXILIO[0],
        [*AUXILIO[1:], "agent", "join", code, "--server", world.server,
         "--state-dir", str(world.agent_state), "--lang", "en"],
        env={**os.environ, "DISPLAY": display}, encoding="utf-8", timeout=WAIT,
        dimensions=(50, 200),
    )  # fmt: skip
    agent.logfile_read = attacks.Transcript(tmp_path / "agent-transcript.txt")
    try:
        agent.expect("A window asks for your consent.")
        click(display, "auxilio-consent-granted-chat")
        click(display, "auxilio-consent-granted-terminal")
        click(display, "auxilio-consent-confirm")
        agent.expect("chat: granted")
        agent.expect("terminal: granted")
        technician.expect("state< active granted=")
        technician.expect("secure end-to-end channel established")
        agent.expect("Hello, this is the technician")  # the live feed, in the window too
        picture = screenshot(display, "Auxilio: .*", tmp_path / "session.png")
        assert picture.stat().st_size > 10_000

        click(display, "auxilio-revoke-terminal")
        technician.expect("revoked terminal by=end_user")
        agent.expect(r"terminal revoked \(end_user\)")

        click(display, "auxilio-end-session")
        technician.expect("state< ended ended_by=end_user reason=user_ended")
        agent.expect("Session report")
        agent.expect(pexpect.EOF)
        technician.expect(pexpect.EOF)
    finally:
        agent.close()
        technician.close()
    assert agent.exitstatus == 0, (tmp_path / "agent-transcript.txt").read_text()

    revoked = attacks.audit(world, "support_session:capability:revoked")
    assert [(r["capability"], r.get("revoked_by")) for r in revoked] == [("terminal", "end_user")]
    ended = attacks.audit(world, "support_session:session:ended")
    assert ended and ended[-1].get("reason") == "user_ended", ended
    verified = subprocess.run(
        [*AUXILIO, "audit", "verify", "--data-dir", str(world.data_dir)],
        capture_output=True, text=True, timeout=WAIT, check=False,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stdout + verified.stderr
