"""When the technician is gone, with real processes: ``auxilio serve``, the technician's
``auxilio connect`` killed with Ctrl-C (SIGINT), and ``auxilio agent join`` under a
pseudo-terminal, which tells the person at once and ends after the grace period. A code whose
``connect`` was killed before anyone joined cannot be used."""

from __future__ import annotations

import signal

import pexpect
import pytest

from tests.e2e.test_proxy_attacks import World, audit, connect, finish, join, states

# The shared fixture, imported under its own name so that pytest finds it here.
from tests.e2e.test_proxy_attacks import world as world
from tests.e2e.test_support_session_e2e import JOIN_CODE

pytestmark = pytest.mark.e2e
GRACE_SECONDS = 3


@pytest.fixture
def server_env() -> dict[str, str]:
    return {"AUXILIO_TECHNICIAN_GRACE_SECONDS": str(GRACE_SECONDS)}


def test_the_person_is_told_when_connect_is_interrupted_and_the_session_ends(
    world: World,
) -> None:
    technician = connect(world, "chat:hello from the technician", "wait:120")
    technician.expect(JOIN_CODE)
    agent = join(world, technician.match.group(1), world.server)
    try:
        for _ in range(2):  # chat, terminal
            agent.expect(r"Allow \w+\? \[y/n\]")
            agent.sendline("y")
        technician.expect("secure end-to-end channel established")
        agent.expect("hello from the technician")
        technician.kill(signal.SIGINT)
        technician.expect(pexpect.EOF)
        agent.expect(f"connection dropped; waiting up to {GRACE_SECONDS} s")
        agent.expect(r"Session ended \(technician_lost, by server\)")
        transcript = finish(agent)
    finally:
        technician.close(force=True)
        agent.close(force=True)
    assert "Traceback" not in transcript
    assert states(world) == [("ended", "technician_connection_lost")]
    assert audit(world, "support_session:session:ended")[-1]["reason"] == "technician_lost"


def test_the_code_of_an_interrupted_connect_is_refused(world: World) -> None:
    technician = connect(world, "wait:120")
    technician.expect(JOIN_CODE)
    code = technician.match.group(1)
    technician.kill(signal.SIGINT)
    technician.expect(pexpect.EOF)
    technician.close(force=True)
    agent = join(world, code, world.server)
    agent.expect("join_code.technician_absent")
    transcript = finish(agent)
    assert "Allow" not in transcript and "Session active" not in transcript
    assert agent.exitstatus != 0
    assert [state for state, _ in states(world)] != ["active"]
    assert audit(world, "support_session:activated") == []
