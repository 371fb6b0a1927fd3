"""Password hashing (argon2id), TOTP (RFC 6238) with replay protection, token secrets."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

TOTP_PERIOD = 30
TOTP_DIGITS = 6
# One step either side tolerates clock drift of up to 30 s between phone and server.
TOTP_WINDOW = 1
RECOVERY_CODE_COUNT = 10

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


# A fixed hash to verify against when the email is unknown, so that timing does not reveal
# which emails exist.
_DUMMY_HASH: str | None = None


def burn_password_check(password: str) -> None:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))
    verify_password(_DUMMY_HASH, password)


def new_totp_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, *, account: str, issuer: str) -> str:
    return pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_PERIOD).provisioning_uri(
        name=account, issuer_name=issuer
    )


def totp_code_at(secret: str, step: int, *, digits: int = TOTP_DIGITS, digest: str = "sha1") -> str:
    """The code of one time step (RFC 6238: HOTP of the step counter, RFC 4226 truncation)."""
    return str(
        pyotp.TOTP(secret, digits=digits, interval=TOTP_PERIOD, digest=digest).generate_otp(step)
    )


def match_totp(secret: str, code: str, *, now: datetime, last_step: int | None) -> int | None:
    """The time step the code belongs to, or None. Steps at or before ``last_step`` never match,
    so each code (and any older one) is accepted once only."""
    code = code.strip().replace(" ", "")
    # isascii(): str.isdigit() also accepts superscript and non-Latin digits, which
    # hmac.compare_digest refuses with a TypeError (a 500 instead of a wrong code).
    if len(code) != TOTP_DIGITS or not (code.isascii() and code.isdigit()):
        return None
    current = int(now.timestamp()) // TOTP_PERIOD
    for step in range(current - TOTP_WINDOW, current + TOTP_WINDOW + 1):
        if last_step is not None and step <= last_step:
            continue
        if hmac.compare_digest(totp_code_at(secret, step), code):
            return step
    return None


def new_recovery_codes() -> list[str]:
    # 10 groups of base32: ~50 bits each, typed by hand, spent once.
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return [
        "-".join("".join(secrets.choice(alphabet) for _ in range(5)) for _ in range(2))
        for _ in range(RECOVERY_CODE_COUNT)
    ]


def normalise_recovery_code(code: str) -> str:
    return code.strip().lower().replace(" ", "")


# Recovery codes are random (about 50 bits each, ten per person), not chosen by people, so a
# dictionary does not help; whoever reads the table also reads the TOTP secret beside it, which is
# the second factor itself. A keyed SHA-256 (the person's id) is therefore enough, and spending a
# code costs microseconds instead of ten argon2 checks (1.7 s of CPU per attempt, which anyone
# with a password could ask for again and again). Codes stored by earlier versions as argon2
# hashes still verify. docs/adr/0016-recovery-code-digest.md.
_RECOVERY_PREFIX = "sha256$"


def recovery_code_digest(user_id: str, code: str) -> str:
    digest = hashlib.sha256(f"auxilio.recovery.v1\n{user_id}\n{code}".encode()).hexdigest()
    return _RECOVERY_PREFIX + digest


def recovery_code_matches(stored: str, *, user_id: str, code: str) -> bool:
    if stored.startswith(_RECOVERY_PREFIX):
        return hmac.compare_digest(stored, recovery_code_digest(user_id, code))
    return verify_password(stored, code)  # an argon2 hash from before


def new_token_secret() -> str:
    return "aux_" + secrets.token_urlsafe(32)


def token_digest(secret: str) -> str:
    # Tokens carry 256 random bits, so a fast hash is enough: no dictionary to attack.
    return hashlib.sha256(secret.encode()).hexdigest()
