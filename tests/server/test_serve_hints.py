"""What `auxilio serve` tells a newcomer: where it listens, and the exact first-admin command."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from auxilio.server.commands import first_admin_command, listen_url
from auxilio.server.settings import load_settings


def test_it_names_the_url_it_listens_on(tmp_path: Path) -> None:
    assert listen_url(load_settings(data_dir=tmp_path, port=8123)) == "http://127.0.0.1:8123"
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    tls = load_settings(data_dir=tmp_path, host="::1", port=8443, tls_cert=cert, tls_key=key)
    assert listen_url(tls) == "https://[::1]:8443"


def test_the_first_admin_hint_names_the_settings_in_use_and_hides_a_password(
    tmp_path: Path,
) -> None:
    config = tmp_path / "auxilio.toml"
    url = "postgresql+psycopg://auxilio:s3cret@db.internal/auxilio"
    settings = load_settings(data_dir=tmp_path / "my data", database_url=url)
    hint = first_admin_command(settings, config=config, database_url=url)
    assert f"--data-dir '{tmp_path / 'my data'}'" in hint
    assert f"--config {config}" in hint
    assert "s3cret" not in hint and "--database-url" in hint and "auxilio:***@db.internal" in hint


def test_the_printed_first_admin_command_works_as_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", [str(Path(sys.executable).parent / "auxilio"), "serve"])
    settings = load_settings(data_dir=tmp_path / "data")
    hint = first_admin_command(settings, config=None, database_url=None)
    done = subprocess.run(["bash", "-c", hint], capture_output=True, text=True, timeout=120,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    assert "created admin admin@example.org in my-org" in done.stdout
    assert "otpauth://" in done.stdout
