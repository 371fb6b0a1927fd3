"""Where the technician client keeps its state: the login, pinned server keys, session keys.

Layout under the configuration directory (``AUXILIO_CONFIG_DIR``, else
``$XDG_CONFIG_HOME/auxilio``, else ``~/.config/auxilio``)::

    credentials.json          server URL and bearer token (mode 0600)
    known_servers.json        server signing key per URL, pinned on first use (mode 0600)
    sessions/<id>.key         ephemeral X25519 key of one support session (PKCS8 PEM, mode 0600)

A bearer token and an E2E private key are as good as the technician's password for their
lifetime, so every file is created 0600 from the start (never chmod-ed afterwards) and a file
that other users can read is refused rather than used.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from auxilio.crypto.errors import CryptoError
from auxilio.crypto.keys import load_auditor_key, save_private_key, write_private_file

CREDENTIALS_FILE = "credentials.json"
KNOWN_SERVERS_FILE = "known_servers.json"
SESSIONS_DIR = "sessions"
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")


class ClientStateError(Exception):
    """A state file is missing, unreadable, unsafe or changed; the message says what to do."""


def config_dir() -> Path:
    explicit = os.environ.get("AUXILIO_CONFIG_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CONFIG_HOME")
    return (Path(xdg) if xdg else Path.home() / ".config") / "auxilio"


@dataclass(frozen=True, slots=True)
class Credentials:
    server: str
    token: str
    email: str
    expires_at: str | None = None


def _read_private_json(path: Path) -> Any:
    if os.name == "posix" and path.stat().st_mode & 0o077:
        raise ClientStateError(f"{path} is readable by other users; run: chmod 600 {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ClientStateError(f"{path} is not readable JSON: {exc}") from exc


def save_credentials(credentials: Credentials, *, directory: Path | None = None) -> Path:
    path = (directory or config_dir()) / CREDENTIALS_FILE
    write_private_file(path, json.dumps(asdict(credentials), indent=2).encode() + b"\n")
    return path


def load_credentials(*, directory: Path | None = None) -> Credentials:
    path = (directory or config_dir()) / CREDENTIALS_FILE
    if not path.exists():
        raise ClientStateError("not logged in; run: auxilio login --server URL --email EMAIL")
    data = _read_private_json(path)
    try:
        return Credentials(
            server=str(data["server"]),
            token=str(data["token"]),
            email=str(data["email"]),
            expires_at=data.get("expires_at"),
        )
    except (KeyError, TypeError) as exc:
        raise ClientStateError(f"{path} is incomplete; log in again") from exc


def delete_credentials(*, directory: Path | None = None) -> bool:
    path = (directory or config_dir()) / CREDENTIALS_FILE
    if not path.exists():
        return False
    path.unlink()
    return True


# -- pinned server keys -----------------------------------------------------------------------


def pin_server_key(server: str, public_key: str, *, directory: Path | None = None) -> bool:
    """Trust on first use, as the agent does: remember the server's signing key for ``server``.

    Returns True when the key was pinned now, False when it matched the pinned one. A different
    key is refused: grants signed by it would let someone else name the device we talk to.
    """
    path = (directory or config_dir()) / KNOWN_SERVERS_FILE
    known: dict[str, str] = {}
    if path.exists():
        data = _read_private_json(path)
        if not isinstance(data, dict):
            raise ClientStateError(f"{path} is not a JSON object")
        known = {str(k): str(v) for k, v in data.items()}
    pinned = known.get(server)
    if pinned == public_key:
        return False
    if pinned is not None:
        raise ClientStateError(
            f"the signing key of {server} changed since it was pinned; if the server's key was "
            f"rotated on purpose, remove its line from {path}"
        )
    known[server] = public_key
    write_private_file(path, json.dumps(known, indent=2, sort_keys=True).encode() + b"\n")
    return True


# -- ephemeral session keys -------------------------------------------------------------------


def session_key_path(support_session_id: str, *, directory: Path | None = None) -> Path:
    # The id comes from the server and names a file: refuse anything that could leave the folder.
    if not _SAFE_ID.match(support_session_id) or support_session_id in {".", ".."}:
        raise ClientStateError(f"{support_session_id!r} is not a support session id")
    return (directory or config_dir()) / SESSIONS_DIR / f"{support_session_id}.key"


def save_session_key(
    support_session_id: str, key: X25519PrivateKey, *, directory: Path | None = None
) -> Path:
    path = session_key_path(support_session_id, directory=directory)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    save_private_key(key, path)
    return path


def load_session_key(support_session_id: str, *, directory: Path | None = None) -> X25519PrivateKey:
    path = session_key_path(support_session_id, directory=directory)
    if not path.exists():
        raise ClientStateError(
            f"no key for support session {support_session_id} in {path.parent}; only the client "
            "that requested a session can attach to it"
        )
    try:
        # The auditor-key loader is the X25519 PKCS8 loader with the 0600 check.
        return load_auditor_key(path)
    except CryptoError as exc:
        raise ClientStateError(str(exc)) from exc
