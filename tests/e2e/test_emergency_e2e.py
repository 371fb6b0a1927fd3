"""Emergency mode with real processes: ``auxilio serve``, the technician's ``auxilio connect``
and ``auxilio agent join`` under a pseudo-terminal in an active session. An admin declares an
emergency through the API: the agent ends its session with reason emergency, tells the person
why, prints the one report naming the reason and exits; the technician's client ends too. A
second ``auxilio serve`` process on the same data directory (a restarted node) reads the
emergency from the database, and lifting it is audited."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time

import httpx
import pexpect
import pytest

from tests.e2e.conftest import AUXILIO, PASSWORD, free_port, totp_code
from tests.e2e.test_proxy_attacks import World, audit, connect, finish, join, states

# The shared fixture, imported under its own name so that pytest finds it here.
from tests.e2e.test_proxy_attacks import world as world
from tests.e2e.test_support_session_e2e import JOIN_CODE

pytestmark = pytest.mark.e2e


def admin_headers(world: World, server: str) -> dict[str, str]:
    login = httpx.post(
        f"{server}/api/v1/auth/login",
        json={"email": "admin@example.test", "password": PASSWORD,
              # A step the world's set-up did not spend (a code is accepted once).
              "totp_code": totp_code(world.admin_secret)},
        timeout=60,
    )  # fmt: skip
    assert login.status_code == 200, login.text
    return {"Authorization": f"Bearer {login.json()['token']}"}


def emergencies(world: World) -> list[tuple[str, str | None]]:
    with sqlite3.connect(world.data_dir / "auxilio.db") as db:
        return list(db.execute("SELECT reason, lifted_at FROM emergencies"))


def test_an_emergency_ends_the_real_agents_session_and_survives_a_restart(
    world: World,
) -> None:
    headers: dict[str, str] = {}
    technician = connect(world, "chat:hello from the technician", "wait:120")
    technician.expect(JOIN_CODE)
    agent = join(world, technician.match.group(1), world.server)
    try:
        for _ in range(2):  # chat, terminal
            agent.expect(r"Allow \w+\? \[y/n\]")
            agent.sendline("y")
        technician.expect("secure end-to-end channel established")
        agent.expect("hello from the technician")
        headers.update(admin_headers(world, world.server))
        declared = httpx.post(f"{world.server}/api/v1/emergency", headers=headers,
                              json={"reason": "Ransomware on the file server"}, timeout=60)
        assert declared.status_code == 201, declared.text
        assert len(declared.json()["ended_support_session_ids"]) == 1
        agent.expect("Session ended: emergency declared by the organisation.")
        agent.expect(r"End reason: emergency \(by supervisor\)")
        transcript = finish(agent)
        technician.expect(pexpect.EOF, timeout=60)
    finally:
        technician.close(force=True)
        agent.close(force=True)
    assert agent.exitstatus == 0, transcript
    assert "Traceback" not in transcript
    assert [state for state, _ in states(world)] == ["ended"]
    ended = audit(world, "support_session:session:ended")
    assert [e["reason"] for e in ended] == ["emergency"]
    assert [e["reason"] for e in audit(world, "emergency:emergency:declared")] == [
        "Ransomware on the file server"]
    # The device's own log keeps the end and its reason.
    logs = list((world.agent_state).rglob("*.jsonl"))
    assert any('"reason": "emergency"' in p.read_text(encoding="utf-8")
               or '"reason":"emergency"' in p.read_text(encoding="utf-8") for p in logs), logs

    # A restarted node: a new server process on the same data directory.
    port = free_port()
    log_path = world.data_dir.parent / "server-2.log"
    with log_path.open("w", encoding="utf-8") as log_file:
        second = subprocess.Popen(
            [*AUXILIO, "serve", "--port", str(port), "--data-dir", str(world.data_dir)],
            stdout=log_file, stderr=subprocess.STDOUT, text=True, env=dict(os.environ),
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        # The login token of the first process: tokens live in the database, not in a process.
        state = httpx.get(f"{url}/api/v1/emergency", headers=headers, timeout=60).json()
        assert state["active"] is True
        assert state["emergency"]["reason"] == "Ransomware on the file server"
        again = httpx.post(f"{url}/api/v1/emergency", headers=headers,
                           json={"reason": "again"}, timeout=60)
        assert again.json()["error"]["code"] == "emergency.already_active"
        lifted = httpx.post(f"{url}/api/v1/emergency/lift", headers=headers,
                            json={"reason": "Contained"}, timeout=60)
        assert lifted.status_code == 200, lifted.text
    finally:
        second.terminate()
        second.wait(timeout=30)
    assert "Traceback" not in log_path.read_text(encoding="utf-8", errors="replace")
    assert [reason for reason, lifted_at in emergencies(world) if lifted_at] == [
        "Ransomware on the file server"]
    assert [e["reason"] for e in audit(world, "emergency:emergency:lifted")] == ["Contained"]
