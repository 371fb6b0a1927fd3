"""The browser's session: which cookie carries the login token, and the CSRF token bound to it.

The cookie holds nothing but a login token issued by ``identity.auth.login`` (the same kind,
scope and expiry as the API's), so revoking the token ends the browser session too. A cookie
is sent by the browser on any request to us, including ones another site provokes; a CSRF token
is not: it is an HMAC, with a key derived from the server's signing key, over the token's id, so
it is the same on every node, cannot be computed without the key, and changes with each login.
Before a login the subject is a random "pre-session" cookie (double submit), so the login and
language forms are protected too.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from auxilio.server.errors import Forbidden

SESSION_COOKIE = "auxilio_session"
PRE_SESSION_COOKIE = "auxilio_pre"
LANG_COOKIE = "auxilio_lang"
TZ_COOKIE = "auxilio_tz"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
_KEY_ATTR = "web_csrf_key"


def csrf_key(state: Any) -> bytes:
    """The HMAC key of this server (app.state), derived once from its signing key."""
    key: bytes | None = getattr(state, _KEY_ATTR, None)
    if key is None:
        signing: Ed25519PrivateKey = state.signing_key
        raw = signing.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"auxilio web csrf v1"
        ).derive(raw)
        setattr(state, _KEY_ATTR, key)
    return key


def _mac(key: bytes, subject: str) -> str:
    return hmac.new(key, subject.encode(), hashlib.sha256).hexdigest()


def csrf_for_token(key: bytes, token_id: uuid.UUID) -> str:
    """The CSRF token of a logged-in browser session (its login token's id)."""
    return _mac(key, f"session:{token_id}")


def csrf_for_pre_session(key: bytes, pre: str) -> str:
    """The CSRF token before a login, bound to the random pre-session cookie."""
    return _mac(key, f"pre:{pre}")


def new_pre_session() -> str:
    return secrets.token_urlsafe(24)


def same(given: str | None, expected: str) -> bool:
    return bool(given) and hmac.compare_digest(str(given), expected)


class CsrfFailed(Forbidden):
    code = "csrf_failed"
    default_message = (
        "The request did not carry this session's CSRF token; reload the page and try again."
    )
