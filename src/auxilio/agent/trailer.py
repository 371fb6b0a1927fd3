"""The trailer the server appends to the single-file agent it serves: its address, its key and
the join code, so that the person runs the file and has nothing to type.

Layout of the file the person downloads (docs/agent-builds.md, docs/adr/0011-one-file-agent.md)::

    <the binary as built> <JSON trailer> <8-byte big-endian length of the JSON> b"AUXILIO-TRAILER1"

The JSON holds ``server_url``, ``server_key`` (the server's Ed25519 public key, PEM or raw
base64url), ``server_fingerprint``, ``join_code``, ``issued_at``, ``expires_at`` (ISO 8601
UTC; the join code's own expiry), ``binary_sha256`` (of the bytes before the trailer) and
``signature``: the server's Ed25519 signature over the canonical JSON of ``{"kind":
"auxilio.agent_trailer.v1", "payload": <every other field>}``, the same domain-separated
signing as grants (``auxilio.crypto.signing``).

An agent for enrolment (docs/unattended.md) carries ``enrolment_token`` as well, signed with the
rest (the field is in the signed payload only when present, so a join trailer is unchanged); its
``join_code`` may then be empty, and ``expires_at`` is the token's expiry. Run with no
arguments, such a file enrols the device and installs the service (``agent.onefile``).

What the checks give (THREAT_MODEL.md): the key the agent pins comes with the file, not from
whoever answers first on the network (no trust on first use); a changed byte in the trailer or
in the program is refused before anything connects. They cannot tell a genuine server from a
malicious one that serves its own file with its own key: the file is as trustworthy as the
page it was downloaded from.

This module is also the format's one definition: the server's writer
(``auxilio.server.web.agent_download``) builds its trailers with ``encode_trailer``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from auxilio.agent.errors import AgentError
from auxilio.crypto.errors import CryptoError
from auxilio.crypto.keys import b64url_encode, decode_ed25519_public_key, fingerprint
from auxilio.crypto.signing import check_signature_for, sign_bytes_for

MAGIC = b"AUXILIO-TRAILER1"
_MAGIC_FAMILY = b"AUXILIO-TRAILER"  # another version of the format: told apart from "none"
LENGTH_BYTES = 8
FOOTER_BYTES = LENGTH_BYTES + len(MAGIC)
MAX_TRAILER_BYTES = 16 * 1024  # a real one is under 1 KiB
TRAILER_KIND = "auxilio.agent_trailer.v1"
SIGNED_FIELDS = (
    "server_url",
    "server_key",
    "server_fingerprint",
    "join_code",
    "issued_at",
    "expires_at",
    "binary_sha256",
)
OPTIONAL_FIELDS = ("enrolment_token",)
_HASH_CHUNK = 1024 * 1024


class TrailerError(AgentError):
    """The file's trailer cannot be trusted; the agent stops before connecting anywhere.
    Codes: ``agent.trailer_unsupported``, ``agent.trailer_truncated``,
    ``agent.trailer_malformed``, ``agent.trailer_tampered``, ``agent.binary_tampered``,
    ``agent.trailer_expired``, ``agent.trailer_unreadable``."""

    exit_code = 4


@dataclass(frozen=True, slots=True)
class Trailer:
    server_url: str
    server_key: Ed25519PublicKey
    server_fingerprint: str
    join_code: str
    issued_at: datetime
    expires_at: datetime
    binary_sha256: str
    enrolment_token: str | None = None


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def encode_trailer(
    *,
    signing_key: Ed25519PrivateKey,
    server_url: str,
    join_code: str,
    issued_at: datetime,
    expires_at: datetime,
    binary_sha256: str,
    enrolment_token: str | None = None,
) -> bytes:
    """The bytes to append to the binary whose SHA-256 is ``binary_sha256`` (hex)."""
    public = signing_key.public_key()
    pem = public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")
    payload: dict[str, Any] = {
        "server_url": server_url,
        "server_key": pem,
        "server_fingerprint": fingerprint(public),
        "join_code": join_code,
        "issued_at": _timestamp(issued_at),
        "expires_at": _timestamp(expires_at),
        "binary_sha256": binary_sha256,
    }
    if enrolment_token is not None:
        payload["enrolment_token"] = enrolment_token
    signature = sign_bytes_for(signing_key, kind=TRAILER_KIND, payload=payload)
    body = json.dumps({**payload, "signature": b64url_encode(signature)},
                      separators=(",", ":"), sort_keys=True).encode()  # fmt: skip
    if len(body) > MAX_TRAILER_BYTES:
        raise ValueError(f"trailer of {len(body)} bytes is over {MAX_TRAILER_BYTES}")
    return body + len(body).to_bytes(LENGTH_BYTES, "big") + MAGIC


@dataclass(frozen=True, slots=True)
class _Located:
    body_length: int  # bytes of the binary before the trailer
    raw: bytes  # the JSON


def _locate(handle: BinaryIO, size: int) -> _Located | None:
    if size < FOOTER_BYTES:
        return None
    handle.seek(size - FOOTER_BYTES)
    footer = handle.read(FOOTER_BYTES)
    magic = footer[LENGTH_BYTES:]
    if magic != MAGIC:
        if magic.startswith(_MAGIC_FAMILY):
            raise TrailerError(
                "agent.trailer_unsupported",
                "this file carries a trailer of another version; download the agent again "
                "from the join page",
            )
        return None
    length = int.from_bytes(footer[:LENGTH_BYTES], "big")
    if length == 0 or length > MAX_TRAILER_BYTES or length > size - FOOTER_BYTES:
        raise TrailerError(
            "agent.trailer_truncated",
            f"the trailer claims {length} bytes, which this file of {size} bytes cannot hold; "
            "the download is incomplete or was changed: download it again",
        )
    handle.seek(size - FOOTER_BYTES - length)
    raw = handle.read(length)
    if len(raw) != length:
        raise TrailerError("agent.trailer_truncated", "the file ended inside its trailer")
    return _Located(body_length=size - FOOTER_BYTES - length, raw=raw)


def _sha256_of_prefix(handle: BinaryIO, length: int) -> str:
    digest = hashlib.sha256()
    handle.seek(0)
    left = length
    while left > 0:
        chunk = handle.read(min(_HASH_CHUNK, left))
        if not chunk:
            break
        digest.update(chunk)
        left -= len(chunk)
    return digest.hexdigest()


def _parse_time(value: object, name: str) -> datetime:
    if not isinstance(value, str):
        raise TrailerError("agent.trailer_malformed", f"the trailer's {name} is not a string")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise TrailerError(
            "agent.trailer_malformed", f"the trailer's {name} is not a time"
        ) from exc
    if moment.tzinfo is None:
        raise TrailerError("agent.trailer_malformed", f"the trailer's {name} has no time zone")
    return moment


def _fields(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise TrailerError("agent.trailer_malformed", "the trailer is not JSON") from exc
    if not isinstance(data, dict):
        raise TrailerError("agent.trailer_malformed", "the trailer is not a JSON object")
    expected = {*SIGNED_FIELDS, "signature"} | (set(data) & set(OPTIONAL_FIELDS))
    if set(data) != expected:
        missing = sorted(expected - set(data))
        extra = sorted(set(data) - expected)
        raise TrailerError(
            "agent.trailer_malformed",
            f"the trailer's fields are not the expected ones (missing {missing}, extra {extra})",
        )
    for name in expected:
        if not isinstance(data[name], str):
            raise TrailerError("agent.trailer_malformed", f"the trailer's {name} is not a string")
    return data


def _server_key(text: str) -> Ed25519PublicKey:
    try:
        if text.lstrip().startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode("ascii"))
            if not isinstance(key, Ed25519PublicKey):
                raise ValueError("not an Ed25519 key")
            return key
        return decode_ed25519_public_key(text)
    except (ValueError, UnicodeEncodeError, CryptoError) as exc:
        raise TrailerError(
            "agent.trailer_malformed", f"the trailer's server key is unreadable: {exc}"
        ) from exc


def _check(data: Mapping[str, Any], *, body_sha256: str, now: datetime) -> Trailer:
    key = _server_key(data["server_key"])
    if fingerprint(key) != data["server_fingerprint"]:
        raise TrailerError(
            "agent.trailer_tampered",
            "the trailer's server fingerprint is not that of its server key: the file was "
            "changed after the server made it; do not run it, download it again",
        )
    payload = {name: data[name] for name in (*SIGNED_FIELDS, *OPTIONAL_FIELDS) if name in data}
    try:
        check_signature_for(key, data["signature"], kind=TRAILER_KIND, payload=payload)
    except CryptoError as exc:
        raise TrailerError(
            "agent.trailer_tampered",
            "the trailer's signature does not verify: the file was changed after the server "
            "made it; do not run it, download it again",
        ) from exc
    if data["binary_sha256"] != body_sha256:
        raise TrailerError(
            "agent.binary_tampered",
            "the program is not the one the server signed for (its SHA-256 differs): the file "
            "was changed or damaged after the download; do not run it, download it again",
        )
    parts = urlsplit(data["server_url"])
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TrailerError("agent.trailer_malformed", "the trailer's server URL is not http(s)")
    issued_at = _parse_time(data["issued_at"], "issued_at")
    expires_at = _parse_time(data["expires_at"], "expires_at")
    if expires_at <= now:
        raise TrailerError(
            "agent.trailer_expired",
            f"this download was for a join code that expired at {_timestamp(expires_at)}; ask "
            "the technician for a new code and download the agent again from the join page",
        )
    return Trailer(
        server_url=data["server_url"],
        server_key=key,
        server_fingerprint=data["server_fingerprint"],
        join_code=data["join_code"],
        issued_at=issued_at,
        expires_at=expires_at,
        binary_sha256=data["binary_sha256"],
        enrolment_token=data.get("enrolment_token") or None,
    )


def read_trailer(path: str | os.PathLike[str], *, now: datetime | None = None) -> Trailer | None:
    """The verified trailer of the file at ``path``; None when it carries none (a plain build,
    or a Python interpreter). Raises ``TrailerError`` (with its code) for any trailer that is
    not exactly one the server made for this very program, or that has expired."""
    moment = now or datetime.now(UTC)
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            located = _locate(handle, size)
            if located is None:
                return None
            data = _fields(located.raw)
            body_sha256 = _sha256_of_prefix(handle, located.body_length)
    except OSError as exc:
        raise TrailerError("agent.trailer_unreadable", f"cannot read {path}: {exc}") from exc
    return _check(data, body_sha256=body_sha256, now=moment)
