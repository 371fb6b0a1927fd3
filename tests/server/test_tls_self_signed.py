"""`auxilio serve --tls-self-signed`: one flag for HTTPS, a certificate made once for the
server's names and kept, its fingerprint printed; a real server answers over it."""

from __future__ import annotations

import datetime as dt
import os
import re
import ssl
import stat
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from auxilio.server.tls import default_names, ensure_self_signed, fingerprint_of
from tests.e2e.conftest import AUXILIO, free_port


def names_of(path: Path) -> set[str]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(v) for v in san.get_values_for_type(x509.DNSName)} | {
        str(v) for v in san.get_values_for_type(x509.IPAddress)}


def test_a_certificate_is_made_once_for_the_names_and_kept(tmp_path: Path) -> None:
    first = ensure_self_signed(tmp_path, default_names(["support.lan"]))
    assert first.created
    assert {"localhost", "127.0.0.1", "::1", "support.lan"} <= names_of(first.cert)
    assert stat.S_IMODE(os.stat(first.key).st_mode) == 0o600
    again = ensure_self_signed(tmp_path, default_names(["support.lan"]))
    assert not again.created and again.fingerprint == first.fingerprint
    # A name it does not cover, or an end within 30 days, makes a new one.
    wider = ensure_self_signed(tmp_path, default_names(["support.lan", "10.0.0.7"]))
    assert wider.created and "10.0.0.7" in names_of(wider.cert)
    later = ensure_self_signed(tmp_path, default_names(["support.lan", "10.0.0.7"]),
                               now=dt.datetime.now(dt.UTC) + dt.timedelta(days=340))
    assert later.created
    cert = x509.load_pem_x509_certificate(later.cert.read_bytes())
    assert fingerprint_of(cert) == later.fingerprint


@pytest.mark.e2e
def test_serve_with_a_self_signed_certificate_answers_over_https(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [*AUXILIO, "serve", "--port", str(port), "--data-dir", str(tmp_path / "data"),
         "--tls-self-signed", "--tls-name", "support.lan"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    try:
        cert = tmp_path / "data" / "tls" / "cert.pem"
        deadline = time.monotonic() + 60
        while True:
            try:
                trusted = ssl.create_default_context(cafile=str(cert))
                answer = httpx.get(f"https://127.0.0.1:{port}/healthz", verify=trusted,
                                   timeout=2)  # fmt: skip
                break
            except (httpx.HTTPError, OSError):
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("the server did not answer over HTTPS")
                time.sleep(0.3)
        assert answer.status_code == 200
        with pytest.raises(httpx.ConnectError):  # not trusted without the certificate
            httpx.get(f"https://127.0.0.1:{port}/healthz", timeout=5)
    finally:
        proc.terminate()
        output = proc.communicate(timeout=30)[0]
    printed = re.search(r"SHA-256 fingerprint ([0-9A-F:]{95})", output)
    assert printed is not None, output
    loaded = x509.load_pem_x509_certificate(cert.read_bytes())
    assert printed.group(1) == fingerprint_of(loaded)
    assert "support.lan" in names_of(cert)


def test_a_fingerprint_is_printed_as_it_is_never_as_emoji() -> None:
    """Rich turns ":ab:" into an emoji by default: a certificate's fingerprint 80:AB:85 printed
    as 80🆎85, which nobody can compare with the browser's (seen in a CI run)."""
    from auxilio.policy import cli as policy_cli
    from auxilio.server import commands

    for console in (commands.console, policy_cli.console, policy_cli.errors_out):
        with console.capture() as captured:
            console.print("SHA-256 fingerprint 80:AB:85:CD:01:SOS:E4", markup=False)
        assert "80:AB:85:CD:01:SOS:E4" in captured.get()
