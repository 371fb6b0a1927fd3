"""Sealed boxes to the auditor key: only the right key, label and context open them."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from auxilio.crypto.errors import SealedDataInvalid
from auxilio.crypto.sealed import OVERHEAD, seal, unseal


def test_a_box_opens_with_the_auditor_key_label_and_context() -> None:
    auditor = X25519PrivateKey.generate()
    box = seal(auditor.public_key(), b"rm -rf /tmp/x", label="activity", context=b"ss-1")
    assert unseal(auditor, box, label="activity", context=b"ss-1") == b"rm -rf /tmp/x"
    assert len(box) == OVERHEAD + len(b"rm -rf /tmp/x")


def test_the_same_plaintext_seals_differently_each_time() -> None:
    public = X25519PrivateKey.generate().public_key()
    first = seal(public, b"same", label="activity", context=b"ss-1")
    assert first != seal(public, b"same", label="activity", context=b"ss-1")
    assert b"same" not in first


def test_it_refuses_another_key() -> None:
    box = seal(X25519PrivateKey.generate().public_key(), b"x", label="activity", context=b"c")
    with pytest.raises(SealedDataInvalid) as caught:
        unseal(X25519PrivateKey.generate(), box, label="activity", context=b"c")
    assert caught.value.code == "seal.invalid"


@pytest.mark.parametrize(("label", "context"), [("recording-key", b"c"), ("activity", b"d")])
def test_it_refuses_another_label_or_context(label: str, context: bytes) -> None:
    auditor = X25519PrivateKey.generate()
    box = seal(auditor.public_key(), b"x", label="activity", context=b"c")
    with pytest.raises(SealedDataInvalid):
        unseal(auditor, box, label=label, context=context)


def test_it_refuses_any_altered_byte() -> None:
    auditor = X25519PrivateKey.generate()
    box = seal(auditor.public_key(), b"secret details", label="activity", context=b"c")
    for index in range(len(box)):
        tampered = bytearray(box)
        tampered[index] ^= 0x01
        with pytest.raises(SealedDataInvalid):
            unseal(auditor, bytes(tampered), label="activity", context=b"c")


def test_it_refuses_a_short_box_or_an_unknown_version() -> None:
    auditor = X25519PrivateKey.generate()
    box = seal(auditor.public_key(), b"x", label="activity", context=b"c")
    for bad, words in ((box[: OVERHEAD - 1], "at least"), (b"\x02" + box[1:], "version 2")):
        with pytest.raises(SealedDataInvalid, match=words):
            unseal(auditor, bad, label="activity", context=b"c")


def test_it_refuses_a_low_order_ephemeral_key() -> None:
    auditor = X25519PrivateKey.generate()
    with pytest.raises(SealedDataInvalid, match="ephemeral"):
        unseal(auditor, b"\x01" + bytes(32) + bytes(20), label="activity", context=b"c")


def test_a_label_must_be_short_ascii() -> None:
    public = X25519PrivateKey.generate().public_key()
    for label in ("", "x" * 65):
        with pytest.raises(ValueError, match="label"):
            seal(public, b"x", label=label, context=b"")
