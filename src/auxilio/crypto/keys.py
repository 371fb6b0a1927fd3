"""Key files, public key encodings, fingerprints, and sealing to an X25519 public key.

Private keys are stored as unencrypted PKCS8 PEM with mode 0600: the device and server keys must be
usable by an unattended service, so protection comes from file permissions (and the OS keystore
where the deployment adds one), not from a passphrase.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from auxilio.crypto.errors import (
    KeyEncodingInvalid,
    KeyFileInsecure,
    KeyFileInvalid,
    SealedDataInvalid,
)

PrivateKey = Ed25519PrivateKey | X25519PrivateKey
PublicKey = Ed25519PublicKey | X25519PublicKey

# -- base64url ---------------------------------------------------------------------------------


def b64url_encode(data: bytes) -> str:
    """Unpadded base64url (RFC 4648 §5), the encoding of JWK and WebCrypto exports."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url, rejecting non-canonical spellings so one value has one text."""
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise KeyEncodingInvalid("not base64url") from exc
    if b64url_encode(data) != text:
        raise KeyEncodingInvalid("not canonical unpadded base64url")
    return data


# -- public keys ------------------------------------------------------------------------------


def public_key_bytes(key: PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def encode_public_key(key: PublicKey) -> str:
    return b64url_encode(public_key_bytes(key))


def decode_ed25519_public_key(text: str) -> Ed25519PublicKey:
    raw = b64url_decode(text)
    if len(raw) != 32:
        raise KeyEncodingInvalid(f"an Ed25519 public key is 32 bytes, got {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def decode_x25519_public_key(text: str) -> X25519PublicKey:
    raw = b64url_decode(text)
    if len(raw) != 32:
        raise KeyEncodingInvalid(f"an X25519 public key is 32 bytes, got {len(raw)}")
    return X25519PublicKey.from_public_bytes(raw)


def fingerprint(public_key: PublicKey) -> str:
    """``SHA256:`` then the SHA-256 of the raw 32-byte public key as 16 groups of 4 lowercase hex
    digits (``SHA256:3f2a 9c01 ...``). All 256 bits are shown: people compare the first and last
    groups, and a shortened fingerprint would invite grinding a look-alike key."""
    digest = hashlib.sha256(public_key_bytes(public_key)).hexdigest()
    return "SHA256:" + " ".join(digest[i : i + 4] for i in range(0, 64, 4))


# -- private key files ------------------------------------------------------------------------


def generate_signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def generate_auditor_key() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


def save_private_key(key: PrivateKey, path: Path) -> None:
    """Write ``key`` as PKCS8 PEM, mode 0600, atomically (a crash never leaves half a key)."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_private_file(path, pem)


def write_private_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, mode 0600 from creation (keys, tokens, receipts):
    chmod after writing would leave a window where it is readable, and a crash never leaves
    half a file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _load_private_key(path: Path) -> object:
    if os.name == "posix" and path.stat().st_mode & 0o077:
        raise KeyFileInsecure(f"{path} is readable by other users; run: chmod 600 {path}")
    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyFileInvalid(f"{path} is not an unencrypted PKCS8 PEM private key") from exc


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    key = _load_private_key(path)
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileInvalid(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def load_auditor_key(path: Path) -> X25519PrivateKey:
    key = _load_private_key(path)
    if not isinstance(key, X25519PrivateKey):
        raise KeyFileInvalid(f"{path} holds a {type(key).__name__}, not an X25519 key")
    return key


def load_or_create_signing_key(path: Path) -> Ed25519PrivateKey:
    """Load the Ed25519 key at ``path``, creating it on first use (device enrolment, server
    start). An unreadable or wrong key file is an error, never silently replaced: replacing it
    would change the identity that peers have pinned."""
    if path.exists():
        return load_signing_key(path)
    key = generate_signing_key()
    save_private_key(key, path)
    return key


# -- sealing to the auditor key ---------------------------------------------------------------

_SEAL_VERSION = 1
_SEAL_INFO = b"auxilio seal v1"
# The key is fresh for every message (new ephemeral key pair), so a fixed nonce is safe.
_SEAL_NONCE = bytes(12)


def _seal_key(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=ephemeral + recipient, info=_SEAL_INFO
    ).derive(shared)


def seal(recipient: X25519PublicKey, plaintext: bytes, *, context: bytes = b"") -> bytes:
    """Encrypt ``plaintext`` so that only the holder of ``recipient``'s private key can read it.

    ``version(1) | ephemeral X25519 public key(32) | AES-256-GCM ciphertext + tag``, with the key
    ``HKDF-SHA256(ikm=X25519(ephemeral, recipient), salt=ephemeral_pub || recipient_pub,
    info="auxilio seal v1")`` and associated data ``version || ephemeral_pub || recipient_pub ||
    context``. ``context`` (e.g. the support session id of a recording key) must be given again
    to ``unseal``, so a sealed value cannot be moved to another record.
    """
    ephemeral = X25519PrivateKey.generate()
    ephemeral_pub = public_key_bytes(ephemeral.public_key())
    recipient_pub = public_key_bytes(recipient)
    key = _seal_key(ephemeral.exchange(recipient), ephemeral_pub, recipient_pub)
    header = bytes((_SEAL_VERSION,)) + ephemeral_pub
    ciphertext = AESGCM(key).encrypt(_SEAL_NONCE, plaintext, header + recipient_pub + context)
    return header + ciphertext


def unseal(private: X25519PrivateKey, sealed: bytes, *, context: bytes = b"") -> bytes:
    if len(sealed) < 1 + 32 + 16 or sealed[0] != _SEAL_VERSION:
        raise SealedDataInvalid("not a sealed value of version 1")
    header, ciphertext = sealed[:33], sealed[33:]
    ephemeral_pub = header[1:]
    recipient_pub = public_key_bytes(private.public_key())
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(ephemeral_pub))
    except ValueError as exc:  # a low-order point gives an all-zero secret, which is refused
        raise SealedDataInvalid("invalid ephemeral key") from exc
    key = _seal_key(shared, ephemeral_pub, recipient_pub)
    try:
        return AESGCM(key).decrypt(_SEAL_NONCE, ciphertext, header + recipient_pub + context)
    except InvalidTag as exc:
        raise SealedDataInvalid("wrong key, wrong context, or altered data") from exc
