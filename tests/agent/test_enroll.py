"""``auxilio agent enroll``: the server key shown and pinned, the signed proof, enrolment.json, the
systemd user unit; the one-file agent that enrols from its trailer; errors with their codes."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from auxilio.agent import onefile
from auxilio.agent.access import AccessStore
from auxilio.agent.cli import app
from auxilio.agent.connection import server_address
from auxilio.agent.enroll import enroll, load_enrolment
from auxilio.agent.errors import AgentError, ServerKeyChanged
from auxilio.agent.service_unit import (
    UNIT_NAME,
    agent_command,
    install_service,
    install_unit,
    unit_text,
)
from auxilio.agent.state import AgentState
from auxilio.agent.trailer import encode_trailer, read_trailer
from auxilio.crypto.keys import decode_ed25519_public_key, encode_public_key, fingerprint
from auxilio.crypto.signing import DocumentKind, verify_document

# -- a tiny enrolment server ------------------------------------------------------------------


@dataclass
class FakeEnrolment:
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    tokens: dict[str, str] = field(default_factory=lambda: {"good-token": "fresh"})
    bodies: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.bodies.append(body)
        state = self.tokens.get(body["token"])
        codes = {None: (401, "enrolment.token_invalid"), "used": (409, "enrolment.token_used"),
                 "expired": (410, "enrolment.token_expired")}  # fmt: skip
        if state in codes:
            status, code = codes[state]
            return status, {"error": {"code": code, "message": "refused", "details": {}}}
        device_key = decode_ed25519_public_key(body["device_public_key"])
        payload = verify_document(device_key, _signed(body["proof"]), kind=DocumentKind.ENROLMENT)
        if payload != {"token_sha256": hashlib.sha256(body["token"].encode()).hexdigest(),
                       "device_public_key": body["device_public_key"],
                       "server_fingerprint": fingerprint(self.key.public_key())}:  # fmt: skip
            return 400, {"error": {"code": "enrolment.proof_invalid", "message": "bad proof"}}
        self.tokens[body["token"]] = "used"
        return 201, {"device_id": "dev-77", "organisation_id": "org-3",
                     "organisation_name": "Escuela", "device_group": "aula",
                     "owner_name": "Rosa", "server_public_key": encode_public_key(
                         self.key.public_key()),
                     "server_fingerprint": fingerprint(self.key.public_key()),
                     "enrolled_at": "2026-12-02T10:00:00Z"}  # fmt: skip


def _signed(value: dict[str, str]) -> Any:
    from auxilio.protocol.types import SignedDocument

    return SignedDocument.model_validate(value)


@pytest.fixture
def fake() -> Iterator[FakeEnrolment]:
    world = FakeEnrolment()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            public = world.key.public_key()
            self._send(200, {"public_key": encode_public_key(public),
                             "fingerprint": fingerprint(public)})  # fmt: skip

        def do_POST(self) -> None:
            assert self.path == "/api/v1/agents/enroll"
            length = int(self.headers["Content-Length"])
            self._send(*world.answer(json.loads(self.rfile.read(length))))

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    world.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield world
    httpd.shutdown()
    httpd.server_close()


def said() -> tuple[list[str], Any]:
    lines: list[str] = []
    return lines, lines.append


def test_enrol_pins_the_key_signs_the_proof_and_stores_the_enrolment(
    fake: FakeEnrolment, state: AgentState
) -> None:
    lines, say = said()
    enrolment = enroll(address=server_address(fake.url), token=" good-token\n", state=state,
                       name="aula-3", say=say)  # fmt: skip
    assert enrolment.device_id == "dev-77" and enrolment.server == server_address(fake.url).origin
    body = fake.bodies[-1]
    assert body["token"] == "good-token" and body["name"] == "aula-3"
    assert body["device_public_key"] == encode_public_key(state.device_public_key)
    assert body["platform"] and body["agent_version"]
    assert load_enrolment(state) == enrolment
    path = state.root / "enrolment.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert set(json.loads(path.read_text())) >= {"server", "device_id", "organisation_id",
                                                  "organisation_name", "device_group",
                                                  "owner_name", "enrolled_at"}  # fmt: skip
    pinned = state.pinned(enrolment.server)
    assert pinned is not None and pinned.fingerprint == fingerprint(fake.key.public_key())
    assert pinned.device_id == "dev-77"  # the id the server's grants must name
    assert any(fingerprint(fake.key.public_key()) in line for line in lines)
    assert any("Pinned the server key" in line for line in lines)


@pytest.mark.parametrize(
    ("token", "tokens", "code"),
    [("nope", {}, "enrolment.token_invalid"), ("t", {"t": "used"}, "enrolment.token_used"),
     ("t", {"t": "expired"}, "enrolment.token_expired"), ("  ", {}, "enrolment.token_invalid")],
)  # fmt: skip
def test_server_refusals_keep_their_code(
    fake: FakeEnrolment, state: AgentState, token: str, tokens: dict[str, str], code: str
) -> None:
    fake.tokens = tokens
    with pytest.raises(AgentError) as caught:
        enroll(address=server_address(fake.url), token=token, state=state, say=lambda _: None)
    assert caught.value.code == code
    assert load_enrolment(state) is None


def test_enrol_twice_is_refused(fake: FakeEnrolment, state: AgentState) -> None:
    enroll(address=server_address(fake.url), token="good-token", state=state, say=lambda _: None)
    fake.tokens["other"] = "fresh"
    with pytest.raises(AgentError) as caught:
        enroll(address=server_address(fake.url), token="other", state=state, say=lambda _: None)
    assert caught.value.code == "enrolment.already_enrolled"


def test_an_unexpected_fingerprint_is_refused_before_anything_is_sent(
    fake: FakeEnrolment, state: AgentState
) -> None:
    with pytest.raises(AgentError) as caught:
        enroll(address=server_address(fake.url), token="good-token", state=state,
               expected_fingerprint="SHA256:0000 1111", say=lambda _: None)  # fmt: skip
    assert caught.value.code == "enrolment.fingerprint_mismatch"
    assert fake.bodies == [] and state.pinned(server_address(fake.url).origin) is None
    # The right one, spelled without spaces, passes.
    plain = fingerprint(fake.key.public_key()).replace(" ", "")
    enroll(address=server_address(fake.url), token="good-token", state=state,
           expected_fingerprint=plain, say=lambda _: None)  # fmt: skip


def test_a_changed_server_key_is_refused(fake: FakeEnrolment, state: AgentState) -> None:
    state.pin(server_address(fake.url).origin, Ed25519PrivateKey.generate().public_key())
    with pytest.raises(ServerKeyChanged):
        enroll(address=server_address(fake.url), token="good-token", state=state,
               say=lambda _: None)  # fmt: skip
    assert fake.bodies == []


def test_unreachable_server(state: AgentState) -> None:
    with pytest.raises(AgentError) as caught:
        enroll(address=server_address("http://127.0.0.1:9"), token="t", state=state,
               say=lambda _: None)  # fmt: skip
    assert caught.value.code == "server.unreachable"


# -- the command line and the unit ------------------------------------------------------------


def no_systemctl(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path / "config" / "systemd" / "user" / UNIT_NAME


def test_cli_enrols_and_shows_the_error_code(
    fake: FakeEnrolment, state: AgentState, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    unit = no_systemctl(monkeypatch, tmp_path)
    runner = CliRunner()
    done = runner.invoke(app, ["enroll", "--server", fake.url, "--token", "good-token",
                               "--no-service", "--state-dir", str(state.root)])  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "Enrolled as device dev-77 of Escuela" in done.output
    assert "No service installed (--no-service)" in done.output and not unit.exists()
    again = runner.invoke(app, ["enroll", "--server", fake.url, "--token", "good-token",
                                "--state-dir", str(tmp_path / "other")])  # fmt: skip
    assert again.exit_code == 1 and "Error enrolment.token_used:" in again.output


def test_cli_installs_the_unit_and_says_systemctl_is_missing(
    fake: FakeEnrolment, state: AgentState, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    unit = no_systemctl(monkeypatch, tmp_path)
    done = CliRunner().invoke(app, ["enroll", "--server", fake.url, "--token", "good-token",
                                    "--state-dir", str(state.root)])  # fmt: skip
    assert done.exit_code == 0, done.output
    assert unit.exists() and str(state.root.resolve()) in unit.read_text()
    assert "systemctl was not found" in done.output
    assert "Task Scheduler" in done.output and "LaunchAgent" in done.output


def test_unit_text() -> None:
    text = unit_text(["/opt/my agent/python", "-m", "auxilio", "agent", "run", "--state-dir",
                      "/home/ana/100%"])  # fmt: skip
    assert ('ExecStart="/opt/my agent/python" "-m" "auxilio" "agent" "run" "--state-dir" '
            '"/home/ana/100%%"\n') in text  # fmt: skip
    assert "Restart=on-failure\n" in text and "RestartPreventExitStatus=3 5\n" in text
    assert "WantedBy=default.target\n" in text and "User=" not in text


def test_agent_command_is_this_program(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert agent_command(tmp_path) == [sys.executable, "-m", "auxilio", "agent", "run",
                                       "--state-dir", str(tmp_path.resolve())]  # fmt: skip
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert agent_command(tmp_path) == [sys.executable, "run", "--state-dir",
                                       str(tmp_path.resolve())]  # fmt: skip


def test_install_unit_runs_systemctl(tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def run(command: list[str]) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        return subprocess.CompletedProcess(command, 0, "", "")

    done = install_unit(tmp_path / "state", home=tmp_path, systemctl="/bin/systemctl", run=run)
    assert done.started and done.path == tmp_path / ".config/systemd/user" / UNIT_NAME
    assert calls == [["/bin/systemctl", "--user", "daemon-reload"],
                     ["/bin/systemctl", "--user", "enable", "--now", UNIT_NAME]]  # fmt: skip

    def failing(command: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(command, 1, "", "Failed to connect to bus")

    broken = install_unit(tmp_path / "state", home=tmp_path, systemctl="/bin/systemctl",
                          run=failing)  # fmt: skip
    assert not broken.started and broken.path.exists()
    assert any("Failed to connect to bus" in line for line in broken.said)


def test_no_service_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    unit = no_systemctl(monkeypatch, tmp_path)
    lines, say = said()
    install_service(tmp_path / "state", start=False, say=say)
    assert not unit.exists() and "--no-service" in lines[0]


# -- the one-file agent with an enrolment token -----------------------------------------------


def trailer_file(tmp_path: Path, key: Ed25519PrivateKey, url: str, token: str) -> Path:
    body = b"\x7fELF pretend binary"
    now = datetime.now(UTC)
    data = body + encode_trailer(
        signing_key=key, server_url=url, join_code="", issued_at=now,
        expires_at=now + timedelta(hours=1), binary_sha256=hashlib.sha256(body).hexdigest(),
        enrolment_token=token,
    )  # fmt: skip
    path = tmp_path / "auxilio-agent"
    path.write_bytes(data)
    return path


def test_trailer_carries_a_signed_enrolment_token(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    path = trailer_file(tmp_path, key, "http://127.0.0.1:9", "tok-123")
    found = read_trailer(path)
    assert found is not None and found.enrolment_token == "tok-123" and found.join_code == ""
    # Another token in the same trailer: the signature no longer covers it.
    forged = path.read_bytes().replace(b"tok-123", b"tok-999")
    path.write_bytes(forged)
    with pytest.raises(AgentError) as caught:
        read_trailer(path)
    assert caught.value.code == "agent.trailer_tampered"


def test_the_one_file_agent_enrols_from_its_trailer(
    fake: FakeEnrolment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    unit = no_systemctl(monkeypatch, tmp_path)
    state_dir = tmp_path / "state"
    monkeypatch.setenv("AUXILIO_AGENT_STATE_DIR", str(state_dir))
    path = trailer_file(tmp_path, fake.key, fake.url, "good-token")
    with pytest.raises(SystemExit) as done:
        onefile.main([], executable=str(path))
    assert done.value.code == 0, capsys.readouterr()
    enrolment = load_enrolment(AgentState(state_dir))
    assert enrolment is not None and enrolment.device_id == "dev-77"
    assert fake.bodies[-1]["token"] == "good-token" and unit.exists()
    # Run again: already enrolled, nothing sent.
    with pytest.raises(SystemExit) as again:
        onefile.main([], executable=str(path))
    assert again.value.code == 0 and len(fake.bodies) == 1
    assert "already enrolled" in capsys.readouterr().err


def test_the_one_file_agent_pins_its_trailers_key_not_the_networks(
    fake: FakeEnrolment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    no_systemctl(monkeypatch, tmp_path)
    monkeypatch.setenv("AUXILIO_AGENT_STATE_DIR", str(tmp_path / "state"))
    # A trailer signed by another key than the one the server at that address has: the proof
    # names the trailer's key, which the server refuses; nothing is enrolled.
    path = trailer_file(tmp_path, Ed25519PrivateKey.generate(), fake.url, "good-token")
    with pytest.raises(SystemExit) as done:
        onefile.main([], executable=str(path))
    assert done.value.code == 1
    assert "Error enrolment.proof_invalid" in capsys.readouterr().err
    assert load_enrolment(AgentState(tmp_path / "state")) is None


# -- with the real server ---------------------------------------------------------------------


@pytest.mark.e2e
def test_enrol_with_a_real_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import pyotp

    from tests.e2e.conftest import AUXILIO, PASSWORD, serving, totp_code

    data_dir = tmp_path / "data"
    # No systemctl here (the machine's user manager is left alone); the unit is still written.
    env = {**os.environ, "PATH": str(tmp_path / "empty-bin"),
           "XDG_CONFIG_HOME": str(tmp_path / "config")}  # fmt: skip

    def create_user(email: str, role: str) -> str:
        done = subprocess.run(
            [*AUXILIO, "admin", "create-user", email, "--role", role, "--org", "e2e-enrol",
             "--password-stdin", "--hours", "mon-sun 00:00-24:00", "--data-dir", str(data_dir)],
            input=PASSWORD + "\n", capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr + done.stdout
        return done.stdout

    with serving(data_dir, {}) as url:
        senior = create_user("senior@example.test", "senior_technician")
        owner = create_user("owner@example.test", "end_user")
        owner_id = re.search(r"\(([0-9a-f-]{36})\)", owner).group(1)  # type: ignore[union-attr]
        uri = next(line for line in senior.splitlines() if line.startswith("otpauth://"))
        login = httpx.post(f"{url}/api/v1/auth/login", timeout=60, json={
            "email": "senior@example.test", "password": PASSWORD,
            "totp_code": totp_code(str(pyotp.parse_uri(uri).secret))})  # fmt: skip
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['token']}"}
        made = httpx.post(f"{url}/api/v1/enrolment-tokens", headers=headers, timeout=60,
                          json={"device_group": "aula", "owner_id": owner_id, "label": "pc 3",
                                "expires_in_hours": 2})  # fmt: skip
        assert made.status_code == 201, made.text
        token = made.json()["token"]

        def agent(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([*AUXILIO, "agent", *args, "--state-dir", str(state_dir)],
                                  capture_output=True, text=True, timeout=60, env=env,
                                  check=False)  # fmt: skip

        first = agent(tmp_path / "a", "enroll", "--server", url, "--token", token,
                      "--name", "pc-3")  # fmt: skip
        assert first.returncode == 0, first.stdout + first.stderr
        server_key = httpx.get(f"{url}/api/v1/server-key", timeout=10).json()["fingerprint"]
        assert server_key in first.stdout and "Enrolled as device" in first.stdout
        assert "systemctl was not found" in first.stdout
        enrolment = load_enrolment(AgentState(tmp_path / "a"))
        assert enrolment is not None and enrolment.device_group == "aula"
        unit = tmp_path / "config" / "systemd" / "user" / UNIT_NAME
        assert str((tmp_path / "a").resolve()) in unit.read_text()
        devices = httpx.get(f"{url}/api/v1/devices", headers=headers, timeout=60)
        assert devices.status_code == 200, devices.text
        assert enrolment.device_id in devices.text

        # The same token from another device (a stolen token): refused with its code.
        second = agent(tmp_path / "b", "enroll", "--server", url, "--token", token,
                       "--no-service")  # fmt: skip
        assert second.returncode == 1
        assert "Error enrolment.token_used:" in second.stdout
        wrong = agent(tmp_path / "c", "enroll", "--server", url, "--token", "x" * 43,
                      "--no-service")  # fmt: skip
        assert wrong.returncode == 1 and "Error enrolment.token_invalid:" in wrong.stdout

        # The owner pre-authorises; the service publishes it (the server acknowledges), then
        # publishes the owner's revocation; a supervisor revokes the device: the service stops
        # with exit code 5 and does not come back.
        granted = agent(tmp_path / "a", "access", "grant", "--scope", "chat", "--days", "all",
                        "--hours", "all", "--for", "1d")  # fmt: skip
        assert granted.returncode == 0, granted.stdout + granted.stderr
        store = AccessStore(AgentState(tmp_path / "a"))
        (entry,) = store.all()
        log_path = tmp_path / "agent-run.log"
        with log_path.open("w") as log_file:
            service = subprocess.Popen([*AUXILIO, "agent", "run", "--no-window", "--state-dir",
                                        str(tmp_path / "a")], stdout=log_file,
                                       stderr=subprocess.STDOUT, env=env)  # fmt: skip
        try:
            wait_for(lambda: store.get(entry.id).published, log_path)  # type: ignore[union-attr]
            shown = httpx.get(f"{url}/api/v1/devices/{enrolment.device_id}", headers=headers,
                              timeout=30)  # fmt: skip
            assert shown.status_code == 200 and shown.json()["online"] is True, shown.text
            revoked = agent(tmp_path / "a", "access", "revoke", entry.id, "--reason", "done")
            assert revoked.returncode == 0, revoked.stdout + revoked.stderr
            wait_for(lambda: store.get(entry.id).revocation_published, log_path)  # type: ignore[union-attr]

            supervisor = create_user("supervisor@example.test", "supervisor")
            uri = next(line for line in supervisor.splitlines() if line.startswith("otpauth://"))
            login = httpx.post(f"{url}/api/v1/auth/login", timeout=60, json={
                "email": "supervisor@example.test", "password": PASSWORD,
                "totp_code": totp_code(str(pyotp.parse_uri(uri).secret))})  # fmt: skip
            assert login.status_code == 200, login.text
            gone = httpx.post(f"{url}/api/v1/devices/{enrolment.device_id}/revoke",
                              headers={"Authorization": f"Bearer {login.json()['token']}"},
                              json={"reason": "laptop stolen"}, timeout=60)  # fmt: skip
            assert gone.status_code == 200, gone.text
            assert service.wait(timeout=60) == 5, log_path.read_text()
        finally:
            if service.poll() is None:
                service.kill()
                service.wait(timeout=10)
        assert "device.revoked" in log_path.read_text()
        # The error is unsigned: one refusal stops the run; the next starts ask the server,
        # which refuses at auth again; the third in a row is taken for good.
        stopped = load_enrolment(AgentState(tmp_path / "a"))
        assert stopped is not None and stopped.revoked_at is None
        assert stopped.refusals_at_auth == 1
        for count in (2, 3):
            again = agent(tmp_path / "a", "run", "--no-window")
            assert again.returncode == 5 and "device.revoked" in again.stdout
            assert f"refused at {count} start" in again.stdout.lower(), again.stdout
        stopped = load_enrolment(AgentState(tmp_path / "a"))
        assert stopped is not None and stopped.revoked_at is not None
        final = agent(tmp_path / "a", "run", "--no-window")
        assert final.returncode == 5 and "does not connect any more" in final.stdout


def wait_for(check: Any, log_path: Path, seconds: float = 30.0) -> None:
    import time

    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.2)
