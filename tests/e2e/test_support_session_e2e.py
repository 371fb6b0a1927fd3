"""A support session across real processes: server, agent and technician client.

``auxilio serve`` on a free port with a temporary data directory; users made with ``auxilio admin
create-user`` (the technician's TOTP set up from the printed otpauth URI); ``auxilio login``; a
ticket opened by the end user over REST; ``auxilio connect --ticket ... --send ...`` in scripted
mode; ``auxilio agent join CODE`` under a pseudo-terminal (pexpect) answering the consent prompt.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pexpect
import pyotp
import pytest

from tests.e2e.conftest import AUXILIO, PASSWORD, totp_code

pytestmark = pytest.mark.e2e

ORG = "e2e-support"
JOIN_CODE = re.compile(r"join_code=([A-Z0-9]{3}-[A-Z0-9]{3}-[A-Z0-9]{3})")


@pytest.fixture
def client_env(tmp_path: Path) -> dict[str, str]:
    # The client keeps its token and session keys here, never in the real home directory.
    return {**os.environ, "AUXILIO_CONFIG_DIR": str(tmp_path / "client-config")}


def create_user(data_dir: Path, email: str, role: str) -> str:
    # Technicians get the ticket's skill, so that the ticket is routed to them (it is theirs).
    skills = ["--skills", "software"] if "technician" in role else []
    done = subprocess.run(
        [*AUXILIO, "admin", "create-user", email, "--role", role, "--org", ORG,
         "--password-stdin", "--hours", "mon-sun 00:00-24:00", "--data-dir", str(data_dir),
         *skills],
        input=PASSWORD + "\n", capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


def totp_secret(output: str) -> str:
    uri = next(line for line in output.splitlines() if line.startswith("otpauth://"))
    return str(pyotp.parse_uri(uri).secret)


def record_trainings(server: str, admin_secret: str, technician_id: str) -> None:
    """The default policy requires the privacy and approved-tools trainings of technicians."""
    login = httpx.post(
        f"{server}/api/v1/auth/login",
        json={"email": "admin@example.test", "password": PASSWORD,
              "totp_code": totp_code(admin_secret)},
        timeout=60,
    )  # fmt: skip
    assert login.status_code == 200, login.text
    headers = {"Authorization": f"Bearer {login.json()['token']}"}
    for training in ("privacy", "approved-tools"):
        done = httpx.post(
            f"{server}/api/v1/users/{technician_id}/trainings",
            json={"training_id": training, "title": training,
                  "completed_at": datetime.now(UTC).isoformat()},
            headers=headers, timeout=60,
        )  # fmt: skip
        assert done.status_code == 201, done.text


def open_ticket(server: str) -> int:
    login = httpx.post(
        f"{server}/api/v1/auth/login",
        json={"email": "person@example.test", "password": PASSWORD},
        timeout=60,
    )
    assert login.status_code == 200, login.text
    headers = {"Authorization": f"Bearer {login.json()['token']}"}
    ticket = httpx.post(
        f"{server}/api/v1/tickets",
        json={"title": "The printer queue is stuck", "category": "software"},
        headers=headers,
        timeout=60,
    )
    assert ticket.status_code == 201, ticket.text
    return int(ticket.json()["number"])


def test_a_technician_helps_through_chat_and_terminal_end_to_end(
    server: str, data_dir: Path, tmp_path: Path, client_env: dict[str, str]
) -> None:
    create_user(data_dir, "person@example.test", "end_user")
    created = create_user(data_dir, "tech@example.test", "senior_technician")
    secret = totp_secret(created)
    technician_id = re.search(r"\(([0-9a-f-]{36})\)", created).group(1)  # type: ignore[union-attr]
    admin_secret = totp_secret(create_user(data_dir, "admin@example.test", "admin"))
    record_trainings(server, admin_secret, technician_id)
    # The default policy requires recording, which needs the organisation's auditor key.
    keyed = subprocess.run(
        [*AUXILIO, "admin", "auditor-key", "--org", ORG, "--data-dir", str(data_dir),
         "--out", str(tmp_path / "auditor.pem")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert keyed.returncode == 0, keyed.stderr + keyed.stdout
    number = open_ticket(server)

    login = subprocess.run(
        [*AUXILIO, "login", "--server", server, "--email", "tech@example.test",
         "--password-stdin", "--totp-code", totp_code(secret)],
        input=PASSWORD + "\n", capture_output=True, text=True, timeout=60, env=client_env,
        check=False,
    )  # fmt: skip
    assert login.returncode == 0, login.stderr + login.stdout
    credentials = Path(client_env["AUXILIO_CONFIG_DIR"]) / "credentials.json"
    assert credentials.stat().st_mode & 0o777 == 0o600

    technician = pexpect.spawn(
        AUXILIO[0],
        [*AUXILIO[1:], "connect", "--ticket", str(number), "-c", "chat", "-c", "terminal",
         "--send", "chat:hello from the technician",
         "--send", "expect:hello from the person",
         "--send", "term:echo marker-$((6*7))",
         "--send", "expect:marker-42",
         "--send", "end",
         "--summary", "Cleared the print queue."],
        env=client_env, encoding="utf-8", timeout=60,
    )  # fmt: skip
    technician.expect(JOIN_CODE)
    code = technician.match.group(1)

    agent = pexpect.spawn(
        AUXILIO[0],
        [*AUXILIO[1:], "agent", "join", code, "--server", server,
         "--state-dir", str(tmp_path / "agent-state"), "--terminal"],
        encoding="utf-8", timeout=60, dimensions=(50, 160),
    )  # fmt: skip
    try:
        for _ in range(2):  # one question per capability: chat, terminal
            agent.expect(r"Allow \w+\? \[y/n\]")
            agent.sendline("y")
        technician.expect("state< active granted=")
        technician.expect("secure end-to-end channel established")
        agent.expect("hello from the technician")
        agent.sendline("hello from the person")
        technician.expect("chat< hello from the person")
        technician.expect("term< marker-42")
        technician.expect("state< ended ended_by=technician reason=technician_ended")
        technician.expect("summary saved")
        technician.expect("report< ")
        technician.expect(pexpect.EOF)
        # The person saw the command in their live feed, and gets their own report at the end.
        agent.expect("Technician ran: echo marker")
        agent.expect("Session report")
        agent.expect("Commands run: 1")
        agent.expect(pexpect.EOF)
    finally:
        transcript = (technician.before or "") + str(agent.before or "")
        technician.close()
        agent.close()
    assert technician.exitstatus == 0, transcript

    report = subprocess.run(
        [*AUXILIO, "audit", "verify", "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert report.returncode == 0, report.stdout + report.stderr

    # The audit knows a command ran (its kind and the hash of its sealed details), never the
    # command line itself, nor the output.
    with sqlite3.connect(data_dir / "auxilio.db") as db:
        rows = db.execute(
            "SELECT details FROM audit_events WHERE action = 'support_session:activity:reported'"
        ).fetchall()
        everything = " ".join(str(r) for r in db.execute("SELECT details FROM audit_events"))
    db.close()
    assert any('"command_run"' in r[0] and '"details_sha256"' in r[0] for r in rows), rows
    assert "echo marker" not in everything and "marker-42" not in everything
