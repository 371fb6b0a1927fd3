"""Real processes: ``auxilio serve`` on a free loopback port with its own data directory."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pyotp
import pytest

AUXILIO = [sys.executable, "-m", "auxilio"]
PASSWORD = "a long enough password"


_TOTP_STEPS: dict[str, int] = {}  # secret -> the last time step whose code was handed out


def totp_code(secret: str) -> str:
    """A TOTP code for ``secret`` the server has not seen yet: the server takes each time step
    once per person, so a second login within a step (a world set up, then the test's own
    login) was refused as invalid_totp when both fell in one 30 s step. The next step's code is
    used then (one step of drift is allowed); after that, the next step is waited for."""
    totp = pyotp.TOTP(secret)
    while True:
        current = int(time.time()) // 30
        step = max(current, _TOTP_STEPS.get(secret, current - 1) + 1)
        if step <= current + 1:
            _TOTP_STEPS[secret] = step
            return str(totp.at(step * 30))
        time.sleep(max(0.1, (current + 1) * 30 - time.time()))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def server_env() -> dict[str, str]:
    """Extra AUXILIO_* settings for the server process; a test module may override it."""
    return {}


@contextmanager
def serving(
    data_dir: Path, env: dict[str, str], *, log_path: Path | None = None,
    database: Path | None = None,
) -> Iterator[str]:
    """A real ``auxilio serve`` on a free port until the block ends, its URL once it answers
    ``/readyz``; its log must hold no traceback at the end. ``env``: extra variables.
    ``database``: a migrated, empty SQLite file to start from when the data directory is new
    (the server then finds it at the newest revision and skips migrating); without it the
    server migrates from nothing, as on a real first start (tests/web's server does)."""
    port = free_port()
    target = data_dir / "auxilio.db"
    if database is not None and not target.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(database, target)
    # A file, not a pipe: an unread pipe blocks the server once 64 KiB of log lines wait in it.
    log_path = log_path or data_dir.parent / "server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w", encoding="utf-8") as log_file:
        proc = subprocess.Popen(
            [*AUXILIO, "serve", "--port", str(port), "--data-dir", str(data_dir)],
            stdout=log_file, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, **env},
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    # A deadline, not a wait: a loaded machine (xdist workers, browsers) may take this long.
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    else:
        proc.kill()
        proc.wait(timeout=15)
        pytest.fail(f"server did not start: {log_path.read_text(encoding='utf-8')}")
    yield url
    proc.terminate()
    proc.wait(timeout=15)
    # The log helps when a test failed.
    log = log_path.read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in log, log


@pytest.fixture
def server(data_dir: Path, server_env: dict[str, str], sqlite_template: Path) -> Iterator[str]:
    with serving(data_dir, server_env, database=sqlite_template) as url:
        yield url
