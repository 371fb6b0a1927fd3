"""``auxilio agent enroll``: register this device with a server for unattended access.

    GET  /api/v1/server-key          {public_key, fingerprint}: shown, then pinned
    POST /api/v1/agents/enroll       {token, device_public_key, platform, name, agent_version,
                                      proof}: proof is a document the device key signs (kind
                                      auxilio.enrolment.v1) over the token's SHA-256, the device
                                      key and the server's fingerprint, so the token is only
                                      good for this key at this server
    -> <state>/enrolment.json        0600, {server, device_id, organisation_id,
                                      organisation_name, device_group, owner_name, enrolled_at}

The server key is pinned the way a join pins it (trust on first use, or the key the one-file
agent carries in its trailer; ``--fingerprint`` to require one). Enrolment alone allows nothing:
unattended access needs the owner's pre-authorisation (``auxilio agent access grant``).

Errors from the server are shown with its code (``enrolment.token_invalid``, ...); the agent's
own: ``enrolment.already_enrolled``, ``enrolment.fingerprint_mismatch``,
``enrolment.bad_answer``, ``server.unreachable``.
"""

from __future__ import annotations

import hashlib
import json
import platform
import socket
import ssl
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

import auxilio
from auxilio.agent.connection import ServerAddress, fetch_server_key
from auxilio.agent.errors import AgentError, ConnectionFailed
from auxilio.agent.state import AgentState
from auxilio.crypto.keys import encode_public_key, fingerprint, write_private_file
from auxilio.crypto.signing import DocumentKind, sign_document

ENROL_PATH = "/api/v1/agents/enroll"
_FIELDS = ("server", "device_id", "organisation_id", "organisation_name", "device_group",
           "owner_name", "enrolled_at")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Enrolment:
    server: str  # the origin, as the server key is pinned under it
    device_id: str
    organisation_id: str
    organisation_name: str
    device_group: str
    owner_name: str
    enrolled_at: str
    # Set once the server refused this device at auth time (``device.revoked``) on
    # REVOKED_AFTER_REFUSALS starts in a row: the service then stops at once, every start. The
    # error is not signed, so one refusal (or one in the middle of a connection) only stops
    # that run; ``refusals_at_auth`` counts them, and a start that gets device.ready clears it.
    revoked_at: str | None = None
    revoked_reason: str = ""
    refusals_at_auth: int = 0


def enrolment_path(state: AgentState) -> Path:
    return state.root / "enrolment.json"


def load_enrolment(state: AgentState) -> Enrolment | None:
    path = enrolment_path(state)
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        known = {name: data[name] for name in _FIELDS}
        return Enrolment(**{k: str(v) for k, v in known.items()},
                         revoked_at=data.get("revoked_at"),
                         revoked_reason=str(data.get("revoked_reason", "")),
                         refusals_at_auth=int(data.get("refusals_at_auth", 0)))  # fmt: skip
    except (ValueError, KeyError, TypeError) as exc:
        raise AgentError("state.corrupt", f"{path} is not a readable enrolment") from exc


def save_enrolment(state: AgentState, enrolment: Enrolment) -> None:
    write_private_file(enrolment_path(state), json.dumps(asdict(enrolment), indent=2).encode())


def require_enrolment(state: AgentState, *, code: str = "access.not_enrolled") -> Enrolment:
    enrolment = load_enrolment(state)
    if enrolment is None:
        raise AgentError(
            code,
            f"this device is not enrolled (no {enrolment_path(state)}); run: auxilio agent "
            "enroll --server URL --token TOKEN",
        )
    return enrolment


def platform_text() -> str:
    return f"{platform.system()} {platform.release()} ({platform.machine()})"[:200]


def proof_payload(
    token: str, device_key: Ed25519PublicKey, server_fingerprint: str
) -> dict[str, str]:
    return {
        "token_sha256": hashlib.sha256(token.encode()).hexdigest(),
        "device_public_key": encode_public_key(device_key),
        "server_fingerprint": server_fingerprint,
    }


def _error_of(body: bytes, status: int) -> AgentError:
    try:
        data = json.loads(body)
        error = data["error"]
        return AgentError(str(error["code"]), f"{error.get('message', '')} (HTTP {status})")
    except (ValueError, KeyError, TypeError):
        text = body[:200].decode(errors="replace").strip()
        return AgentError("enrolment.refused", f"the server answered HTTP {status}: {text}")


def post_json(
    url: str, body: dict[str, Any], context: ssl.SSLContext | None
) -> dict[str, Any]:
    request = urllib.request.Request(  # noqa: S310 - http(s), checked by server_address
        url, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as answer:  # noqa: S310
            raw = answer.read(256 * 1024)
    except urllib.error.HTTPError as exc:
        raise _error_of(exc.read(64 * 1024), exc.code) from None
    except OSError as exc:
        raise ConnectionFailed("server.unreachable", f"cannot reach {url}: {exc}") from exc
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise AgentError("enrolment.bad_answer", "the server's answer is not JSON") from exc
    if not isinstance(data, dict):
        raise AgentError("enrolment.bad_answer", "the server's answer is not a JSON object")
    return data


def _normal(text: str) -> str:
    return "".join(text.removeprefix("SHA256:").split()).lower()


def enroll(
    *,
    address: ServerAddress,
    token: str,
    state: AgentState,
    name: str | None = None,
    ca_file: str | None = None,
    expected_fingerprint: str | None = None,
    server_key: Ed25519PublicKey | None = None,
    say: Any = print,
) -> Enrolment:
    """Enrol; the stored enrolment. ``server_key``: a key already trusted (the one-file agent's
    trailer); otherwise it is read from the server and shown. ``say(text)`` tells the person."""
    existing = load_enrolment(state)
    if existing is not None:
        raise AgentError(
            "enrolment.already_enrolled",
            f"this device is already enrolled with {existing.server} as {existing.device_id} "
            f"(in {enrolment_path(state)}); use another --state-dir, or remove that file first",
        )
    token = token.strip()
    if not token:
        raise AgentError("enrolment.token_invalid", "the enrolment token is empty")
    context = ssl.create_default_context(cafile=ca_file) if address.secure else None
    key = server_key if server_key is not None else fetch_server_key(address, context)
    presented = fingerprint(key)
    say(f"Server {address.origin}, key fingerprint: {presented}")
    if expected_fingerprint is not None and _normal(expected_fingerprint) != _normal(presented):
        raise AgentError(
            "enrolment.fingerprint_mismatch",
            f"the server presents {presented}, not the expected {expected_fingerprint}: do not "
            "enrol; ask your organisation",
        )
    first = state.pinned(address.origin) is None
    pinned = state.pin(address.origin, key)  # raises ServerKeyChanged for another key
    say("Pinned the server key: a different key will be refused from now on." if first
        else "The server key matches the one pinned before.")  # fmt: skip
    proof = sign_document(state.device_key, proof_payload(token, state.device_public_key,
                                                          pinned.fingerprint),
                          kind=DocumentKind.ENROLMENT)  # fmt: skip
    answer = post_json(
        address.http_url + ENROL_PATH,
        {
            "token": token,
            "device_public_key": encode_public_key(state.device_public_key),
            "platform": platform_text(),
            "name": (name or socket.gethostname() or "device")[:200],
            "agent_version": auxilio.__version__,
            "proof": proof.model_dump(mode="json"),
        },
        context,
    )
    try:
        fields: dict[str, Any] = {k: str(answer[k]) for k in _FIELDS if k != "server"}
        enrolment = Enrolment(server=address.origin, **fields)
    except KeyError as exc:
        raise AgentError("enrolment.bad_answer", f"the server's answer lacks {exc}") from exc
    told = answer.get("server_fingerprint")
    if told is not None and _normal(str(told)) != _normal(pinned.fingerprint):
        raise AgentError(
            "enrolment.bad_answer",
            "the server's answer names another server key than the one it presents",
        )
    save_enrolment(state, enrolment)
    state.remember_device_id(address.origin, enrolment.device_id)
    say(f"Enrolled as device {enrolment.device_id} of {enrolment.organisation_name} "
        f"(group {enrolment.device_group}, owner {enrolment.owner_name}).")  # fmt: skip
    say("Enrolment alone allows nothing: unattended access needs your pre-authorisation, "
        "for example: auxilio agent access grant --scope chat,terminal")  # fmt: skip
    return enrolment


def enrol_from_trailer(
    trailer: Any, state_dir: Path, *, say: Any = print, tell: Any = print
) -> int:
    """The one-file agent with an enrolment token in its trailer (agent/trailer.py), run with no
    arguments: enrol with the trailer's server and key (no trust on first use), install the
    service; the exit status. Already enrolled with that server: says so, changes nothing.
    ``say`` tells the steps, ``tell`` the outcome (a window when the file was double-clicked)."""
    from auxilio.agent.connection import server_address
    from auxilio.agent.service_unit import install_service

    try:
        state = AgentState(state_dir)
        address = server_address(trailer.server_url)
        existing = load_enrolment(state)
        if existing is not None and existing.server == address.origin:
            tell(f"This device is already enrolled with {existing.server} as "
                 f"{existing.device_id}; the service (agent run) holds its connection.")
            return 0
        enroll(address=address, token=trailer.enrolment_token, state=state,
               server_key=trailer.server_key, say=say)  # fmt: skip
    except AgentError as exc:
        tell(f"Error {exc.code}: {exc.message}")
        return exc.exit_code
    install_service(state_dir, start=True, say=say)
    tell("This device is enrolled. Unattended access needs your pre-authorisation: "
         "auxilio-agent access grant --scope chat")  # fmt: skip
    return 0


def mark_revoked(state: AgentState, enrolment: Enrolment, *, at: str, reason: str) -> Enrolment:
    revoked = Enrolment(**{**asdict(enrolment), "revoked_at": at, "revoked_reason": reason})
    save_enrolment(state, revoked)
    return revoked


REVOKED_AFTER_REFUSALS = 3


def note_refusal_at_auth(state: AgentState, *, at: str, reason: str) -> Enrolment:
    """One more start refused at auth time with ``device.revoked`` (read again from the file:
    another start may have written it); the ``REVOKED_AFTER_REFUSALS``th in a row marks the
    enrolment revoked."""
    enrolment = require_enrolment(state)
    count = enrolment.refusals_at_auth + 1
    noted = Enrolment(**{**asdict(enrolment), "refusals_at_auth": count})
    if count >= REVOKED_AFTER_REFUSALS:
        return mark_revoked(state, noted, at=at, reason=reason)
    save_enrolment(state, noted)
    return noted


def clear_refusals(state: AgentState) -> None:
    """The server took this device (device.ready): earlier refusals were not the truth."""
    enrolment = load_enrolment(state)
    if enrolment is not None and enrolment.refusals_at_auth:
        save_enrolment(state, Enrolment(**{**asdict(enrolment), "refusals_at_auth": 0}))
