"""A recorded support session across real processes, then everything the server kept searched.

The default policy (software-company) requires recording. The organisation's auditor key is made
with ``auxilio admin auditor-key``; ``auxilio connect`` (scripted) and ``auxilio agent join``
(pexpect) run a chat and a terminal command; ``auxilio recording export`` with the private key
writes the transcript and a cast that ``asciinema cat`` plays. Then every byte under the data
directory (database, WAL, recordings, keys, witness) and the server's log is searched for what
was typed, shown and said: none of it is there.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from tests.e2e.conftest import AUXILIO, PASSWORD, serving, totp_code
from tests.e2e.test_support_session_e2e import (
    JOIN_CODE,
    ORG,
    create_user,
    open_ticket,
    record_trainings,
    totp_secret,
)

pytestmark = pytest.mark.e2e

TYPED = "echo rec-marker-$((6*7))"
SHOWN = "rec-marker-42"
SAID_BY_TECHNICIAN = "chat-from-the-technician-9c1f"
SAID_BY_PERSON = "chat-from-the-person-4e7a"
REQUESTED = re.compile(r"requested id=([0-9a-f-]{36})")


@pytest.fixture
def server_log(tmp_path: Path) -> Path:
    return tmp_path / "server.log"


@pytest.fixture
def server(data_dir: Path, server_log: Path) -> Iterator[str]:
    """``auxilio serve`` with its log in a file, so the test can search it too."""
    with serving(data_dir, {"AUXILIO_LOG_LEVEL": "DEBUG"}, log_path=server_log) as url:
        yield url


def run(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> str:
    done = subprocess.run(
        [*AUXILIO, *args], input=stdin, capture_output=True, text=True, timeout=90, env=env,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def test_a_recorded_session_exports_a_playable_cast_and_the_server_keeps_no_plaintext(
    server: str, data_dir: Path, tmp_path: Path, server_log: Path
) -> None:
    client_env = {**os.environ, "AUXILIO_CONFIG_DIR": str(tmp_path / "client-config")}
    create_user(data_dir, "person@example.test", "end_user")
    created = create_user(data_dir, "tech@example.test", "senior_technician")
    technician_id = re.search(r"\(([0-9a-f-]{36})\)", created).group(1)  # type: ignore[union-attr]
    record_trainings(server, totp_secret(create_user(data_dir, "admin@example.test", "admin")),
                     technician_id)  # fmt: skip
    auditor_key = tmp_path / "offline" / "auditor.pem"
    assert "auditor key created" in run(
        "admin", "auditor-key", "--org", ORG, "--out", str(auditor_key), "--data-dir", str(data_dir)
    )
    number = open_ticket(server)
    run("login", "--server", server, "--email", "tech@example.test", "--password-stdin",
        "--totp-code", totp_code(totp_secret(created)), env=client_env,
        stdin=PASSWORD + "\n")  # fmt: skip

    technician = pexpect.spawn(
        AUXILIO[0],
        [*AUXILIO[1:], "connect", "--ticket", str(number), "-c", "chat", "-c", "terminal",
         "--send", f"chat:{SAID_BY_TECHNICIAN}",
         "--send", f"expect:{SAID_BY_PERSON}",
         "--send", f"term:{TYPED}",
         "--send", f"expect:{SHOWN}",
         "--send", "end",
         "--summary", "Recorded session."],
        env=client_env, encoding="utf-8", timeout=60,
    )  # fmt: skip
    technician.expect(REQUESTED)
    support_session_id = technician.match.group(1)
    technician.expect(JOIN_CODE)
    code = technician.match.group(1)
    agent = pexpect.spawn(
        AUXILIO[0],
        [*AUXILIO[1:], "agent", "join", code, "--server", server,
         "--state-dir", str(tmp_path / "agent-state"), "--terminal"],
        encoding="utf-8", timeout=60, dimensions=(50, 160),
    )  # fmt: skip
    try:
        agent.expect(r"Recorded:\s+yes")
        for _ in range(2):
            agent.expect(r"Allow \w+\? \[y/n\]")
            agent.sendline("y")
        technician.expect("secure end-to-end channel established")
        agent.expect(SAID_BY_TECHNICIAN)
        agent.sendline(SAID_BY_PERSON)
        technician.expect(f"term< {SHOWN}")
        technician.expect("state< ended ended_by=technician reason=technician_ended")
        technician.expect(pexpect.EOF)
        # On the device the person reads everything in clear, as before.
        agent.expect("echo rec-marker")
        agent.expect("Session report")
        agent.expect(r"Recorded: yes")
        agent.expect(pexpect.EOF)
    finally:
        transcript = (technician.before or "") + str(agent.before or "")
        technician.close()
        agent.close()
    assert technician.exitstatus == 0, transcript

    out = tmp_path / "export"
    exported = run("recording", "export", support_session_id, "--key", str(auditor_key),
                   "--out", str(out), "--data-dir", str(data_dir))  # fmt: skip
    assert "1 epoch(s)" in exported, exported
    chat = (out / "chat.txt").read_text()
    assert f"technician: {SAID_BY_TECHNICIAN}" in chat and f"person: {SAID_BY_PERSON}" in chat
    asciinema = str(Path(sys.executable).parent / "asciinema")
    played = subprocess.run(
        [asciinema, "cat", str(out / "terminal-1.cast")],
        capture_output=True, timeout=60, check=True,
    ).stdout.decode()  # fmt: skip
    assert TYPED in played and SHOWN in played

    with sqlite3.connect(data_dir / "auxilio.db") as db:
        exports = db.execute(
            "SELECT count(*) FROM audit_events WHERE action = 'recording:recording:exported'"
            " AND target_id = ?", (uuid.UUID(support_session_id).hex,),
        ).fetchone()[0]  # fmt: skip
        sealed = db.execute(
            "SELECT sealed_details FROM support_session_activities WHERE kind = 'command_run'"
        ).fetchall()
    db.close()
    assert exports == 1
    assert sealed and all(row[0] for row in sealed)

    markers = [TYPED, SHOWN, "rec-marker-", SAID_BY_TECHNICIAN, SAID_BY_PERSON]
    stored = [p for p in data_dir.rglob("*") if p.is_file()] + [server_log]
    assert any(p.suffix == ".rec" for p in stored)
    for path in stored:
        content = path.read_bytes()
        found = [m for m in markers if m.encode() in content]
        assert not found, f"{path} holds {found}"
