"""The agent's state directory: device key, pinned servers, consent receipts, activity logs.

    <state_dir>/                 0700
      device-key.pem             0600, the Ed25519 device key (made on first run)
      known_servers.json         0600, server key pinned on first contact (trust on first use)
      seen_grants.json           0600, nonces of the grants already acted on (replays refused)
      receipts/<time>-<id>.json  0600, a copy of every consent receipt the device signed
      sessions/<id>.jsonl        0600, the agent's own log of each support session (the report)

Everything is written atomically (temporary file + rename) so a crash never leaves a half file,
and created 0600 from the start rather than chmod-ed afterwards.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from auxilio.agent.errors import AgentError, ServerKeyChanged
from auxilio.crypto.errors import CryptoError
from auxilio.crypto.keys import (
    decode_ed25519_public_key,
    encode_public_key,
    fingerprint,
    load_or_create_signing_key,
    write_private_file,
)
from auxilio.crypto.receipts import ConsentReceipt, SignedReceipt, verify_receipt
from auxilio.protocol.types import SignedDocument

DEFAULT_STATE_DIR = Path("~/.local/share/auxilio-agent")


@dataclass(frozen=True, slots=True)
class PinnedServer:
    origin: str
    public_key: Ed25519PublicKey
    fingerprint: str
    pinned_at: str
    device_id: str | None


@dataclass(frozen=True, slots=True)
class StoredReceipt:
    path: Path
    support_session_id: str
    technician_name: str
    organisation_name: str
    server: str
    receipt: ConsentReceipt | None  # None when it no longer verifies with this device key
    problem: str | None


class AgentState:
    def __init__(self, root: Path) -> None:
        self.root = root.expanduser()
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        # mkdir's mode is masked by the umask and ignored for an existing directory.
        os.chmod(self.root, 0o700)
        for sub in ("receipts", "sessions"):
            (self.root / sub).mkdir(exist_ok=True, mode=0o700)
        try:
            self.device_key: Ed25519PrivateKey = load_or_create_signing_key(
                self.root / "device-key.pem"
            )
        except CryptoError as exc:
            raise AgentError(exc.code, str(exc)) from exc

    @property
    def device_public_key(self) -> Ed25519PublicKey:
        return self.device_key.public_key()

    # -- pinned servers (trust on first use) ----------------------------------------------------

    @property
    def _known_path(self) -> Path:
        return self.root / "known_servers.json"

    def _known(self) -> dict[str, Any]:
        if not self._known_path.exists():
            return {}
        data = json.loads(self._known_path.read_text())
        if not isinstance(data, dict):
            raise AgentError("state.corrupt", f"{self._known_path} is not a JSON object")
        return data

    def pinned(self, origin: str) -> PinnedServer | None:
        entry = self._known().get(origin)
        if entry is None:
            return None
        return PinnedServer(
            origin=origin,
            public_key=decode_ed25519_public_key(entry["public_key"]),
            fingerprint=entry["fingerprint"],
            pinned_at=entry["pinned_at"],
            device_id=entry.get("device_id"),
        )

    def check_pin(self, origin: str, presented_fingerprint: str) -> PinnedServer | None:
        """The pinned server if it presents the pinned key, ``None`` on first contact; raises
        ``ServerKeyChanged`` if it presents another one."""
        pinned = self.pinned(origin)
        if pinned is not None and pinned.fingerprint != presented_fingerprint:
            raise ServerKeyChanged(
                "server.key_changed",
                f"the server {origin} presents the key {presented_fingerprint}, but this device "
                f"pinned {pinned.fingerprint} on {pinned.pinned_at}. This can mean someone is "
                "intercepting the connection. Do not continue; ask your organisation. If the "
                f"server key was changed on purpose, remove the entry from {self._known_path}.",
            )
        return pinned

    def pin(self, origin: str, public_key: Ed25519PublicKey) -> PinnedServer:
        known = self._known()
        if origin in known:
            # Re-pinning would silently accept a changed key: the one thing TOFU must not do.
            self.check_pin(origin, fingerprint(public_key))
            return self.pinned(origin)  # type: ignore[return-value]  # just checked it exists
        known[origin] = {
            "public_key": encode_public_key(public_key),
            "fingerprint": fingerprint(public_key),
            "pinned_at": _now_text(),
            "device_id": None,
        }
        write_private_file(self._known_path, json.dumps(known, indent=2).encode())
        pinned = self.pinned(origin)
        assert pinned is not None  # noqa: S101 - written just above
        return pinned

    def remember_device_id(self, origin: str, device_id: str) -> None:
        """The server names the device on its first join; later grants must name the same id."""
        known = self._known()
        if origin in known and known[origin].get("device_id") != device_id:
            known[origin]["device_id"] = device_id
            write_private_file(self._known_path, json.dumps(known, indent=2).encode())

    # -- grants already seen (replay) ---------------------------------------------------------

    @property
    def _seen_path(self) -> Path:
        return self.root / "seen_grants.json"

    def remember_grant(self, nonce: str, *, until: datetime, now: datetime) -> bool:
        """``True`` the first time a grant nonce is seen, ``False`` for a replay. A nonce is kept
        until its grant expires: after that the grant is refused as expired anyway."""
        seen: dict[str, str] = {}
        if self._seen_path.exists():
            try:
                data = json.loads(self._seen_path.read_text())
            except ValueError as exc:
                raise AgentError("state.corrupt", f"{self._seen_path} is not JSON") from exc
            if not isinstance(data, dict):
                raise AgentError("state.corrupt", f"{self._seen_path} is not a JSON object")
            seen = {
                str(k): str(v) for k, v in data.items() if datetime.fromisoformat(str(v)) > now
            }
        if nonce in seen:
            return False
        seen[nonce] = until.isoformat()
        write_private_file(self._seen_path, json.dumps(seen, indent=2).encode())
        return True

    # -- consent receipts -----------------------------------------------------------------------

    def save_receipt(
        self,
        signed: SignedReceipt,
        receipt: ConsentReceipt,
        *,
        technician_name: str,
        organisation_name: str,
        server: str,
    ) -> Path:
        stamp = receipt.decided_at.strftime("%Y%m%dT%H%M%S%fZ")
        path = self.root / "receipts" / f"{stamp}-{receipt.support_session_id}.json"
        record = {
            "support_session_id": receipt.support_session_id,
            "technician_name": technician_name,
            "organisation_name": organisation_name,
            "server": server,
            "signed": signed.model_dump(mode="json"),
        }
        write_private_file(path, json.dumps(record, indent=2).encode())
        return path

    def list_receipts(self) -> list[StoredReceipt]:
        """Every stored receipt, oldest first, each verified again with this device's key."""
        stored: list[StoredReceipt] = []
        for path in sorted((self.root / "receipts").glob("*.json")):
            receipt: ConsentReceipt | None = None
            problem: str | None = None
            record: dict[str, Any] = {}
            try:
                record = json.loads(path.read_text())
                signed = SignedDocument.model_validate(record["signed"])
                receipt = verify_receipt(self.device_public_key, signed)
            except CryptoError as exc:
                problem = exc.code
            except (ValueError, KeyError, TypeError) as exc:
                problem = f"unreadable: {type(exc).__name__}"
            stored.append(
                StoredReceipt(
                    path=path,
                    support_session_id=str(record.get("support_session_id", "?")),
                    technician_name=str(record.get("technician_name", "?")),
                    organisation_name=str(record.get("organisation_name", "?")),
                    server=str(record.get("server", "?")),
                    receipt=receipt,
                    problem=problem,
                )
            )
        return stored

    # -- activity logs --------------------------------------------------------------------------

    def session_log(self, support_session_id: str) -> ActivityLog:
        return ActivityLog(self.root / "sessions" / f"{support_session_id}.jsonl")


def _now_text() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class ActivityLog:
    """Append-only JSON lines: what happened in one support session, as the agent saw it. The
    person's report is built from this file, not from anything the server says."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, event: str, **fields: Any) -> None:
        line = json.dumps({"at": _now_text(), "event": event, **fields}, default=str)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as handle:
            handle.write(line + "\n")

    def events(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
