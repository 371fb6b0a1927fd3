"""`auxilio serve --tls-cert/--tls-key` serves HTTPS and WSS; JSON logs carry the request id."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
import os
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from auxilio.server.middleware import JsonFormatter
from tests.e2e.conftest import AUXILIO, free_port

pytestmark = pytest.mark.e2e


def trusting(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls(tmp_path: Path) -> tuple[Path, Path]:
    return self_signed(tmp_path)


@pytest.fixture
def server_env(tls: tuple[Path, Path]) -> Iterator[dict[str, str]]:
    cert, key = tls
    yield {"AUXILIO_TLS_CERT": str(cert), "AUXILIO_TLS_KEY": str(key), "AUXILIO_LOG_JSON": "true"}


@dataclass
class HttpsServer:
    url: str
    proc: subprocess.Popen[str]

    def stop(self) -> list[dict[str, object]]:
        """Stop the server; its log lines, parsed (JSON logs are on)."""
        if self.proc.poll() is None:
            self.proc.terminate()
        log = self.proc.communicate(timeout=15)[0]
        assert "Traceback" not in log, log
        return [json.loads(x) for x in log.splitlines() if x.startswith("{")]


@pytest.fixture
def https_server(
    tls: tuple[Path, Path], data_dir: Path, server_env: dict[str, str]
) -> Iterator[HttpsServer]:
    # The shared fixture polls plain HTTP; this one speaks TLS, so it starts the process itself.
    port = free_port()
    proc = subprocess.Popen(
        [*AUXILIO, "serve", "--port", str(port), "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, **server_env},
    )  # fmt: skip
    server = HttpsServer(f"https://127.0.0.1:{port}", proc)
    try:
        # A deadline, not a wait: a loaded machine (xdist workers, browsers) may take this long.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{server.url}/healthz", verify=trusting(tls[0]), timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        yield server
    finally:
        if proc.returncode is None:
            server.stop()


def test_serve_answers_https_with_the_given_certificate(
    https_server: HttpsServer, tls: tuple[Path, Path]
) -> None:
    response = httpx.get(
        f"{https_server.url}/readyz",
        verify=trusting(tls[0]),
        headers={"X-Request-Id": "tls-check-1"},
    )
    assert response.json() == {"status": "ready"}
    assert response.headers["x-request-id"] == "tls-check-1"
    # Plain HTTP on the TLS port is refused rather than served.
    with pytest.raises(httpx.HTTPError):
        httpx.get(https_server.url.replace("https://", "http://") + "/healthz", timeout=2)
    # JSON logs: the request's line is one JSON object carrying its request id.
    lines = https_server.stop()
    assert any(x.get("request_id") == "tls-check-1" and x.get("status") == 200 for x in lines)


def test_the_json_formatter_writes_one_object_with_the_extras() -> None:
    record = logging.LogRecord(
        "auxilio.http", logging.INFO, __file__, 1, "GET %s %s", ("/x", 200), None
    )
    record.request_id = "abc123"
    data = json.loads(JsonFormatter().format(record))
    assert data["message"] == "GET /x 200"
    assert data["request_id"] == "abc123"
    assert data["level"] == "INFO" and data["logger"] == "auxilio.http"


def test_the_agent_connects_over_wss_and_pins_the_server(
    https_server: HttpsServer, tls: tuple[Path, Path], tmp_path: Path
) -> None:
    # A wrong code: the server can only say so after TLS, the WebSocket and the agent's
    # challenge-response all worked.
    done = subprocess.run(
        [*AUXILIO, "agent", "join", "AAA-BBB-CCC", "--server", https_server.url,
         "--ca-file", str(tls[0]), "--state-dir", str(tmp_path / "agent")],
        capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "Pinned the server key" in output
    assert "join_code.invalid" in output
