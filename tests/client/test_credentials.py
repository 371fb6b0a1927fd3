"""Credentials, pinned server keys and session keys on disk."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from auxilio.client import credentials as creds
from auxilio.crypto.keys import encode_public_key


@pytest.fixture(autouse=True)
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    directory = tmp_path / "config"
    monkeypatch.setenv("AUXILIO_CONFIG_DIR", str(directory))
    return directory


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_it_round_trips_credentials_in_a_0600_file(config_dir: Path) -> None:
    stored = creds.Credentials(server="https://help.example.org", token="t" * 40, email="a@b.c")
    path = creds.save_credentials(stored)

    assert path == config_dir / "credentials.json"
    assert _mode(path) == 0o600
    assert _mode(config_dir) == 0o700
    assert creds.load_credentials() == stored


def test_it_overwrites_credentials_without_widening_permissions(config_dir: Path) -> None:
    creds.save_credentials(creds.Credentials(server="https://a", token="1" * 20, email="x@y.z"))
    creds.save_credentials(creds.Credentials(server="https://b", token="2" * 20, email="x@y.z"))

    assert creds.load_credentials().server == "https://b"
    assert _mode(config_dir / "credentials.json") == 0o600
    assert not list(config_dir.glob(".*.tmp"))


def test_it_refuses_credentials_readable_by_others(config_dir: Path) -> None:
    path = creds.save_credentials(creds.Credentials(server="https://a", token="1" * 20, email="e"))
    path.chmod(0o644)

    with pytest.raises(creds.ClientStateError, match="chmod 600"):
        creds.load_credentials()


def test_it_says_how_to_log_in_when_there_are_no_credentials() -> None:
    with pytest.raises(creds.ClientStateError, match="auxilio login"):
        creds.load_credentials()


def test_logout_forgets_the_credentials() -> None:
    creds.save_credentials(creds.Credentials(server="https://a", token="1" * 20, email="e"))

    assert creds.delete_credentials() is True
    assert creds.delete_credentials() is False


def test_it_keeps_a_session_key_0600_and_loads_it_back(config_dir: Path) -> None:
    key = X25519PrivateKey.generate()
    path = creds.save_session_key("7d4c2a1e-0000-4000-8000-000000000001", key)

    assert path.parent == config_dir / "sessions"
    assert _mode(path) == 0o600
    loaded = creds.load_session_key("7d4c2a1e-0000-4000-8000-000000000001")
    assert encode_public_key(loaded.public_key()) == encode_public_key(key.public_key())


@pytest.mark.parametrize("bad_id", ["../credentials", "a/b", ".", ""])
def test_it_refuses_a_session_id_that_is_not_a_plain_name(bad_id: str) -> None:
    with pytest.raises(creds.ClientStateError, match="not a support session id"):
        creds.session_key_path(bad_id)


def test_it_explains_a_missing_session_key() -> None:
    with pytest.raises(creds.ClientStateError, match="only the client that requested"):
        creds.load_session_key("ss-404")


def test_it_pins_the_server_key_on_first_use_and_refuses_a_changed_one(config_dir: Path) -> None:
    assert creds.pin_server_key("https://a", "k" * 43) is True
    assert creds.pin_server_key("https://a", "k" * 43) is False
    assert _mode(config_dir / "known_servers.json") == 0o600

    with pytest.raises(creds.ClientStateError, match="changed since it was pinned"):
        creds.pin_server_key("https://a", "j" * 43)
    # Another server is pinned on its own.
    assert creds.pin_server_key("https://b", "j" * 43) is True
