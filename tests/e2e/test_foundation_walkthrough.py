"""Issue 2's walkthrough with a real server process, the CLI and the REST API only."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pyotp
import pytest

from tests.e2e.conftest import AUXILIO, PASSWORD, totp_code

pytestmark = pytest.mark.e2e


@pytest.fixture
def server_env() -> dict[str, str]:
    # Checkpoints every 10 events, so the walkthrough's chain carries signed checkpoints.
    return {"AUXILIO_AUDIT_CHECKPOINT_EVERY": "10"}


def cli(*args: str, stdin: str | None = None, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*AUXILIO, *args, "--data-dir", str(data_dir)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def next_code(secret: str) -> str:
    # A code is accepted once per time step; the next step is inside the drift window, so a
    # fresh login right after enrolment uses it instead of waiting 30 seconds.
    return pyotp.TOTP(secret).at(time.time() + 30)


def test_a_person_runs_the_foundation_with_the_cli_and_the_api(server: str, data_dir: Path) -> None:
    with httpx.Client(base_url=f"{server}/api/v1", timeout=30) as api:
        walk(api, data_dir)


def walk(api: httpx.Client, data_dir: Path) -> None:

    # An admin from the CLI; the provisioning URI is printed because staff need 2FA.
    made = cli(
        "admin",
        "create-user",
        "admin@acme.test",
        "--role",
        "admin",
        "--org",
        "acme",
        "--password-stdin",
        stdin=PASSWORD + "\n",
        data_dir=data_dir,
    )
    assert made.returncode == 0, made.stderr
    secret = re.search(r"secret=([A-Z2-7]+)", made.stdout).group(1)  # type: ignore[union-attr]

    # Enrol TOTP by logging in with a first code; a password alone is then refused.
    first = api.post(
        "/auth/login",
        json={
            "email": "admin@acme.test",
            "password": PASSWORD,
            "totp_code": totp_code(secret),
        },
    )
    assert first.status_code == 200, first.text
    assert len(first.json()["recovery_codes"]) == 10
    assert (
        api.post("/auth/login", json={"email": "admin@acme.test", "password": PASSWORD}).json()[
            "error"
        ]["code"]
        == "mfa_required"
    )
    admin = {"Authorization": f"Bearer {first.json()['token']}"}

    # A technician with skills and hours covering every minute of the week.
    tech = api.post(
        "/users",
        headers=admin,
        json={
            "email": "tech@acme.test",
            "display_name": "Tina Tech",
            "role": "technician",
            "password": PASSWORD,
            "skills": ["network", "software"],
            "timezone": "Europe/Madrid",
            "working_hours": {
                d: ["00:00-24:00"] for d in ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
            },
        },
    )
    assert tech.status_code == 201, tech.text
    api.post(
        "/users",
        headers=admin,
        json={
            "email": "ana@acme.test",
            "display_name": "Ana",
            "role": "end_user",
            "password": PASSWORD,
        },
    )

    # The technician enrols TOTP through the enrolment-only token, then logs in with a code.
    enrol_token = api.post(
        "/auth/login", json={"email": "tech@acme.test", "password": PASSWORD}
    ).json()
    assert enrol_token["mfa_enrolment_required"] is True
    enrol = {"Authorization": f"Bearer {enrol_token['token']}"}
    assert api.get("/me", headers=enrol).json()["error"]["code"] == "mfa_enrolment_required"
    uri = api.post("/auth/totp/enrol", headers=enrol).json()["provisioning_uri"]
    tech_secret = re.search(r"secret=([A-Z2-7]+)", uri).group(1)  # type: ignore[union-attr]
    confirmed = api.post(
        "/auth/totp/confirm", headers=enrol, json={"code": totp_code(tech_secret)}
    )
    assert len(confirmed.json()["recovery_codes"]) == 10
    tech_login = api.post(
        "/auth/login",
        json={"email": "tech@acme.test", "password": PASSWORD, "totp_code": next_code(tech_secret)},
    )
    assert tech_login.status_code == 200, tech_login.text
    technician = {"Authorization": f"Bearer {tech_login.json()['token']}"}

    # The end user opens a ticket; it is assigned automatically to the technician.
    ana_login = api.post("/auth/login", json={"email": "ana@acme.test", "password": PASSWORD})
    ana = {"Authorization": f"Bearer {ana_login.json()['token']}"}
    ticket = api.post(
        "/tickets",
        headers=ana,
        json={
            "title": "The VPN drops every hour",
            "description": "Since Monday.",
            "category": "network",
        },
    )
    assert ticket.status_code == 201, ticket.text
    ticket_id = ticket.json()["id"]
    assert ticket.json()["assignee_id"] == tech.json()["id"]

    # Comment, resolve, reopen, resolve again, close.
    assert (
        api.post(
            f"/tickets/{ticket_id}/comments",
            headers=technician,
            json={"body": "Looking at it now."},
        ).status_code
        == 201
    )
    for to in ("open", "resolved"):
        moved = api.post(f"/tickets/{ticket_id}/transition", headers=technician, json={"to": to})
        assert moved.status_code == 200, moved.text
    reopened = api.post(f"/tickets/{ticket_id}/reopen", headers=ana)
    assert reopened.status_code == 200, reopened.text
    assert reopened.json()["reopen_count"] == 1
    api.post(f"/tickets/{ticket_id}/transition", headers=technician, json={"to": "resolved"})
    closed = api.post(f"/tickets/{ticket_id}/close", headers=ana)
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed"

    # The audit chain is intact...
    verified = cli("audit", "verify", data_dir=data_dir)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "intact" in verified.stdout

    # ...and editing or deleting a row by hand makes verify fail, naming that event.
    with sqlite3.connect(data_dir / "auxilio.db") as db:
        chain, seq = db.execute(
            "SELECT chain, seq FROM audit_events WHERE action = 'ticket:ticket:opened'"
        ).fetchone()
        db.execute(
            "UPDATE audit_events SET actor_name = 'someone else' WHERE chain = ? AND seq = ?",
            (chain, seq),
        )
    broken = cli("audit", "verify", data_dir=data_dir)
    assert broken.returncode == 1
    assert f"BROKEN at event {seq}:" in broken.stdout
    with sqlite3.connect(data_dir / "auxilio.db") as db:
        db.execute(
            "UPDATE audit_events SET actor_name = 'Ana' WHERE chain = ? AND seq = ?", (chain, seq)
        )
    assert cli("audit", "verify", data_dir=data_dir).returncode == 0
    with sqlite3.connect(data_dir / "auxilio.db") as db:
        db.execute("DELETE FROM audit_events WHERE chain = ? AND seq = ?", (chain, seq + 1))
    deleted = cli("audit", "verify", data_dir=data_dir)
    assert deleted.returncode == 1
    assert f"BROKEN at event {seq + 1}:" in deleted.stdout
