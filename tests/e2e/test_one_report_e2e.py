"""One report, the same on both sides (issue 8, section 3), across real processes.

Observed before: for one session the person's report said granted "chat, terminal (revoked)",
used "chat, terminal"; the technician's said granted "chat", used "terminal"; the person's report
came before the summary, and the technician's CLI printed a key dump. Now the server builds the
report once; the agent shows it (after the summary) and checks it against its own log.
"""

from __future__ import annotations

import re

import pexpect
import pytest

from tests.e2e.test_proxy_attacks import World, connect, join, world  # noqa: F401 -- fixture
from tests.e2e.test_support_session_e2e import JOIN_CODE

pytestmark = pytest.mark.e2e
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
FIELDS = ("Support session", "Technician", "Ticket", "Started", "Ended", "Duration",
          "Capabilities granted", "Capabilities used", "Commands run", "Recorded", "End reason",
          "Summary")  # fmt: skip


def report_of(text: str, prefix: str = "") -> dict[str, str]:
    """The report's fields as printed, from the last report in ``text``."""
    fields: dict[str, str] = {}
    for raw in ANSI.sub("", text).replace("\r", "").splitlines():
        line = raw.strip()
        if prefix:
            if not line.startswith(prefix):
                continue
            line = line[len(prefix) :]
        name, sep, value = line.partition(": ")
        if sep and name in FIELDS:
            fields[name] = value.strip()
    return fields


def test_the_person_and_the_technician_get_the_same_report_field_by_field(
    world: World,  # noqa: F811 -- the fixture imported above
) -> None:
    technician = connect(world, "chat:hello", "expect:hi there", "term:echo used-$((1+1))",
                         "expect:used-2", "expect:all done", "end")  # fmt: skip
    technician.expect(JOIN_CODE)
    agent = join(world, technician.match.group(1), world.server)
    for _ in range(2):
        agent.expect(r"Allow \w+\? \[y/n\]")
        agent.sendline("y")
    agent.expect("hello")
    agent.sendline("hi there")
    agent.expect("echo used")
    agent.sendline("r terminal")
    agent.expect("terminal revoked")
    agent.sendline("all done")
    technician.expect("summary saved")
    technician.expect(pexpect.EOF)
    technician_text = str(technician.before or "")
    technician.close()
    agent.expect("own log agrees with the report")
    agent.expect(pexpect.EOF)
    agent.close()
    agent_text = (world.agent_state.parent / "agent-transcript.txt").read_text()

    person = report_of(agent_text)
    staff = report_of(technician_text, prefix="report< ")
    assert set(person) == set(FIELDS), agent_text
    assert person == staff
    assert person["Capabilities granted"] == "chat, terminal (revoked)"
    assert person["Capabilities used"] == "chat, terminal"
    assert person["Commands run"] == "1"
    assert person["Summary"] == "Attack test."
    assert "differs from the server's report" not in agent_text
