"""`auxilio login --org`: an address with accounts in two organisations (docs/adr/0005)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import AUXILIO, PASSWORD

pytestmark = pytest.mark.e2e


def run(*args: str, stdin: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*AUXILIO, *args], input=stdin, capture_output=True, text=True,
                          timeout=60, check=False, env=env)  # fmt: skip


def test_a_shared_address_logs_in_once_the_organisation_is_given(
    server: str, data_dir: Path, tmp_path: Path
) -> None:
    env = {**os.environ, "AUXILIO_CONFIG_DIR": str(tmp_path / "cfg")}
    for org in ("acme", "beta"):
        made = run(
            "admin", "create-user", "shared@example.test", "--role", "end_user", "--org", org,
            "--password-stdin", "--data-dir", str(data_dir), stdin=PASSWORD + "\n", env=env,
        )  # fmt: skip
        assert made.returncode == 0, made.stdout + made.stderr

    login = ["login", "--server", server, "--email", "shared@example.test", "--password-stdin"]
    plain = run(*login, stdin=PASSWORD + "\n", env=env)
    assert plain.returncode != 0
    assert "give the organisation" in plain.stdout + plain.stderr

    given = run(*login, "--org", "beta", stdin=PASSWORD + "\n", env=env)
    assert given.returncode == 0, given.stdout + given.stderr
    assert "logged in to" in given.stdout
