"""The single-file agent end to end (issue 12): built once by scripts/build-agent, served by a
real ``auxilio serve`` from the join link with its trailer, downloaded with httpx, run in an
empty environment (``env -i``: no venv, no project on the path, a temporary HOME and cwd), and
the person consents in the terminal prompt (there is no display): the session becomes active.
A tampered download is refused with its code before anything connects; an expired or used
code gets no binary.

The build takes about a minute (PyInstaller, in .build/agent-venv). Where PyInstaller cannot be
installed the module is skipped, except in CI (``CI`` set), where that is a failure.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pexpect
import pytest

from auxilio.agent.trailer import FOOTER_BYTES, MAGIC
from tests.agent.xserver import click, find_window, need_xdotool, screenshot, xvfb
from tests.e2e.conftest import AUXILIO, PASSWORD, serving, totp_code
from tests.e2e.test_support_session_e2e import (
    create_user,
    open_ticket,
    record_trainings,
    totp_secret,
)

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "scripts" / "build-agent"
PLATFORM = "linux-x86_64"
NAME = f"auxilio-agent-{PLATFORM}"
LINUX_FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
REQUESTED = re.compile(r"requested id=([0-9a-f-]{36})")
JOIN_CODE = re.compile(r"join_code=([A-Z0-9]{3}-[A-Z0-9]{3}-[A-Z0-9]{3})")


@pytest.fixture(scope="module")
def agent_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The directory with the freshly built agent, LICENSES.txt and build.json."""
    if os.uname().sysname != "Linux" or os.uname().machine != "x86_64":
        pytest.skip("the test serves the linux-x86_64 build")
    out = tmp_path_factory.mktemp("agent-builds")
    done = subprocess.run([str(BUILD), "--out", str(out)], capture_output=True, text=True,
                          timeout=900, check=False, cwd=ROOT)  # fmt: skip
    if done.returncode != 0:
        venv_python = ROOT / ".build" / "agent-venv" / "bin" / "python"
        installed = venv_python.exists() and subprocess.run(
            [str(venv_python), "-c", "import PyInstaller"], capture_output=True, check=False
        ).returncode == 0
        if not installed and not os.environ.get("CI"):
            pytest.skip(f"PyInstaller could not be installed: {done.stderr[-2000:]}")
        pytest.fail(f"scripts/build-agent failed:\n{done.stdout}\n{done.stderr[-6000:]}")
    report = json.loads(done.stdout)
    assert report["name"] == NAME
    assert (out / NAME).stat().st_size == report["size_bytes"]
    return out


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serve") / "data"


@pytest.fixture(scope="module")
def server(agent_build: Path, data_dir: Path) -> Iterator[str]:
    """One ``auxilio serve`` for the module (the people are made once too), serving the build."""
    with serving(data_dir, {"AUXILIO_AGENT_BUILDS_DIR": str(agent_build)}) as url:
        yield url


def clean_env(home: Path) -> dict[str, str]:
    """What a person's fresh login has, and nothing of this project: no venv, no PYTHONPATH."""
    home.mkdir(parents=True, exist_ok=True)
    return {"HOME": str(home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "TERM": "xterm"}


def test_the_build_reports_its_size_and_start_and_lists_the_licences(agent_build: Path) -> None:
    report = json.loads((agent_build / "build.json").read_text())
    assert report["size_bytes"] <= 60_000_000, report["size_mb"]
    assert report["cold_start_help_seconds"] > 0
    names = {item["name"].lower() for item in report["bundled"]}
    # The agent's own dependencies, and none of the server's, nor PyAV.
    assert {"cryptography", "websockets", "mss", "numpy", "pillow", "rich"} <= names
    assert not names & {"fastapi", "starlette", "uvicorn", "sqlalchemy", "jinja2", "babel",
                        "av", "argon2-cffi", "alembic", "pyinstaller"}  # fmt: skip
    licences = (agent_build / "LICENSES.txt").read_text()
    for expected in ("cryptography", "websockets", "pillow", "numpy", "Python 3.",
                     "PYTHON SOFTWARE FOUNDATION LICENSE"):  # fmt: skip
        assert expected.lower() in licences.lower(), expected
    # Nothing of the server inside: its modules are not in the archive.
    binary = (agent_build / NAME).read_bytes()
    assert b"auxilio.server" not in binary
    assert b"auxilio/server" not in binary


def test_the_plain_build_runs_in_an_empty_environment(agent_build: Path, tmp_path: Path) -> None:
    env = clean_env(tmp_path / "home")
    version = subprocess.run([str(agent_build / NAME), "--version"], env=env, cwd=tmp_path,
                             capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == "auxilio-agent 0.1.0"
    plain = subprocess.run([str(agent_build / NAME)], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert plain.returncode == 2
    assert "agent.no_trailer" in plain.stderr


def _flip_json_byte(data: bytes) -> bytes:
    """One letter of the join code inside the trailer, the JSON still well formed."""
    length = int.from_bytes(data[-FOOTER_BYTES : -len(MAGIC)], "big")
    start = len(data) - FOOTER_BYTES - length
    at = data.index(b'"join_code":"', start) + len(b'"join_code":"')
    changed = bytearray(data)
    changed[at] = ord("X") if changed[at] != ord("X") else ord("Y")
    return bytes(changed)


def _state(server: str, token: str, sid: str) -> str:
    answer = httpx.get(f"{server}/api/v1/support-sessions/{sid}",
                       headers={"Authorization": f"Bearer {token}"}, timeout=30)  # fmt: skip
    assert answer.status_code == 200, answer.text
    return str(answer.json()["state"])


def _wait_state(server: str, token: str, sid: str, wanted: str) -> None:
    deadline = time.monotonic() + 60
    while (state := _state(server, token, sid)) != wanted and time.monotonic() < deadline:
        time.sleep(0.3)
    assert state == wanted


Technician = tuple[pexpect.spawn, str, str, str]  # process, session id, join code, API token
TERMINAL_STEPS = ("chat:hello from the technician", "expect:hello from the person", "end")


@pytest.fixture(scope="module")
def people(
    server: str, data_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[int, str, dict[str, str]]:
    """The person, the technician (trainings done, logged in with ``auxilio login``), the
    auditor key the default policy's recording needs, and the person's ticket: (ticket number,
    the technician's API token, the technician client's environment)."""
    home = tmp_path_factory.mktemp("technician")
    client_env = {**os.environ, "AUXILIO_CONFIG_DIR": str(home / "client-config")}
    create_user(data_dir, "person@example.test", "end_user")
    created = create_user(data_dir, "tech@example.test", "senior_technician")
    secret = totp_secret(created)
    technician_id = re.search(r"\(([0-9a-f-]{36})\)", created).group(1)  # type: ignore[union-attr]
    admin_secret = totp_secret(create_user(data_dir, "admin@example.test", "admin"))
    record_trainings(server, admin_secret, technician_id)
    keyed = subprocess.run(
        [*AUXILIO, "admin", "auditor-key", "--org", "e2e-support", "--data-dir", str(data_dir),
         "--out", str(home / "auditor.pem")],
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
    token = json.loads((home / "client-config" / "credentials.json").read_text())
    return number, str(token["token"]), client_env


@pytest.fixture
def start_technician(
    people: tuple[int, str, dict[str, str]],
) -> Iterator[Callable[[tuple[str, ...]], Technician]]:
    """Starts ``auxilio connect`` with these steps on a new session of the person's ticket."""
    number, token, client_env = people
    started: list[pexpect.spawn] = []

    def start(steps: tuple[str, ...]) -> Technician:
        sends = [arg for step in steps for arg in ("--send", step)]
        technician = pexpect.spawn(
            AUXILIO[0],
            [*AUXILIO[1:], "connect", "--ticket", str(number), "-c", "chat", *sends,
             "--summary", "Helped through the downloaded agent."],
            env=client_env, encoding="utf-8", timeout=90,
        )  # fmt: skip
        started.append(technician)
        technician.expect(REQUESTED)
        sid = technician.match.group(1)
        technician.expect(JOIN_CODE)
        return technician, sid, technician.match.group(1), token

    yield start
    for technician in started:
        technician.close()


def _download(server: str, code: str, folder: Path) -> Path:
    answer = httpx.get(f"{server}/join/{code}/agent/{PLATFORM}", timeout=120)
    assert answer.status_code == 200, answer.text[:500]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / NAME
    path.write_bytes(answer.content)
    path.chmod(0o755)
    return path


def test_the_person_downloads_runs_and_consents_without_typing_a_url(
    server: str, data_dir: Path, tmp_path: Path, agent_build: Path,
    start_technician: Callable[[tuple[str, ...]], Technician],
) -> None:
    technician, sid, code, token = start_technician(TERMINAL_STEPS)
    # The join page offers the Linux build to a Linux browser, with its size, in plain steps.
    page = httpx.get(f"{server}/join/{code}", headers={"User-Agent": LINUX_FIREFOX}, timeout=30)
    assert page.status_code == 200
    size_mb = max(1, round((agent_build / NAME).stat().st_size / 1_000_000))
    assert f"Download the agent for Linux (x86_64), {size_mb} MB" in page.text
    assert f'href="/join/{code}/agent/{PLATFORM}"' in page.text
    assert f"chmod +x {NAME}" in page.text

    answer = httpx.get(f"{server}/join/{code}/agent/{PLATFORM}", timeout=120)
    assert answer.status_code == 200, answer.text[:500]
    assert answer.headers["content-disposition"] == f'attachment; filename="{NAME}"'
    body = answer.content
    assert body.startswith((agent_build / NAME).read_bytes())
    assert body.endswith(MAGIC)
    downloads = tmp_path / "Downloads"
    downloads.mkdir()

    # A changed byte in the trailer: refused with its code, and nothing connects.
    tampered = downloads / "tampered" / NAME
    tampered.parent.mkdir()
    tampered.write_bytes(_flip_json_byte(body))
    tampered.chmod(0o755)
    refused = subprocess.run([str(tampered)], env=clean_env(tmp_path / "home-tampered"),
                             cwd=tampered.parent, capture_output=True, text=True, timeout=60,
                             check=False)  # fmt: skip
    assert refused.returncode == 4, refused.stdout + refused.stderr
    assert "Error agent.trailer_tampered:" in refused.stderr
    assert "Connecting" not in refused.stdout + refused.stderr
    assert _state(server, token, sid) == "requested"

    # The genuine file: chmod +x, run, the consent prompt, yes; nothing typed but the answer.
    agent_file = downloads / NAME
    agent_file.write_bytes(body)
    agent_file.chmod(0o755)
    home = tmp_path / "home"
    agent = pexpect.spawn(str(agent_file), [], env=clean_env(home), cwd=str(downloads),
                          encoding="utf-8", timeout=90, dimensions=(50, 160))  # fmt: skip
    try:
        agent.expect(f"Join code {code}")
        agent.expect(r"Allow \w+\? \[y/n\]")
        agent.sendline("y")
        technician.expect("state< active granted=")
        assert _state(server, token, sid) == "active"
        agent.expect("hello from the technician")
        agent.sendline("hello from the person")
        technician.expect("state< ended ended_by=technician")
        agent.expect("Session report")
        agent.expect(pexpect.EOF)
    finally:
        transcript = str(agent.before or "")
        agent.close()
    assert agent.exitstatus == 0, transcript
    _wait_state(server, token, sid, "ended")
    # The key came from the trailer: pinned before the first connection, for this origin.
    known = json.loads((home / ".local/share/auxilio-agent/known_servers.json").read_text())
    assert list(known) == [server]

    # The download is in the audit log, with the build's hash.
    with sqlite3.connect(data_dir / "auxilio.db") as db:
        rows = [json.loads(r[0]) for r in db.execute(
            "SELECT details FROM audit_events WHERE action = 'support_session:agent:downloaded'"
        )]  # fmt: skip
    db.close()
    assert len(rows) == 1
    assert rows[0]["platform"] == PLATFORM
    assert rows[0]["build_sha256"] == hashlib.sha256((agent_build / NAME).read_bytes()).hexdigest()

    # The code is spent: no binary any more.
    used = httpx.get(f"{server}/join/{code}/agent/{PLATFORM}", timeout=30)
    assert used.status_code == 410
    assert 'data-code="join_code.used"' in used.text
    assert not used.content.endswith(MAGIC)


def test_with_a_display_the_person_consents_in_the_window(
    server: str, tmp_path: Path, start_technician: Callable[[tuple[str, ...]], Technician]
) -> None:
    """What a person on a desktop sees: the downloaded file opens the consent window (Tk, inside
    the binary); two clicks and the session is active; "End session" ends it."""
    need_xdotool()
    technician, sid, code, token = start_technician(
        ("chat:hello from the technician", "wait:600", "end")
    )
    agent_file = _download(server, code, tmp_path / "Downloads")
    with xvfb() as display:
        env = {**clean_env(tmp_path / "home"), "DISPLAY": display}
        agent = pexpect.spawn(str(agent_file), [], env=env, cwd=str(agent_file.parent),
                              encoding="utf-8", timeout=90, dimensions=(50, 160))  # fmt: skip
        try:
            agent.expect("A window asks for your consent.")
            if shutil.which("import") is not None:  # ImageMagick: a picture of what they see
                shot = screenshot(display, "Auxilio: remote support request", tmp_path / "c.png")
                assert shot.stat().st_size > 5_000
            click(display, "auxilio-consent-granted-chat")
            click(display, "auxilio-consent-confirm")
            agent.expect("chat: granted")
            technician.expect("state< active granted=")
            assert _state(server, token, sid) == "active"
            agent.expect("hello from the technician")
            click(display, "auxilio-end-session")
            technician.expect("state< ended ended_by=end_user")
            agent.expect("Session report")
            agent.expect(pexpect.EOF)
        finally:
            transcript = str(agent.before or "")
            agent.close()
        assert agent.exitstatus == 0, transcript
        _wait_state(server, token, sid, "ended")

        # Double-clicked, with no terminal to print to, a refused file says why in a window.
        tampered = tmp_path / "tampered" / NAME
        tampered.parent.mkdir()
        tampered.write_bytes(_flip_json_byte(agent_file.read_bytes()))
        tampered.chmod(0o755)
        with subprocess.Popen([str(tampered)], env=env, cwd=tampered.parent,
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) as refused:  # fmt: skip
            dialog = find_window(display, "Auxilio")
            subprocess.run(["xdotool", "windowfocus", "--sync", dialog, "key", "Return"],
                           env={"DISPLAY": display}, check=True, timeout=30)  # fmt: skip
            _, stderr = refused.communicate(timeout=60)
        assert refused.returncode == 4
        assert "Error agent.trailer_tampered:" in stderr


def test_an_expired_or_unknown_code_gets_no_binary(
    server: str, data_dir: Path, start_technician: Callable[[tuple[str, ...]], Technician]
) -> None:
    _, sid, code, _token = start_technician(TERMINAL_STEPS)
    unknown = httpx.get(f"{server}/join/ACD-EFH-JKM/agent/{PLATFORM}", timeout=30)
    assert unknown.status_code == 404
    assert 'data-code="join_code.invalid"' in unknown.text
    assert "application/octet-stream" not in unknown.headers["content-type"]
    other = httpx.get(f"{server}/join/{code}/agent/plan9-mips", timeout=30)
    assert other.status_code == 404 and 'data-code="agent.platform_unknown"' in other.text
    missing = httpx.get(f"{server}/join/{code}/agent/windows-x86_64", timeout=30)
    assert missing.status_code == 404 and 'data-code="agent.build_missing"' in missing.text

    # The code's expiry moved into the past, as ten minutes of waiting would.
    past = (datetime.now(UTC) - timedelta(minutes=1)).replace(tzinfo=None)
    with sqlite3.connect(data_dir / "auxilio.db") as db:
        changed = db.execute(
            "UPDATE support_session_join_codes SET expires_at = ? WHERE support_session_id = ?",
            (past.isoformat(sep=" "), sid.replace("-", "")),
        ).rowcount
        if not changed:  # stored with its dashes on this backend
            changed = db.execute(
                "UPDATE support_session_join_codes SET expires_at = ? "
                "WHERE support_session_id = ?", (past.isoformat(sep=" "), sid),
            ).rowcount  # fmt: skip
    db.close()
    assert changed == 1
    expired = httpx.get(f"{server}/join/{code}/agent/{PLATFORM}", timeout=30)
    assert expired.status_code == 410
    assert 'data-code="join_code.expired"' in expired.text
    assert not expired.content.endswith(MAGIC)
    # A Windows browser is told there is no build for it, and what to do.
    page = httpx.get(f"{server}/join/{code}", timeout=30,
                     headers={"User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"})
    assert "This server has no agent for Windows (64-bit) yet." in page.text
    assert "Ask the technician" in page.text
