"""Unattended access across real processes (docs/unattended.md): ``auxilio serve``; the device
enrolled with ``auxilio agent enroll`` from a token a senior technician made; its owner's
``auxilio agent access grant``; ``auxilio agent run`` holding the connection; the technician's
``auxilio connect --mode unattended --device ID`` (and ``auxilio connect SESSION`` for a
session requested over REST, its key kept where the client looks for it). Nobody answers at
the device: the chat and a terminal command go through; a request outside the owner's window is
refused; the owner's ``access revoke`` during a session ends it; ``auxilio agent log`` shows
what happened.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from auxilio.agent.access import AccessStore
from auxilio.agent.state import AgentState
from auxilio.client import credentials as creds
from auxilio.crypto.keys import encode_public_key
from tests.e2e.conftest import AUXILIO, PASSWORD, serving, totp_code

pytestmark = pytest.mark.e2e

ORG = "e2e-unattended"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
POLICY = """
version: 1
name: Unattended e2e
consent: {required: true, timeout: 30s, on_timeout: deny}
capabilities:
  chat: {roles: [technician, senior_technician, supervisor], modes: [attended, unattended]}
  terminal: {roles: [technician, senior_technician, supervisor], shells: [bash, sh],
             modes: [attended, unattended]}
unattended:
  allowed_device_groups: [kiosks]
  owner_pre_authorisation: {required: true, window: 30d, scope: [chat, terminal]}
  ticket_required: true
sessions: {max_duration: 1h, warn_before: 5m, idle_timeout: 15m, recording: off}
staff: {mfa_required: true}
"""


def create_user(data_dir: Path, email: str, role: str) -> tuple[str, str | None]:
    """(user id, TOTP secret or None)."""
    skills = ["--skills", "software"] if "technician" in role else []
    done = subprocess.run(
        [*AUXILIO, "admin", "create-user", email, "--role", role, "--org", ORG,
         "--password-stdin", "--hours", "mon-sun 00:00-24:00", "--data-dir", str(data_dir),
         *skills],
        input=PASSWORD + "\n", capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    user_id = re.search(r"\(([0-9a-f-]{36})\)", done.stdout).group(1)  # type: ignore[union-attr]
    uri = next((line for line in done.stdout.splitlines() if line.startswith("otpauth://")), None)
    return user_id, str(pyotp.parse_uri(uri).secret) if uri else None


def login(server: str, email: str, secret: str | None) -> dict[str, str]:
    body: dict[str, Any] = {"email": email, "password": PASSWORD}
    if secret is not None:
        body["totp_code"] = totp_code(secret)
    answer = httpx.post(f"{server}/api/v1/auth/login", json=body, timeout=60)
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def wait_for(what: str, check: Any, within: float = 30.0) -> Any:
    deadline = time.monotonic() + within
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@contextmanager
def running(command: list[str], log: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    with log.open("w", encoding="utf-8") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, text=True, env=env)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)


def test_an_enrolled_device_is_helped_with_nobody_there_inside_the_window_only(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    state_dir = tmp_path / "agent-state"
    config = tmp_path / "client-config"
    # No systemctl (the machine's user manager is left alone); the client's files in tmp.
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg"),
           "AUXILIO_CONFIG_DIR": str(config), "COLUMNS": "250"}  # fmt: skip

    def agent(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([*AUXILIO, "agent", *args, "--state-dir", str(state_dir)],
                              capture_output=True, text=True, timeout=60, env=env, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        return done

    with serving(data_dir, {}) as server:
        _, admin_secret = create_user(data_dir, "admin@example.test", "admin")
        owner_id, _ = create_user(data_dir, "owner@example.test", "end_user")
        _, tech_secret = create_user(data_dir, "tech@example.test", "senior_technician")
        assert tech_secret is not None
        admin = login(server, "admin@example.test", admin_secret)
        uploaded = httpx.post(f"{server}/api/v1/policies", headers=admin, timeout=60,
                              json={"document": POLICY, "comment": "unattended e2e"})
        assert uploaded.status_code == 201, uploaded.text
        activated = httpx.post(f"{server}/api/v1/policies/{uploaded.json()['number']}/activate",
                               headers=admin, timeout=60)
        assert activated.status_code == 200, activated.text

        technician = login(server, "tech@example.test", tech_secret)
        made = httpx.post(f"{server}/api/v1/enrolment-tokens", headers=technician, timeout=60,
                          json={"device_group": "kiosks", "owner_id": owner_id, "label": "kiosk",
                                "expires_in_hours": 1})  # fmt: skip
        assert made.status_code == 201, made.text
        enrolled = agent("enroll", "--server", server, "--token", made.json()["token"],
                         "--name", "kiosk-1", "--no-service")  # fmt: skip
        assert "Enrolled as device" in enrolled.stdout
        granted = agent("access", "grant", "--scope", "chat,terminal", "--days", "all",
                        "--hours", "all", "--for", "1d", "--timezone", "UTC")  # fmt: skip
        assert "Pre-authorised" in granted.stdout
        first = AccessStore(AgentState(state_dir)).all()[0].id

        owner = login(server, "owner@example.test", None)
        ticket = httpx.post(f"{server}/api/v1/tickets", headers=owner, timeout=60,
                            json={"title": "The kiosk screen is frozen", "category": "software"})
        assert ticket.status_code == 201, ticket.text
        ticket_id = ticket.json()["id"]

        client_login = subprocess.run(
            [*AUXILIO, "login", "--server", server, "--email", "tech@example.test",
             "--password-stdin", "--totp-code", totp_code(tech_secret)],
            input=PASSWORD + "\n", capture_output=True, text=True, timeout=60, env=env,
            check=False,
        )  # fmt: skip
        assert client_login.returncode == 0, client_login.stdout + client_login.stderr

        def request(capabilities: list[str]) -> httpx.Response:
            key = X25519PrivateKey.generate()
            answer = httpx.post(f"{server}/api/v1/support-sessions", headers=technician,
                                timeout=60, json={
                                    "ticket_id": ticket_id, "mode": "unattended",
                                    "device_id": device_id, "capabilities": capabilities,
                                    "technician_e2e_key": encode_public_key(key.public_key())})
            if answer.status_code == 201:
                creds.save_session_key(answer.json()["id"], key, directory=config)
            return answer

        def session(sid: str) -> dict[str, Any]:
            found = httpx.get(f"{server}/api/v1/support-sessions/{sid}", headers=technician,
                              timeout=60)
            assert found.status_code == 200, found.text
            body: dict[str, Any] = found.json()
            return body

        device_id = re.search(r"device ([0-9a-f-]{36})", enrolled.stdout).group(1)  # type: ignore[union-attr]
        with running([*AUXILIO, "agent", "run", "--no-window", "--state-dir", str(state_dir)],
                     tmp_path / "agent-run.log", env) as service:

            def stored() -> bool:
                answer = request(["chat"])
                if answer.status_code == 201:
                    httpx.post(f"{server}/api/v1/support-sessions/{answer.json()['id']}/end",
                               headers=technician, timeout=60)
                    return True
                assert answer.json()["error"]["code"] == "pre_authorisation.none", answer.text
                return False

            # The service publishes the owner's pre-authorisation as it connects.
            wait_for("the pre-authorisation on the server", stored)

            # 1. Chat and a terminal command, with nobody at the device: the technician's CLI
            # requests the unattended session itself (no join code) and helps.
            helped = subprocess.run(
                [*AUXILIO, "connect", "--ticket", ticket_id, "--mode", "unattended",
                 "--device", device_id, "-c", "chat", "-c", "terminal",
                 "--send", "chat:hello from support",
                 "--send", "term:echo marker-$((6*7))", "--send", "expect:marker-42",
                 "--send", "end", "--summary", "Restarted the kiosk browser."],
                capture_output=True, text=True, timeout=120, env=env, check=False,
            )  # fmt: skip
            assert helped.returncode == 0, helped.stdout + helped.stderr
            assert "marker-42" in helped.stdout
            assert "join_code=" not in helped.stdout
            sid = re.search(r"requested id=([0-9a-f-]{36})", helped.stdout).group(1)  # type: ignore[union-attr]
            ended = wait_for("the end", lambda: (s := session(sid))["state"] == "ended" and s)
            assert ended["granted_capabilities"] == ["chat", "terminal"]
            assert str(ended["pre_authorisation_id"]) == first

            # 2. The owner revokes during a session: it ends at once.
            created = request(["chat"])
            assert created.status_code == 201, created.text
            sid = created.json()["id"]
            with running([*AUXILIO, "connect", sid, "--send", "chat:still there?",
                          "--send", "wait:90", "--send", "end"],
                         tmp_path / "connect-2.log", env) as waiting:
                wait_for("the second session active", lambda: session(sid)["state"] == "active",
                         within=60)
                agent("access", "revoke", first, "--reason", "done for today")
                row = wait_for("the revoked session's end",
                               lambda: (s := session(sid))["state"] == "ended" and s)
                assert waiting.wait(timeout=60) is not None
            assert row["end_reason"] == "pre_authorisation_revoked", row
            assert "pre_authorisation_revoked" in (tmp_path / "connect-2.log").read_text()

            # 3. Outside the window: a pre-authorisation for another weekday only.
            tomorrow = WEEKDAYS[(datetime.now(UTC) + timedelta(days=1)).weekday()]
            agent("access", "grant", "--scope", "chat", "--days", tomorrow, "--hours", "all",
                  "--for", "7d", "--timezone", "UTC")

            def refused() -> httpx.Response | None:
                answer = request(["chat"])
                code = answer.json().get("error", {}).get("code")
                return answer if code == "pre_authorisation.outside_window" else None

            answer = wait_for("the refusal outside the window", refused)
            assert answer.status_code == 403
            assert "next opens at" in answer.json()["error"]["message"]

            # 4. An emergency: the live unattended session ends at once, a new one is refused
            # while it lasts, and the device's service stays connected; lifted, access is back.
            agent("access", "grant", "--scope", "chat", "--days", "all", "--hours", "all",
                  "--for", "1d", "--timezone", "UTC")
            created = wait_for("a session under the new pre-authorisation",
                               lambda: (a := request(["chat"])).status_code == 201 and a)
            sid4 = created.json()["id"]
            with running([*AUXILIO, "connect", sid4, "--send", "chat:one moment",
                          "--send", "wait:90", "--send", "end"],
                         tmp_path / "connect-4.log", env) as waiting:
                wait_for("the fourth session active",
                         lambda: session(sid4)["state"] == "active", within=60)
                declared = httpx.post(f"{server}/api/v1/emergency", headers=admin, timeout=60,
                                      json={"reason": "A stolen laptop"})
                assert declared.status_code == 201, declared.text
                assert sid4 in declared.json()["ended_support_session_ids"]
                stopped = wait_for("the emergency's end",
                                   lambda: (s := session(sid4))["state"] == "ended" and s)
                assert waiting.wait(timeout=60) is not None
            assert stopped["end_reason"] == "emergency", stopped
            locked = request(["chat"])
            assert locked.status_code == 403, locked.text
            assert locked.json()["error"]["code"] == "policy_denied", locked.text
            assert "emergency" in locked.text
            lifted = httpx.post(f"{server}/api/v1/emergency/lift", headers=admin, timeout=60,
                                json={"reason": "Found it"})
            assert lifted.status_code == 200, lifted.text
            after = request(["chat"])
            assert after.status_code == 201, after.text
            assert service.poll() is None  # the service runs on, idle

        # The owner's own record: both sessions in the list, the revoked one in full.
        log = agent("log").stdout
        assert sid in log and ended["id"] in log, log
        revoked = agent("log", sid).stdout
        assert "pre_authorisation_revoked" in revoked and first in revoked, revoked
