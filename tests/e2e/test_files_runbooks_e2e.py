"""Files, zones, diagnostics and a runbook across real processes (issue 9, "Done when").

`auxilio serve`, `auxilio agent join` (its HOME a temporary folder with Documents/taxes.txt) and
`auxilio connect` with scripted steps: a file is uploaded to the device and another downloaded,
the technician's download of the tax file hits the documents zone and its question (the person
refuses, then allows), diagnostics are shown and sent, an approved runbook the grant pins runs
with the person's yes, and both results are attached to the ticket. The report counts it all on
both sides.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import httpx
import pexpect
import pytest

from tests.e2e.conftest import totp_code
from tests.e2e.test_one_report_e2e import report_of
from tests.e2e.test_proxy_attacks import Transcript, World, world  # noqa: F401 -- fixture
from tests.e2e.test_support_session_e2e import AUXILIO, JOIN_CODE, PASSWORD

pytestmark = pytest.mark.e2e
ORG = "e2e-support"
REASON = "Your tax form does not print; I need to look at the file"


def admin(where: World, *args: str) -> str:
    done = subprocess.run([*AUXILIO, "admin", *args, "--data-dir", str(where.data_dir)],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_files_both_ways_a_zone_refused_then_allowed_diagnostics_and_a_runbook(
    world: World,  # noqa: F811 -- the fixture imported above
    tmp_path: Path,
) -> None:
    # The catalogue: the examples drafted by the technician, flush-dns approved by the admin
    # (the default policy asks for two people).
    admin(world, "runbooks", "import-examples", "--org", ORG, "--author", "tech@example.test")
    admin(world, "runbooks", "approve", "--org", ORG, "--id", "flush-dns",
          "--approver", "admin@example.test")  # fmt: skip

    home = tmp_path / "person-home"
    (home / "Documents").mkdir(parents=True)
    taxes = home / "Documents" / "taxes.txt"
    taxes.write_text("income 2025: 41,200\n")
    device = tmp_path / "device"
    device.mkdir()
    (device / "printer.log").write_bytes(os.urandom(3 * 1024 * 1024 + 17))  # several chunks
    local = tmp_path / "technician"
    local.mkdir()
    (local / "fix.conf").write_text("[printer]\nqueue = reset\n")

    steps = [
        f"put:{local / 'fix.conf'}=>{device / 'fix.conf'}",
        f"get:{device / 'printer.log'}=>{local / 'printer.log'}",
        f"reason:{REASON}",
        f"get:{taxes}=>{local / 'taxes-1.txt'}",
        f"reason:{REASON}",
        f"get:{taxes}=>{local / 'taxes-2.txt'}",
        "diag:",
        "runbook:flush-dns",
        "expect:thanks",
        "end",
    ]
    technician = pexpect.spawn(
        AUXILIO[0],
        [*AUXILIO[1:], "connect", "--ticket", str(world.ticket), "-c", "chat", "-c", "files",
         "-c", "diagnostics", "-c", "runbooks", "--files-direction", "both",
         "--runbook", "flush-dns", *[a for s in steps for a in ("--send", s)],
         "--summary", "Printer fixed."],
        env=world.client_env, encoding="utf-8", timeout=90,
    )  # fmt: skip
    technician.logfile_read = Transcript(tmp_path / "technician-transcript.txt")
    technician.expect(JOIN_CODE)
    agent = pexpect.spawn(
        AUXILIO[0],
        [*AUXILIO[1:], "agent", "join", technician.match.group(1), "--server", world.server,
         "--state-dir", str(world.agent_state), "--terminal"],
        encoding="utf-8", timeout=90, dimensions=(50, 220),
        env={**os.environ, "COLUMNS": "220", "HOME": str(home)},
    )  # fmt: skip
    agent.logfile_read = Transcript(tmp_path / "agent-transcript.txt")
    for _ in range(4):  # chat, files, diagnostics, runbooks
        agent.expect(r"Allow \w+\? \[y/n\]")
        agent.sendline("y")

    technician.expect(r"files< put .*fix\.conf size=24")
    technician.expect(r"files< got .*printer\.log size=3145745 sha256=(\w+)")
    assert technician.match.group(1) == hashlib.sha256(
        (device / "printer.log").read_bytes()).hexdigest()
    # The tax file: the person is asked, with the technician's reason, and says no.
    agent.expect("asks to open your documents")
    agent.expect(REASON[:40])
    agent.expect(r"Type y")
    agent.sendline("n")
    technician.expect("error< files.zone_refused")
    assert not (local / "taxes-1.txt").exists()
    # Asked again; this time the person allows it.
    agent.expect("asks to open your documents")
    agent.expect(r"Type y")
    agent.sendline("y")
    technician.expect(r"files< got .*taxes\.txt .*size=20")
    assert (local / "taxes-2.txt").read_text() == taxes.read_text()
    # Diagnostics: seen by the person first, then sent and attached to the ticket.
    agent.expect("asks for this system report")
    agent.expect(r"Type y")
    agent.sendline("y")
    technician.expect(r"diag< report collected_at=")
    technician.expect(r"diag< attached to the ticket")
    # The runbook: the person sees what it is and says yes.
    agent.expect("wants to run an approved script")
    agent.expect(r"Type y")
    agent.sendline("y")
    technician.expect(r"runbook< flush-dns v1 exit=\d+")
    technician.expect(r"runbook< attached to the ticket")
    agent.sendline("thanks")
    technician.expect("summary saved")
    technician.expect(pexpect.EOF)
    technician_text = (tmp_path / "technician-transcript.txt").read_text()
    agent.expect(pexpect.EOF)
    agent_text = (tmp_path / "agent-transcript.txt").read_text()

    assert (device / "fix.conf").read_text() == "[printer]\nqueue = reset\n"
    person = report_of(agent_text)
    staff = report_of(technician_text, prefix="report< ")
    assert person == staff
    assert "differs from the server's report" not in agent_text
    # The person's own report names the files; the shared one counts them.
    assert str(taxes) in agent_text
    attachments = _attachments(world)
    assert sorted(a["kind"] for a in attachments) == ["diagnostics", "runbook_result"]
    # Both are what the device reported sending (their digests are in its activity reports).
    assert all(a["verified"] for a in attachments), attachments


def _attachments(where: World) -> list[dict[str, object]]:
    secret = where.admin_secret
    login = httpx.post(f"{where.server}/api/v1/auth/login",
                       json={"email": "admin@example.test", "password": PASSWORD,
                             "totp_code": totp_code(secret)}, timeout=60)  # fmt: skip
    assert login.status_code == 200, login.text
    headers = {"Authorization": f"Bearer {login.json()['token']}"}
    tickets = httpx.get(f"{where.server}/api/v1/tickets", headers=headers, timeout=60).json()
    ticket = next(t for t in tickets["items"] if t["number"] == where.ticket)
    listed = httpx.get(f"{where.server}/api/v1/tickets/{ticket['id']}/attachments",
                       headers=headers, timeout=60)  # fmt: skip
    assert listed.status_code == 200, listed.text
    items: list[dict[str, object]] = listed.json()
    return items
