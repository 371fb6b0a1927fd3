"""`auxilio login` as the README tells a new admin to use it: the first code enrols TOTP."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import httpx
import pexpect
import pyotp
import pytest

from tests.e2e.conftest import AUXILIO, PASSWORD

pytestmark = pytest.mark.e2e


def run(*args: str, stdin: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AUXILIO, *args], input=stdin, capture_output=True, text=True,
                          timeout=60, check=False, env=env)  # fmt: skip


def test_the_first_cli_login_with_a_code_completes_enrolment(
    server: str, data_dir: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "AUXILIO_CONFIG_DIR": str(tmp_path / "cfg")}
    made = run(
        "admin", "create-user", "boss@acme.test", "--role", "admin", "--org", "acme",
        "--password-stdin", "--data-dir", str(data_dir), stdin=PASSWORD + "\n", env=env,
    )  # fmt: skip
    secret = re.search(r"secret=([A-Z2-7]+)", made.stdout).group(1)  # type: ignore[union-attr]
    totp = pyotp.TOTP(secret)

    first = run("login", "--server", server, "--email", "boss@acme.test", "--password-stdin",
                stdin=f"{PASSWORD}\n{totp.now()}\n", env=env)  # fmt: skip
    assert first.returncode == 0, first.stdout + first.stderr
    assert first.stdout.count("recovery code (shown once") == 10
    assert "only allows enrolling" not in first.stdout
    credentials = tmp_path / "cfg" / "credentials.json"
    assert credentials.stat().st_mode & 0o777 == 0o600

    # Enrolled now: a password alone is not enough, the CLI asks for a code. A code is
    # accepted once, so the next login uses the next time step.
    second = run("login", "--server", server, "--email", "boss@acme.test", "--password-stdin",
                 stdin=f"{PASSWORD}\n{totp.at(time.time() + 30)}\n", env=env)  # fmt: skip
    assert second.returncode == 0, second.stdout + second.stderr
    assert "TOTP code" in second.stdout and "recovery code" not in second.stdout


def test_a_technician_created_over_rest_enrols_at_the_first_cli_login(
    server: str, data_dir: Path, tmp_path: Path
) -> None:
    # Observed: a technician created over REST got no provisioning URI, and `auxilio login`
    # could not enrol them. Now it makes the enrolment link, shows it and its QR code, and the
    # first code both enrols and logs in.
    env = {**os.environ, "AUXILIO_CONFIG_DIR": str(tmp_path / "cfg")}
    made = run(
        "admin", "create-user", "boss@acme.test", "--role", "admin", "--org", "acme",
        "--password-stdin", "--data-dir", str(data_dir), stdin=PASSWORD + "\n", env=env,
    )  # fmt: skip
    boss = pyotp.TOTP(re.search(r"secret=([A-Z2-7]+)", made.stdout).group(1))  # type: ignore[union-attr]
    login = httpx.post(f"{server}/api/v1/auth/login", timeout=60,
                       json={"email": "boss@acme.test", "password": PASSWORD,
                             "totp_code": boss.now()})  # fmt: skip
    assert login.status_code == 200, login.text
    created = httpx.post(
        f"{server}/api/v1/users", timeout=60,
        headers={"Authorization": f"Bearer {login.json()['token']}"},
        json={"email": "tech@acme.test", "display_name": "Tech", "role": "technician",
              "password": PASSWORD},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    assert "otpauth" not in created.text

    child = pexpect.spawn(
        AUXILIO[0],
        [*AUXILIO[1:], "login", "--server", server, "--email", "tech@acme.test"],
        env=env, encoding="utf-8", timeout=60,
    )  # fmt: skip
    child.expect("Password: ")
    child.sendline(PASSWORD)
    child.expect(r"(otpauth://totp/\S+)")
    uri = child.match.group(1)
    child.expect("▀")  # the QR code, drawn with half blocks
    child.expect("TOTP code: ")
    child.sendline(pyotp.parse_uri(uri).now())
    child.expect(pexpect.EOF)
    child.close()
    output = str(child.before or "")
    assert child.exitstatus == 0, output
    assert output.count("recovery code (shown once") == 10
    assert "only allows enrolling" not in output
