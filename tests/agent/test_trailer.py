"""The trailer of the single-file agent: exactly what the server made, for this very program,
or refused with its code before anything connects."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auxilio.agent import trailer as trailer_module
from auxilio.agent.state import AgentState
from auxilio.agent.trailer import (
    FOOTER_BYTES,
    LENGTH_BYTES,
    MAGIC,
    MAX_TRAILER_BYTES,
    TRAILER_KIND,
    TrailerError,
    encode_trailer,
    read_trailer,
)
from auxilio.crypto.keys import b64url_encode, fingerprint
from auxilio.crypto.signing import sign_bytes_for

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
BODY = b"\x7fELF" + bytes(range(256)) * 64  # stands in for the binary as built


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def served(key: Ed25519PrivateKey, body: bytes = BODY, **changes: object) -> bytes:
    fields: dict[str, object] = {
        "server_url": "https://help.example.org",
        "join_code": "ACD-EFH-JKM",
        "issued_at": NOW - timedelta(minutes=1),
        "expires_at": NOW + timedelta(minutes=9),
        "binary_sha256": hashlib.sha256(body).hexdigest(),
    }
    fields.update(changes)
    return body + encode_trailer(signing_key=key, **fields)  # type: ignore[arg-type]


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "auxilio-agent-linux-x86_64"
    path.write_bytes(data)
    return path


def refused(tmp_path: Path, data: bytes) -> str:
    with pytest.raises(TrailerError) as caught:
        read_trailer(write(tmp_path, data), now=NOW)
    assert caught.value.exit_code == 4
    return caught.value.code


def json_span(data: bytes) -> tuple[int, int]:
    length = int.from_bytes(data[-FOOTER_BYTES:-len(MAGIC)], "big")
    end = len(data) - FOOTER_BYTES
    return end - length, end


def test_a_served_file_gives_its_server_key_and_code(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    found = read_trailer(write(tmp_path, served(key)), now=NOW)
    assert found is not None
    assert found.server_url == "https://help.example.org"
    assert found.join_code == "ACD-EFH-JKM"
    assert found.server_fingerprint == fingerprint(key.public_key())
    assert fingerprint(found.server_key) == fingerprint(key.public_key())
    assert found.expires_at == NOW + timedelta(minutes=9)
    assert found.binary_sha256 == hashlib.sha256(BODY).hexdigest()


def test_the_layout_is_json_then_length_then_magic(key: Ed25519PrivateKey) -> None:
    data = served(key)
    assert data.startswith(BODY)
    assert data.endswith(MAGIC)
    start, end = json_span(data)
    assert start == len(BODY)
    fields = json.loads(data[start:end])
    assert set(fields) == {"server_url", "server_key", "server_fingerprint", "join_code",
                           "issued_at", "expires_at", "binary_sha256", "signature"}  # fmt: skip
    assert fields["server_key"].startswith("-----BEGIN PUBLIC KEY-----")
    assert fields["expires_at"] == "2026-12-01T12:09:00Z"


def test_a_plain_file_has_no_trailer(tmp_path: Path) -> None:
    assert read_trailer(write(tmp_path, BODY), now=NOW) is None
    assert read_trailer(write(tmp_path, b""), now=NOW) is None
    # The Python interpreter running these tests is a file without one too.
    assert read_trailer(sys.executable, now=NOW) is None


def test_a_changed_byte_in_the_json_is_tampering(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    data = bytearray(served(key))
    start, end = json_span(bytes(data))
    at = bytes(data).index(b"ACD-EFH-JKM", start, end)
    data[at] = ord("X")  # another join code, the JSON still well formed
    assert refused(tmp_path, bytes(data)) == "agent.trailer_tampered"


def test_another_server_url_is_tampering(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    data = served(key)
    start, end = json_span(data)
    fields = json.loads(data[start:end])
    fields["server_url"] = "https://evil.example.net"
    raw = json.dumps(fields).encode()
    forged = data[:start] + raw + len(raw).to_bytes(LENGTH_BYTES, "big") + MAGIC
    assert refused(tmp_path, forged) == "agent.trailer_tampered"


def test_a_changed_byte_in_the_signature_is_tampering(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    data = served(key)
    start, end = json_span(data)
    fields = json.loads(data[start:end])
    signature = bytearray(fields["signature"].encode())
    signature[10] = ord("A") if signature[10] != ord("A") else ord("B")
    fields["signature"] = signature.decode()
    raw = json.dumps(fields).encode()
    forged = data[:start] + raw + len(raw).to_bytes(LENGTH_BYTES, "big") + MAGIC
    assert refused(tmp_path, forged) == "agent.trailer_tampered"


def test_a_changed_byte_in_the_program_is_refused(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    data = bytearray(served(key))
    data[100] ^= 0x01
    assert refused(tmp_path, bytes(data)) == "agent.binary_tampered"


def test_a_trailer_for_another_program_is_refused(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    trailer = served(key)[len(BODY):]
    assert refused(tmp_path, b"#!/bin/sh\necho hello\n" + trailer) == "agent.binary_tampered"


def test_a_key_that_is_not_the_fingerprints_is_tampering(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    other = Ed25519PrivateKey.generate()
    data = served(key)
    start, end = json_span(data)
    fields = json.loads(data[start:end])
    fields["server_fingerprint"] = fingerprint(other.public_key())
    raw = json.dumps(fields).encode()
    forged = data[:start] + raw + len(raw).to_bytes(LENGTH_BYTES, "big") + MAGIC
    assert refused(tmp_path, forged) == "agent.trailer_tampered"


def test_an_expired_download_is_refused(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    data = served(key, expires_at=NOW - timedelta(seconds=1))
    assert refused(tmp_path, data) == "agent.trailer_expired"
    with pytest.raises(TrailerError, match="ask the technician for a new code"):
        read_trailer(write(tmp_path, data), now=NOW)


def test_a_truncated_download_is_refused(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    data = served(key)
    # Cut in the middle: the end of the file is then inside the binary (no magic): no trailer
    # to trust, nothing to join.
    assert read_trailer(write(tmp_path, data[: len(data) // 2]), now=NOW) is None
    # Footer intact, the JSON shortened: the length no longer fits.
    _, end = json_span(data)
    short = data[end - 40 : end] + data[end:]
    assert refused(tmp_path, short) == "agent.trailer_truncated"
    # A length bigger than any trailer.
    huge = BODY + (MAX_TRAILER_BYTES + 1).to_bytes(LENGTH_BYTES, "big") + MAGIC
    assert refused(tmp_path, huge) == "agent.trailer_truncated"
    zero = BODY + (0).to_bytes(LENGTH_BYTES, "big") + MAGIC
    assert refused(tmp_path, zero) == "agent.trailer_truncated"


def test_a_wrong_magic_is_no_trailer_and_another_version_is_unsupported(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    data = bytearray(served(key))
    data[-10] ^= 0x20  # "AUXILIO-trAILER1": not ours, so the file is as if plain
    assert read_trailer(write(tmp_path, bytes(data)), now=NOW) is None
    data = served(key)
    other_version = data[: -len(MAGIC)] + b"AUXILIO-TRAILER2"
    assert refused(tmp_path, other_version) == "agent.trailer_unsupported"


def test_malformed_json_is_refused(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    def framed(raw: bytes) -> bytes:
        return BODY + raw + len(raw).to_bytes(LENGTH_BYTES, "big") + MAGIC

    assert refused(tmp_path, framed(b"{not json")) == "agent.trailer_malformed"
    assert refused(tmp_path, framed(b"[1, 2]")) == "agent.trailer_malformed"
    data = served(key)
    start, end = json_span(data)
    fields = json.loads(data[start:end])
    assert refused(tmp_path, framed(json.dumps({**fields, "extra": "x"}).encode())) == (
        "agent.trailer_malformed"
    )
    missing = {k: v for k, v in fields.items() if k != "join_code"}
    assert refused(tmp_path, framed(json.dumps(missing).encode())) == "agent.trailer_malformed"
    assert refused(tmp_path, framed(json.dumps({**fields, "join_code": 7}).encode())) == (
        "agent.trailer_malformed"
    )


def test_a_signed_trailer_with_a_bad_url_or_time_is_malformed(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    # Signed by the right key, so only the field checks can refuse them.
    def signed(**changes: str) -> bytes:
        payload = {
            "server_url": "https://help.example.org",
            "server_key": b64url_encode(key.public_key().public_bytes_raw()),
            "server_fingerprint": fingerprint(key.public_key()),
            "join_code": "ACD-EFH-JKM",
            "issued_at": "2026-12-01T11:59:00Z",
            "expires_at": "2026-12-01T12:09:00Z",
            "binary_sha256": hashlib.sha256(BODY).hexdigest(),
            **changes,
        }
        signature = b64url_encode(sign_bytes_for(key, kind=TRAILER_KIND, payload=payload))
        raw = json.dumps({**payload, "signature": signature}).encode()
        return BODY + raw + len(raw).to_bytes(LENGTH_BYTES, "big") + MAGIC

    # The raw base64url key (not PEM) is accepted.
    assert read_trailer(write(tmp_path, signed()), now=NOW) is not None
    assert refused(tmp_path, signed(server_url="file:///etc/passwd")) == "agent.trailer_malformed"
    assert refused(tmp_path, signed(expires_at="tomorrow")) == "agent.trailer_malformed"
    assert refused(tmp_path, signed(expires_at="2026-12-01T12:09:00")) == (
        "agent.trailer_malformed"
    )
    assert refused(tmp_path, signed(server_key="not a key")) == "agent.trailer_malformed"


def test_an_unreadable_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TrailerError) as caught:
        read_trailer(tmp_path / "missing", now=NOW)
    assert caught.value.code == "agent.trailer_unreadable"


def test_an_oversized_trailer_is_not_written(key: Ed25519PrivateKey) -> None:
    with pytest.raises(ValueError, match="over"):
        encode_trailer(signing_key=key, server_url="https://x.example/" + "a" * MAX_TRAILER_BYTES,
                       join_code="ACD-EFH-JKM", issued_at=NOW, expires_at=NOW,
                       binary_sha256="0" * 64)  # fmt: skip


def test_the_large_program_is_hashed_in_chunks(
    tmp_path: Path, key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trailer_module, "_HASH_CHUNK", 1000)
    body = bytes(range(256)) * 100  # 25,600 bytes: 26 chunks
    assert read_trailer(write(tmp_path, served(key, body=body)), now=NOW) is not None
    tampered = bytearray(served(key, body=body))
    tampered[24_999] ^= 0xFF
    assert refused(tmp_path, bytes(tampered)) == "agent.binary_tampered"


# -- the entry point, run as a program ---------------------------------------------------------


def run_entry(path: Path, state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    script = (
        "import sys\nfrom auxilio.agent.onefile import main\n"
        f"main(sys.argv[1:], executable={str(path)!r})\n"
    )
    return subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=120,
        env={"PATH": "/usr/bin:/bin", "HOME": str(state_dir.parent),
             "AUXILIO_AGENT_STATE_DIR": str(state_dir)},
        check=False,
    )  # fmt: skip


def test_the_entry_refuses_a_tampered_file_before_connecting(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    data = bytearray(served(key, server_url="http://127.0.0.1:9"))
    data[5] ^= 0x01
    path = write(tmp_path, bytes(data))
    state_dir = tmp_path / "state"
    done = run_entry(path, state_dir)
    assert done.returncode == 4
    assert "Error agent.binary_tampered:" in done.stderr
    assert "Connecting" not in done.stdout + done.stderr
    # Nothing pinned: the key of a file that does not verify is never trusted.
    assert not (state_dir / "known_servers.json").exists()


def test_the_entry_refuses_an_expired_file(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    now = datetime.now(UTC)
    data = served(
        key, issued_at=now - timedelta(minutes=20), expires_at=now - timedelta(minutes=10)
    )
    done = run_entry(write(tmp_path, data), tmp_path / "state")
    assert done.returncode == 4
    assert "Error agent.trailer_expired:" in done.stderr


def test_the_entry_without_a_trailer_says_where_to_get_one(tmp_path: Path) -> None:
    done = run_entry(write(tmp_path, BODY), tmp_path / "state")
    assert done.returncode == 2
    assert "Error agent.no_trailer:" in done.stderr
    assert "auxilio-agent join CODE --server URL" in done.stderr


def test_with_arguments_the_entry_is_the_ordinary_command_line(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    path = write(tmp_path, served(key))
    done = run_entry(path, tmp_path / "state", "--help")
    assert done.returncode == 0, done.stderr
    assert "join" in done.stdout and "receipts" in done.stdout
    version = run_entry(path, tmp_path / "state", "--version")
    assert version.stdout.strip() == "auxilio-agent 0.1.0"


def test_the_entry_pins_the_trailers_key_before_the_first_connection(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    # Nothing listens on port 9: the join fails to connect, but the pin is already made from
    # the trailer, not from whatever would have answered.
    path = write(tmp_path, served(key, server_url="http://127.0.0.1:9",
                                  expires_at=datetime.now(UTC) + timedelta(minutes=5)))  # fmt: skip
    state_dir = tmp_path / "state"
    done = run_entry(path, state_dir)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "server.unreachable" in done.stdout + done.stderr
    pinned = AgentState(state_dir).pinned("http://127.0.0.1:9")
    assert pinned is not None
    assert pinned.fingerprint == fingerprint(key.public_key())


def test_a_pin_of_another_key_for_that_server_is_kept(
    tmp_path: Path, key: Ed25519PrivateKey
) -> None:
    state_dir = tmp_path / "state"
    earlier = Ed25519PrivateKey.generate()
    AgentState(state_dir).pin("http://127.0.0.1:9", earlier.public_key())
    path = write(tmp_path, served(key, server_url="http://127.0.0.1:9",
                                  expires_at=datetime.now(UTC) + timedelta(minutes=5)))  # fmt: skip
    done = run_entry(path, state_dir)
    assert done.returncode == 3
    assert "Error server.key_changed:" in done.stderr
    pinned = AgentState(state_dir).pinned("http://127.0.0.1:9")
    assert pinned is not None and pinned.fingerprint == fingerprint(earlier.public_key())
