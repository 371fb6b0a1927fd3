"""The audit witness: a copy of every signed checkpoint kept outside the database.

A signed head proves that the head row was written by the server, not that it is the latest one:
a database restored from an older backup (or a head row copied back from one) carries a valid
signature. The witness remembers how far each chain had reached. Every checkpoint, with the
signed head at that moment, is appended to ``<dir>/<chain>.jsonl`` once its transaction has
committed, and fsync'd; ``auxilio audit verify`` then fails when the database is behind the
witness (rolled back) or differs from it at a witnessed event (rewritten).

One line per checkpoint:
    {"format": "auxilio-audit-witness/1", "chain": ..., "seq": ..., "hash": ...,
     "signed_at": ..., "key_id": ..., "signature": ...,          the checkpoint, as signed
     "head": {"signed_at": ..., "key_id": ..., "signature": ...}} the head at that seq, as signed

The files are opened O_APPEND and each line is one ``write``, so several processes (the server
and the CLI) can append to the same directory. The directory belongs on another volume than the
database, ideally append-only for the server's user (``chattr +a``) or on another machine.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

log = logging.getLogger("auxilio.audit.witness")

FORMAT = "auxilio-audit-witness/1"
_FILE_NAME = re.compile(r"^(system|[0-9a-f]{32})\.jsonl$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_PENDING = "auxilio_audit_witness_pending"


class WitnessInvalid(ValueError):
    """A witness directory or file that cannot be read as one (named with its line)."""


@dataclass(frozen=True, slots=True)
class DirectoryWitness:
    """Appends checkpoints to one file per chain in ``path`` (made at start-up if missing)."""

    path: Path

    def __post_init__(self) -> None:
        # At start-up, not at the first checkpoint: an unusable witness stops the server early.
        self.path.mkdir(parents=True, exist_ok=True, mode=0o750)

    def append(self, entry: Mapping[str, Any]) -> None:
        line = orjson.dumps({"format": FORMAT, **entry}) + b"\n"
        target = self.path / f"{entry['chain']}.jsonl"
        created = not target.exists()
        fd = os.open(target, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                # A line torn by a crash stays a malformed line of its own (verify names it)
                # instead of swallowing this one.
                line = b"\n" + line
            # One write per line: appends from several processes never interleave.
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(f"short write to {target} ({written} of {len(line)} bytes)")
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:
            # The new file's directory entry must survive a crash too.
            dir_fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)


def witness_after_commit(
    db: AsyncSession, witness: DirectoryWitness, entry: Mapping[str, Any]
) -> None:
    """Append ``entry`` to the witness once ``db``'s transaction commits; drop it on rollback.

    After the commit, never before: a witnessed checkpoint that then rolled back would make the
    next, different event at that seq look like a rewritten history.
    """
    sync = db.sync_session
    pending: list[tuple[DirectoryWitness, Mapping[str, Any]]] | None = sync.info.get(_PENDING)
    if pending is None:
        pending = sync.info[_PENDING] = []
        event.listen(sync, "after_commit", _write_pending)
        event.listen(sync, "after_rollback", _drop_pending)
    pending.append((witness, entry))


def _write_pending(sync: Session) -> None:
    pending = sync.info.get(_PENDING) or []
    while pending:
        witness, entry = pending.pop(0)
        try:
            witness.append(entry)
        except OSError:
            # The event is committed and signed; only its outside copy is missing, and the next
            # checkpoint covers it. Failing the request now would not undo the commit.
            log.exception(
                "audit witness: could not write the checkpoint of chain %s at event %s to %s",
                entry["chain"], entry["seq"], witness.path,
            )  # fmt: skip


def _drop_pending(sync: Session) -> None:
    pending = sync.info.get(_PENDING)
    if pending:
        pending.clear()


def _entry(path: Path, number: int, chain: str, raw: bytes) -> dict[str, Any]:
    where = f"{path}: line {number}"
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise WitnessInvalid(f"{where} is not JSON: {exc}") from exc
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise WitnessInvalid(f"{where} is not a witness entry ({FORMAT})")
    if obj.get("chain") != chain:
        raise WitnessInvalid(f"{where} belongs to chain {obj.get('chain')!r}, not {chain}")
    seq, digest = obj.get("seq"), obj.get("hash")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise WitnessInvalid(f"{where} has no valid seq")
    if not isinstance(digest, str) or not _HEX64.match(digest):
        raise WitnessInvalid(f"{where} has no valid hash")
    if not isinstance(obj.get("signed_at"), str) or not isinstance(obj.get("signature"), str):
        raise WitnessInvalid(f"{where} is not signed")
    head = obj.get("head")
    if head is not None and not (
        isinstance(head, dict)
        and isinstance(head.get("signed_at"), str)
        and isinstance(head.get("signature"), str)
    ):
        raise WitnessInvalid(f"{where} has a malformed head")
    return obj


def read_witness(
    directories: Iterable[Path], *, chains: Iterable[str] | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Every entry of every chain file (or of the given chains') in the given directories
    (several nodes may keep one each), by chain. Files that are not ``<chain>.jsonl`` are left
    alone (a volume root may hold ``lost+found``); a chain file that does not parse fails
    naming its line."""
    wanted = set(chains) if chains is not None else None
    entries: dict[str, list[dict[str, Any]]] = {}
    for directory in directories:
        if not directory.is_dir():
            raise WitnessInvalid(f"no witness directory at {directory}")
        for path in sorted(directory.iterdir()):
            if path.suffix != ".jsonl":
                continue
            match = _FILE_NAME.match(path.name)
            if match is None:
                raise WitnessInvalid(f"{path}: not named after a chain (<org id hex>.jsonl)")
            chain = match.group(1)
            if wanted is not None and chain not in wanted:
                continue
            found = entries.setdefault(chain, [])
            with path.open("rb") as fh:
                for number, raw in enumerate(fh, start=1):
                    if raw.strip():
                        found.append(_entry(path, number, chain, raw))
    return entries
