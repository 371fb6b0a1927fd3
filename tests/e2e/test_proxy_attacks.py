"""Attacks from a proxy between a real agent and a real server (issue 7, sections 1 and 2).

Three real processes and a fourth in the middle: ``auxilio serve``; the technician's ``auxilio
connect`` straight to it; ``auxilio agent join`` under a pseudo-terminal, connected to
``tests/e2e/wsproxy.py``, which rewrites what the server says. Where the attack needs it, the
proxy holds the server's signing key: a compromised server. Each test performs the attack the
adversarial review observed and shows that it now fails, on the device and on the server.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pexpect
import pytest

from tests.e2e.conftest import AUXILIO, PASSWORD, free_port, totp_code
from tests.e2e.test_support_session_e2e import (
    JOIN_CODE,
    create_user,
    open_ticket,
    record_trainings,
    totp_secret,
)
from tests.e2e.wsproxy import HOSTILE_TEXT

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class World:
    server: str
    data_dir: Path
    client_env: dict[str, str]
    ticket: int
    agent_state: Path
    admin_secret: str = ""  # the admin's TOTP secret (admin@example.test)


@pytest.fixture
def world(server: str, data_dir: Path, tmp_path: Path) -> World:
    client_env = {**os.environ, "AUXILIO_CONFIG_DIR": str(tmp_path / "client-config")}
    create_user(data_dir, "person@example.test", "end_user")
    created = create_user(data_dir, "tech@example.test", "senior_technician")
    technician_id = re.search(r"\(([0-9a-f-]{36})\)", created).group(1)  # type: ignore[union-attr]
    admin_secret = totp_secret(create_user(data_dir, "admin@example.test", "admin"))
    record_trainings(server, admin_secret, technician_id)
    login = subprocess.run(
        [*AUXILIO, "login", "--server", server, "--email", "tech@example.test",
         "--password-stdin", "--totp-code", totp_code(totp_secret(created))],
        input=PASSWORD + "\n", capture_output=True, text=True, timeout=60, env=client_env,
        check=False,
    )  # fmt: skip
    assert login.returncode == 0, login.stderr + login.stdout
    # The default policy records sessions; recording needs the organisation's auditor key.
    keyed = subprocess.run(
        [*AUXILIO, "admin", "auditor-key", "--org", "e2e-support", "--data-dir", str(data_dir),
         "--out", str(tmp_path / "auditor.pem")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert keyed.returncode == 0, keyed.stderr + keyed.stdout
    return World(server, data_dir, client_env, open_ticket(server), tmp_path / "agent-state",
                 admin_secret)


@pytest.fixture
def proxy(world: World, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Proxy]:
    """The man in the middle; the test's ``attack`` marker (or parameter) names the attack."""
    attack, with_key = request.param
    port = free_port()
    command = [sys.executable, "-m", "tests.e2e.wsproxy", "--port", str(port),
               "--upstream", world.server.replace("http://", "ws://"), "--attack", attack,
               "--state", str(tmp_path / "proxy-state.json")]  # fmt: skip
    if with_key:
        command += ["--server-key", str(world.data_dir / "keys" / "server-signing.pem")]
    child = pexpect.spawn(command[0], command[1:], cwd=str(ROOT), encoding="utf-8", timeout=30)
    child.expect("READY")
    yield Proxy(f"http://127.0.0.1:{port}", child)
    child.terminate(force=True)


@dataclass
class Proxy:
    url: str
    child: pexpect.spawn


def connect(world: World, *steps: str) -> pexpect.spawn:
    """The technician asks for chat and terminal; the join code is read from its output."""
    sends = [arg for step in steps for arg in ("--send", step)]
    return pexpect.spawn(
        AUXILIO[0],
        [*AUXILIO[1:], "connect", "--ticket", str(world.ticket), "-c", "chat", "-c", "terminal",
         *sends, "--summary", "Attack test."],
        env=world.client_env, encoding="utf-8", timeout=60,
    )  # fmt: skip


def join(world: World, code: str, server: str) -> pexpect.spawn:
    child = pexpect.spawn(
        AUXILIO[0],
        [*AUXILIO[1:], "agent", "join", code, "--server", server,
         "--state-dir", str(world.agent_state), "--terminal"],
        encoding="utf-8", timeout=60, dimensions=(50, 200),
        env={**os.environ, "COLUMNS": "200"},  # wide: a line the test waits for stays whole
    )  # fmt: skip
    # Everything the person saw, kept beside the test's files for when a test fails.
    child.logfile_read = Transcript(world.agent_state.parent / "agent-transcript.txt")
    return child


@dataclass
class Transcript:
    path: Path

    def write(self, text: str) -> None:
        with self.path.open("a") as handle:
            handle.write(text)

    def flush(self) -> None:
        return


def audit(world: World, action: str) -> list[dict[str, object]]:
    with sqlite3.connect(world.data_dir / "auxilio.db") as db:
        rows = db.execute(
            "SELECT details FROM audit_events WHERE action = ? ORDER BY seq", (action,)
        ).fetchall()
    db.close()
    return [orjson.loads(row[0]) for row in rows]


def states(world: World) -> list[tuple[str, str | None]]:
    with sqlite3.connect(world.data_dir / "auxilio.db") as db:
        rows = db.execute(
            "SELECT state, end_detail FROM support_sessions ORDER BY created_at"
        ).fetchall()
    db.close()
    return [(str(r[0]), r[1]) for r in rows]


def finish(*children: pexpect.spawn) -> str:
    text = ""
    for child in children:
        child.expect(pexpect.EOF, timeout=60)
        text += str(child.before or "")
        child.close()
    return text


@pytest.mark.parametrize(
    ("proxy", "code"),
    [(("unsigned-prompt", False), "protocol.invalid_field"),
     (("rewrite-terms", False), "grant.bad_signature")],
    indirect=["proxy"],
)  # fmt: skip
def test_a_proxy_cannot_change_what_the_person_is_asked(
    world: World, proxy: Proxy, code: str
) -> None:
    # Observed: the proxy set the timeout to 2 s and "granted", replaced the legal text, and the
    # agent showed it. Now the terms are inside the grant's signature: the agent refuses the
    # offer before any prompt, and nothing opens.
    technician = connect(world, "end")
    technician.expect(JOIN_CODE)
    agent = join(world, technician.match.group(1), proxy.url)
    agent.expect(f"Error {re.escape(code)}")
    proxy.child.expect("TAMPERED offer")
    transcript = finish(agent)
    assert "Allow" not in transcript and HOSTILE_TEXT not in transcript
    assert agent.exitstatus != 0
    technician.terminate(force=True)
    assert [state for state, _ in states(world)] != ["active"]
    assert audit(world, "support_session:activated") == []


@pytest.mark.parametrize("proxy", [("resign-terms", True)], indirect=True)
def test_silence_is_a_refusal_even_when_a_compromised_server_signs_otherwise(
    world: World, proxy: Proxy
) -> None:
    # The same rewrite signed with the server's own key: the agent shows the prompt, but silence
    # still means no on the device ("timed out (refused)"), and the server, whose own offer said
    # something else, refuses the receipt and ends the session with the code.
    technician = connect(world, "term:id", "end")
    technician.expect(JOIN_CODE)
    agent = join(world, technician.match.group(1), proxy.url)
    agent.expect(r"No answer:\s+within .* means refused")
    agent.expect(r"chat: timed out \(refused\)", timeout=30)
    agent.expect(r"terminal: timed out \(refused\)")
    technician.expect("reason=protocol_error detail=receipt.mismatch")
    transcript = finish(agent, technician)
    assert "timed out (granted)" not in transcript
    assert states(world) == [("ended", "receipt.mismatch")]
    rejected = audit(world, "support_session:receipt:rejected")
    assert [event["code"] for event in rejected] == ["receipt.mismatch"]
    assert audit(world, "support_session:activated") == []


@pytest.mark.parametrize("proxy", [("replay-offer", False)], indirect=True)
def test_an_offer_is_never_shown_twice(world: World, proxy: Proxy) -> None:
    # Observed: a grant from an already-ended session was prompted again.
    first = connect(world, "end")
    first.expect(JOIN_CODE)
    agent = join(world, first.match.group(1), proxy.url)
    agent.expect(r"Allow \w+\? \[y/n\]")
    agent.sendline("n")
    agent.expect(r"Allow \w+\? \[y/n\]")
    agent.sendline("n")
    finish(agent, first)
    second = connect(world, "end")
    second.expect(JOIN_CODE)
    again = join(world, second.match.group(1), proxy.url)
    again.expect("Error offer.replayed")
    proxy.child.expect("TAMPERED offer: replaced")
    assert "Allow" not in finish(again)
    second.terminate(force=True)


@pytest.mark.parametrize("proxy", [("extend-2036", True)], indirect=True)
def test_an_extension_signed_beyond_the_first_grants_limits_is_refused(
    world: World, proxy: Proxy
) -> None:
    # Observed: a grant re-signed by a compromised server pushed not_after to 2036 and lifted
    # the terminal's own 30-minute limit; the agent took it and said "Session extended".
    technician = connect(world, "expect:never-printed", "end")
    technician.expect(JOIN_CODE)
    agent = join(world, technician.match.group(1), proxy.url)
    for _ in range(2):
        agent.expect(r"Allow \w+\? \[y/n\]")
        agent.sendline("y")
    proxy.child.expect("TAMPERED extension")
    # Refused as lifting the terminal's own limit (grant.mismatch) or as beyond the extension
    # terms of the first grant (extension.beyond_limit): the attack does both.
    agent.expect(
        r"Extension NOT applied: the new grant was refused "
        r"\((grant\.mismatch|extension\.beyond_limit)\)"
    )
    agent.sendline("q")
    transcript = finish(agent)
    assert "Session extended" not in transcript and "2036" not in transcript
    technician.terminate(force=True)


def test_an_honest_extension_is_asked_of_the_person_and_moves_the_end_once_accepted(
    world: World,
) -> None:
    # The control case, with nobody in the middle: the policy's approver approves, the person is
    # shown the technician's reason and the new end in the device's local time, and accepts.
    technician = connect(
        world, "extend:10:the update needs ten more minutes", "expect:go ahead", "end"
    )
    technician.expect(JOIN_CODE)
    agent = join(world, technician.match.group(1), world.server)
    for _ in range(2):
        agent.expect(r"Allow \w+\? \[y/n\]")
        agent.sendline("y")
    # Where the policy names an approver, one approves (here the senior technician's token).
    if technician.expect(["reason=extension_pending", "reason=extension_awaiting_person"]) == 0:
        approve(world)
    agent.expect(r"asks for more time: until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(\w+")
    agent.expect("Reason given: the update needs ten more")
    agent.sendline("y")
    agent.expect("Session extended until")
    technician.expect("extension approved by=end_user")
    agent.sendline("go ahead")
    finish(technician, agent)
    accepted = audit(world, "support_session:extension:accepted")
    assert len(accepted) == 1 and accepted[0]["decision"] == "granted"


def approve(world: World) -> None:
    with sqlite3.connect(world.data_dir / "auxilio.db") as db:
        session_id, extension_id = db.execute(
            "SELECT support_session_id, id FROM support_session_extensions WHERE state = 'pending'"
        ).fetchone()
    db.close()
    token = orjson.loads(
        (Path(world.client_env["AUXILIO_CONFIG_DIR"]) / "credentials.json").read_bytes()
    )["token"]
    sid, eid = (uuid.UUID(hex=str(value).replace("-", "")) for value in (session_id, extension_id))
    approved = httpx.post(
        f"{world.server}/api/v1/support-sessions/{sid}/extensions/{eid}/approve",
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )
    assert approved.status_code == 200, approved.text
