"""The owner's pre-authorisations kept on the device (docs/unattended.md).

    <state_dir>/access/<id>.json   0600, {"document": {body, signature},
                                          "revocation": {body, signature} | null,
                                          "published": bool, "revocation_published": bool}

The signed documents are the truth: every read verifies them again with the device key, so a
file edited by hand (a wider scope, a longer window, a revocation removed) is not taken: an entry
whose document does not verify is left out (``problems()`` names it), and a revocation that does
not verify makes the entry count as revoked (the owner meant to revoke something). ``published``
and ``revocation_published`` are only the server's acknowledgements (``preauth.ack``); the agent
refuses a revoked pre-authorisation from the moment it signs the revocation, acknowledged or not.

The service (``auxilio agent run``) and ``auxilio agent access`` both write these files; each
read-modify-write holds an exclusive lock on ``access/.lock`` (POSIX), so an acknowledgement
written by the service never loses a revocation written at the same moment by the command.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from auxilio.agent.errors import AgentError
from auxilio.agent.state import AgentState
from auxilio.crypto.errors import CryptoError
from auxilio.crypto.keys import write_private_file
from auxilio.crypto.preauth import (
    AccessWindow,
    PreAuthorisation,
    PreAuthorisationRevocation,
    sign_pre_authorisation,
    sign_revocation,
    verify_pre_authorisation,
    verify_revocation,
)
from auxilio.protocol.types import Capability, SignedDocument

try:  # POSIX; elsewhere the files are still written atomically, only not locked
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class AccessEntry:
    document: PreAuthorisation
    signed: SignedDocument
    revocation: PreAuthorisationRevocation | None
    revocation_signed: SignedDocument | None
    published: bool
    revocation_published: bool
    revocation_problem: str | None = None  # a revocation is on file but does not verify

    @property
    def id(self) -> str:
        return self.document.id

    @property
    def revoked(self) -> bool:
        return self.revocation_signed is not None or self.revocation_problem is not None

    @property
    def revoked_at(self) -> datetime | None:
        return self.revocation.revoked_at if self.revocation is not None else None

    def expired(self, now: datetime) -> bool:
        return now >= self.document.window.not_after

    def is_live(self, now: datetime) -> bool:
        """Not revoked and not over (its window may still be shut at ``now``: hours, days)."""
        return not self.revoked and not self.expired(now)

    def state(self, now: datetime) -> str:
        """``revoked``, ``expired``, ``open`` (the window covers now) or ``waiting``."""
        if self.revoked:
            return "revoked"
        if self.expired(now):
            return "expired"
        return "open" if self.document.window.covers(now) else "waiting"


class AccessStore:
    def __init__(self, state: AgentState | Path) -> None:
        self.state = state if isinstance(state, AgentState) else AgentState(state)
        self.root = self.state.root / "access"
        self.root.mkdir(exist_ok=True, mode=0o700)
        self._problems: dict[str, str] = {}

    # -- reading ----------------------------------------------------------------------------

    def _path(self, pre_authorisation_id: str) -> Path:
        if "/" in pre_authorisation_id or pre_authorisation_id.startswith("."):
            raise AgentError("access.unknown", f"no pre-authorisation {pre_authorisation_id!r}")
        return self.root / f"{pre_authorisation_id}.json"

    def _load(self, path: Path) -> AccessEntry | None:
        try:
            record = json.loads(path.read_text())
            signed = SignedDocument.model_validate(record["document"])
            document = verify_pre_authorisation(self.state.device_public_key, signed)
        except CryptoError as exc:
            self._problems[path.name] = exc.code
            return None
        except (ValueError, KeyError, TypeError) as exc:
            self._problems[path.name] = f"unreadable: {type(exc).__name__}"
            return None
        if f"{document.id}.json" != path.name:
            self._problems[path.name] = "access.misfiled"
            return None
        revocation: PreAuthorisationRevocation | None = None
        revocation_signed: SignedDocument | None = None
        problem: str | None = None
        if record.get("revocation") is not None:
            try:
                revocation_signed = SignedDocument.model_validate(record["revocation"])
                revocation = verify_revocation(self.state.device_public_key, revocation_signed)
                if revocation.pre_authorisation_id != document.id:
                    raise AgentError("access.revocation_mismatch", "names another document")
            except (CryptoError, AgentError, ValueError) as exc:
                problem = getattr(exc, "code", None) or f"unreadable: {type(exc).__name__}"
                revocation = None
                revocation_signed = None
        return AccessEntry(
            document=document,
            signed=signed,
            revocation=revocation,
            revocation_signed=revocation_signed,
            published=bool(record.get("published", False)),
            revocation_published=bool(record.get("revocation_published", False)),
            revocation_problem=problem,
        )

    def all(self) -> list[AccessEntry]:
        """Every pre-authorisation that verifies, oldest first."""
        self._problems = {}
        entries = [e for p in self.root.glob("*.json") if (e := self._load(p)) is not None]
        return sorted(entries, key=lambda e: (e.document.created_at, e.id))

    def problems(self) -> dict[str, str]:
        """Files the last ``all()`` left out, with why."""
        return dict(self._problems)

    def get(self, pre_authorisation_id: str) -> AccessEntry | None:
        try:
            path = self._path(pre_authorisation_id)
        except AgentError:
            return None
        return self._load(path) if path.exists() else None

    def live(self, now: datetime | None = None) -> list[AccessEntry]:
        moment = now or datetime.now(UTC)
        return [e for e in self.all() if e.is_live(moment)]

    def fingerprint(self) -> tuple[tuple[str, int, int], ...]:
        """Cheap change detector for a poller: names, sizes and mtimes of the files."""
        found = []
        for path in self.root.glob("*.json"):
            with contextlib.suppress(FileNotFoundError):
                info = path.stat()
                found.append((path.name, info.st_size, info.st_mtime_ns))
        return tuple(sorted(found))

    # -- writing ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if fcntl is None:  # pragma: no cover - Windows
            yield
            return
        lock = self.root / ".lock"
        with open(lock, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _write(self, entry_id: str, record: dict[str, Any]) -> None:
        write_private_file(self._path(entry_id), json.dumps(record, indent=2).encode())

    def _record(self, entry_id: str) -> dict[str, Any]:
        path = self._path(entry_id)
        if not path.exists():
            raise AgentError("access.unknown", f"no pre-authorisation {entry_id!r} on this device")
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            raise AgentError("state.corrupt", f"{path} is not a JSON object")
        return data

    def grant(
        self,
        *,
        device_id: str,
        organisation_id: str,
        server_fingerprint: str,
        owner_name: str,
        scope: Iterable[Capability],
        window: AccessWindow,
        automated_runs: bool = False,
        note: str = "",
        now: datetime | None = None,
    ) -> AccessEntry:
        """Build, sign (device key) and store a new pre-authorisation; unpublished."""
        document = PreAuthorisation(
            id=str(uuid.uuid4()),
            device_id=device_id,
            organisation_id=organisation_id,
            server_fingerprint=server_fingerprint,
            owner_name=owner_name,
            scope=tuple(scope),
            automated_runs=automated_runs,
            window=window,
            note=note,
            created_at=now or datetime.now(UTC),
        )
        signed = sign_pre_authorisation(self.state.device_key, document)
        record = {"document": signed.model_dump(mode="json"), "revocation": None,
                  "published": False, "revocation_published": False}  # fmt: skip
        with self._locked():
            self._write(document.id, record)
        entry = self.get(document.id)
        assert entry is not None  # noqa: S101 - written just above
        return entry

    def revoke(
        self, pre_authorisation_id: str, reason: str = "", *, now: datetime | None = None
    ) -> AccessEntry:
        """Sign and store the revocation (once: a second call returns the entry as it is)."""
        with self._locked():
            entry = self.get(pre_authorisation_id)
            if entry is None:
                raise AgentError("access.unknown", f"no pre-authorisation {pre_authorisation_id!r}")
            if entry.revocation_signed is not None:
                return entry  # (a revocation that does not verify is signed again)
            revocation = PreAuthorisationRevocation(
                pre_authorisation_id=entry.id,
                device_id=entry.document.device_id,
                revoked_at=now or datetime.now(UTC),
                reason=reason,
            )
            signed = sign_revocation(self.state.device_key, revocation)
            record = self._record(entry.id)
            record["revocation"] = signed.model_dump(mode="json")
            record["revocation_published"] = False
            self._write(entry.id, record)
        updated = self.get(entry.id)
        assert updated is not None  # noqa: S101
        return updated

    def mark_published(self, pre_authorisation_id: str, state: str) -> None:
        """The server acknowledged (``preauth.ack``): ``stored`` or ``revoked``."""
        with self._locked():
            try:
                record = self._record(pre_authorisation_id)
            except AgentError:
                return
            record["published"] = True
            if state == "revoked":
                record["revocation_published"] = record.get("revocation") is not None
            self._write(pre_authorisation_id, record)
