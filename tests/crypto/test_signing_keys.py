from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from auxilio.crypto.errors import (
    KeyEncodingInvalid,
    KeyFileInsecure,
    KeyFileInvalid,
    SealedDataInvalid,
)
from auxilio.crypto.keys import (
    b64url_decode,
    decode_ed25519_public_key,
    decode_x25519_public_key,
    encode_public_key,
    fingerprint,
    generate_auditor_key,
    load_auditor_key,
    load_or_create_signing_key,
    load_signing_key,
    public_key_bytes,
    save_private_key,
    seal,
    unseal,
)

posix_only = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


@posix_only
def test_it_saves_a_key_readable_only_by_its_owner(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "device.pem"
    save_private_key(Ed25519PrivateKey.generate(), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")


def test_a_saved_key_loads_back_as_the_same_key(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    save_private_key(key, tmp_path / "k.pem")
    loaded = load_signing_key(tmp_path / "k.pem")
    assert public_key_bytes(loaded.public_key()) == public_key_bytes(key.public_key())


def test_load_or_create_creates_once_then_returns_the_same_key(tmp_path: Path) -> None:
    path = tmp_path / "server.pem"
    first = load_or_create_signing_key(path)
    second = load_or_create_signing_key(path)
    assert public_key_bytes(first.public_key()) == public_key_bytes(second.public_key())
    assert [p.name for p in tmp_path.iterdir()] == ["server.pem"]


@posix_only
def test_it_refuses_a_key_file_other_users_can_read(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    save_private_key(Ed25519PrivateKey.generate(), path)
    path.chmod(0o644)
    with pytest.raises(KeyFileInsecure) as caught:
        load_signing_key(path)
    assert caught.value.code == "key.insecure_permissions"


def test_it_refuses_a_file_that_is_not_a_pem_key_and_keeps_it(tmp_path: Path) -> None:
    path = tmp_path / "k.pem"
    path.write_bytes(b"not a key")
    path.chmod(0o600)
    with pytest.raises(KeyFileInvalid) as caught:
        load_or_create_signing_key(path)
    assert caught.value.code == "key.invalid_file"
    assert path.read_bytes() == b"not a key"


def test_it_refuses_an_x25519_key_where_a_signing_key_is_expected(tmp_path: Path) -> None:
    save_private_key(X25519PrivateKey.generate(), tmp_path / "k.pem")
    with pytest.raises(KeyFileInvalid):
        load_signing_key(tmp_path / "k.pem")
    assert isinstance(load_auditor_key(tmp_path / "k.pem"), X25519PrivateKey)


def test_public_keys_round_trip_through_base64url() -> None:
    ed = Ed25519PrivateKey.generate().public_key()
    x = X25519PrivateKey.generate().public_key()
    assert len(encode_public_key(ed)) == 43
    assert public_key_bytes(decode_ed25519_public_key(encode_public_key(ed))) == (
        public_key_bytes(ed)
    )
    assert public_key_bytes(decode_x25519_public_key(encode_public_key(x))) == public_key_bytes(x)


@pytest.mark.parametrize("text", ["abc", "A" * 44, "!" * 43, "AAAA====", "A" * 42 + "B"])
def test_it_rejects_bad_or_non_canonical_base64url(text: str) -> None:
    with pytest.raises(KeyEncodingInvalid) as caught:
        decode_ed25519_public_key(text)
    assert caught.value.code == "key.bad_encoding"


def test_non_canonical_padding_bits_are_refused() -> None:
    # 43 characters whose last one carries non-zero unused bits decode to the same 32 bytes
    # as the canonical text; accepting both would give one key two spellings.
    with pytest.raises(KeyEncodingInvalid):
        b64url_decode("A" * 42 + "B")


def test_fingerprint_is_sha256_in_sixteen_groups_of_four_hex_digits() -> None:
    key = Ed25519PrivateKey.from_private_bytes(bytes(32)).public_key()
    text = fingerprint(key)
    assert re.fullmatch(r"SHA256:[0-9a-f]{4}( [0-9a-f]{4}){15}", text)
    assert text == fingerprint(key)
    assert text != fingerprint(Ed25519PrivateKey.generate().public_key())


def test_sealed_data_opens_with_the_auditor_key() -> None:
    auditor = generate_auditor_key()
    sealed = seal(auditor.public_key(), b"recording key", context=b"ss-1")
    assert unseal(auditor, sealed, context=b"ss-1") == b"recording key"
    assert seal(auditor.public_key(), b"recording key") != seal(
        auditor.public_key(), b"recording key"
    )


def test_sealed_data_does_not_open_with_another_key_or_context() -> None:
    auditor = generate_auditor_key()
    sealed = seal(auditor.public_key(), b"secret", context=b"ss-1")
    for private, context in ((generate_auditor_key(), b"ss-1"), (auditor, b"ss-2")):
        with pytest.raises(SealedDataInvalid) as caught:
            unseal(private, sealed, context=context)
        assert caught.value.code == "seal.invalid"


def test_altered_or_short_sealed_data_is_refused() -> None:
    auditor = generate_auditor_key()
    sealed = bytearray(seal(auditor.public_key(), b"secret"))
    sealed[-1] ^= 1
    for bad in (bytes(sealed), sealed[:40], b"\x02" + bytes(sealed[1:]), b"\x01" + bytes(64)):
        with pytest.raises(SealedDataInvalid):
            unseal(auditor, bytes(bad))
