"""Sealed boxes to an X25519 public key: what only the organisation's auditor can open.

Used for activity details (a command line, a path) and for the E2E keys of a recorded session.
The sender needs only the recipient's public key; nobody on the way (the server included) can
open the box, and the box is bound to what it is about::

    ephemeral  = a fresh X25519 key pair for every box
    shared     = X25519(ephemeral, recipient)
    key        = HKDF-SHA256(ikm=shared, salt=ephemeral_pub || recipient_pub,
                             info="auxilio sealed v1 " || label)
    aad        = "auxilio-sealed-v1" || label_len(1) || label || ephemeral_pub || recipient_pub
                 || context
    box        = version(1) = 0x01 || ephemeral_pub(32) || AES-256-GCM(key, nonce=0^12, aad)

The key is new for every box, so the fixed nonce is never reused with a key. ``label`` says what
the box is for (``activity``, ``recording-key``) and ``context`` which record it belongs to (the
support session id, an epoch): a box taken from one record and put in another, or opened for
another purpose, fails like a wrong key. A wrong key, a wrong label or context and an altered box
are deliberately one error: telling them apart would only help an attacker probe.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from auxilio.crypto.errors import SealedDataInvalid
from auxilio.crypto.keys import public_key_bytes

VERSION = 1
_AAD_PREFIX = b"auxilio-sealed-v1"
_INFO_PREFIX = b"auxilio sealed v1 "
_NONCE = bytes(12)
KEY_SIZE = 32
TAG_SIZE = 16
OVERHEAD = 1 + KEY_SIZE + TAG_SIZE
MAX_LABEL = 64

# Labels in use, so that two purposes never share one by accident.
ACTIVITY = "activity"
RECORDING_KEY = "recording-key"


def _label_bytes(label: str) -> bytes:
    raw = label.encode("ascii")
    if not 0 < len(raw) <= MAX_LABEL:
        raise ValueError(f"a seal label is 1 to {MAX_LABEL} ASCII characters")
    return raw


def _key(shared: bytes, ephemeral_pub: bytes, recipient_pub: bytes, label: bytes) -> AESGCM:
    hkdf = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=ephemeral_pub + recipient_pub,
        info=_INFO_PREFIX + label,
    )
    return AESGCM(hkdf.derive(shared))


def _aad(label: bytes, ephemeral_pub: bytes, recipient_pub: bytes, context: bytes) -> bytes:
    return _AAD_PREFIX + bytes((len(label),)) + label + ephemeral_pub + recipient_pub + context


def seal(recipient: X25519PublicKey, plaintext: bytes, *, label: str, context: bytes) -> bytes:
    """A box that only ``recipient``'s private key opens, for ``label`` and ``context``."""
    label_raw = _label_bytes(label)
    ephemeral = X25519PrivateKey.generate()
    ephemeral_pub = public_key_bytes(ephemeral.public_key())
    recipient_pub = public_key_bytes(recipient)
    aead = _key(ephemeral.exchange(recipient), ephemeral_pub, recipient_pub, label_raw)
    aad = _aad(label_raw, ephemeral_pub, recipient_pub, context)
    return bytes((VERSION,)) + ephemeral_pub + aead.encrypt(_NONCE, plaintext, aad)


def unseal(private: X25519PrivateKey, box: bytes, *, label: str, context: bytes) -> bytes:
    """Open a box made by ``seal``; ``SealedDataInvalid`` for anything but the right key,
    label, context and an unaltered box."""
    label_raw = _label_bytes(label)
    if len(box) < OVERHEAD:
        raise SealedDataInvalid(f"a sealed box is at least {OVERHEAD} bytes, got {len(box)}")
    if box[0] != VERSION:
        raise SealedDataInvalid(f"sealed box version {box[0]}; only {VERSION} is known")
    ephemeral_pub = box[1 : 1 + KEY_SIZE]
    recipient_pub = public_key_bytes(private.public_key())
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(ephemeral_pub))
    except ValueError as exc:  # a low-order point gives an all-zero secret, which is refused
        raise SealedDataInvalid("the box carries an unusable ephemeral key") from exc
    aead = _key(shared, ephemeral_pub, recipient_pub, label_raw)
    try:
        return aead.decrypt(
            _NONCE, box[1 + KEY_SIZE :], _aad(label_raw, ephemeral_pub, recipient_pub, context)
        )
    except InvalidTag:
        raise SealedDataInvalid(
            "the box does not open: wrong key, wrong label or context, or altered"
        ) from None


# -- what is sealed, shared by the agent (seal) and the auditor's export (unseal) -------------

MAX_DETAILS_BYTES = 8192


def activity_context(support_session_id: str) -> bytes:
    return b"activity|" + support_session_id.encode("utf-8")


def recording_key_context(support_session_id: str, epoch: bytes) -> bytes:
    return b"recording-key|" + support_session_id.encode("utf-8") + b"|" + epoch


def seal_activity_details(
    recipient: X25519PublicKey, support_session_id: str, details: str
) -> bytes:
    """The details of one activity (a command line, a path) as UTF-8, cut at
    ``MAX_DETAILS_BYTES`` on a character boundary."""
    raw = details.encode("utf-8")[:MAX_DETAILS_BYTES].decode("utf-8", "ignore").encode("utf-8")
    return seal(recipient, raw, label=ACTIVITY, context=activity_context(support_session_id))


def open_activity_details(private: X25519PrivateKey, support_session_id: str, box: bytes) -> str:
    raw = unseal(private, box, label=ACTIVITY, context=activity_context(support_session_id))
    return raw.decode("utf-8")


def seal_recording_keys(
    recipient: X25519PublicKey,
    support_session_id: str,
    *,
    epoch: bytes,
    agent_to_technician: bytes,
    technician_to_agent: bytes,
) -> bytes:
    """One epoch's two 32-byte E2E keys, agent->technician first."""
    return seal(
        recipient,
        agent_to_technician + technician_to_agent,
        label=RECORDING_KEY,
        context=recording_key_context(support_session_id, epoch),
    )


def open_recording_keys(
    private: X25519PrivateKey, support_session_id: str, *, epoch: bytes, box: bytes
) -> tuple[bytes, bytes]:
    """(agent->technician, technician->agent) keys of one epoch."""
    raw = unseal(
        private, box, label=RECORDING_KEY, context=recording_key_context(support_session_id, epoch)
    )
    if len(raw) != 2 * KEY_SIZE:
        raise SealedDataInvalid(f"sealed recording keys are {len(raw)} bytes, not {2 * KEY_SIZE}")
    return raw[:KEY_SIZE], raw[KEY_SIZE:]
