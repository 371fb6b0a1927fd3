"""Recording audit events: appends, signed heads, checkpoints (reading them back: reading.py).

``record`` joins the caller's transaction, so an audit event exists exactly when the state change
it describes was committed. Writers of one chain are serialised by the chain's head row
(``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so concurrent requests
never fork a chain.

Every append signs the new head in the same transaction; every checkpoint is also handed to the
witness (``witness.py``) once its transaction commits.
"""

from __future__ import annotations

import logging
import sqlite3
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from auxilio.server.audit.actions import AuditAction
from auxilio.server.audit.chain import (
    GENESIS_HASH,
    chain_hash,
    format_time,
    head_signature_ok,
    sign_checkpoint,
    sign_head,
)
from auxilio.server.audit.chain import chain_for as chain_for  # where callers import it from
from auxilio.server.audit.errors import AuditHeadInvalid
from auxilio.server.audit.models import AuditCheckpoint, AuditEvent, AuditHead
from auxilio.server.audit.reading import stored_time
from auxilio.server.audit.witness import DirectoryWitness, witness_after_commit
from auxilio.server.context import Actor, current_request
from auxilio.server.db.base import utcnow
from auxilio.server.db.sqlite_inline import sqlite3_connection
from auxilio.server.settings import Settings


@dataclass(frozen=True, slots=True)
class AuditSigner:
    """The server's head and checkpoint signer, and the witness its checkpoints go to; lives in
    ``db.info["audit_signer"]``."""

    key: Ed25519PrivateKey
    key_id: str
    every: int
    witness: DirectoryWitness | None = None
    # The head this process last wrote, per chain: a head found as it was left needs no
    # signature check on the next append; any other head (another process's, or a rewritten
    # one) is checked before anything is appended to it.
    heads: dict[str, tuple[int, str]] = field(default_factory=dict)
    public_key: Ed25519PublicKey = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "public_key", self.key.public_key())


def make_audit_signer(settings: Settings, key: Ed25519PrivateKey) -> AuditSigner:
    """The signer for a server or CLI process: the settings' checkpoint rule and witness."""
    from auxilio.server.keys import key_id

    return AuditSigner(
        key=key,
        key_id=key_id(key.public_key()),
        every=settings.audit_checkpoint_every,
        witness=DirectoryWitness(settings.audit_witness_path),
    )


log = logging.getLogger("auxilio.audit")


_EVENTS = cast(Table, AuditEvent.__table__)
_HEADS = cast(Table, AuditHead.__table__)
_CHECKPOINTS = cast(Table, AuditCheckpoint.__table__)

# Built once with bound parameters: building statements per call (value coercion, cache keys)
# cost more than executing them.
_SELECT_HEAD = (
    select(_HEADS.c.seq, _HEADS.c.hash, _HEADS.c.updated_at, _HEADS.c.signature)
    .where(_HEADS.c.chain == bindparam("chain"))
    .with_for_update()
)
_INSERT_EVENT = _EVENTS.insert()
_UPDATE_HEAD = (
    update(_HEADS)
    .where(_HEADS.c.chain == bindparam("head_chain"))
    .values(
        seq=bindparam("head_seq"),
        hash=bindparam("head_hash"),
        updated_at=bindparam("head_updated_at"),
        key_id=bindparam("head_key_id"),
        signature=bindparam("head_signature"),
    )
)
_INSERT_CHECKPOINT = _CHECKPOINTS.insert()


# A head as read for an append: seq, hash, signed_at (canonical text), signature.
_Head = tuple[int, str, str, str | None]


async def _lock_head(conn: AsyncConnection, chain: str) -> _Head:
    """The chain's head, locked until the transaction ends (FOR UPDATE on PostgreSQL;
    SQLite transactions begin IMMEDIATE, which already holds the write lock)."""
    row = (await conn.execute(_SELECT_HEAD, {"chain": chain})).first()
    if row is None:
        values = {"chain": chain, "seq": 0, "hash": GENESIS_HASH, "updated_at": utcnow()}
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        await conn.execute(insert(_HEADS).values(values).on_conflict_do_nothing())
        row = (await conn.execute(_SELECT_HEAD, {"chain": chain})).one()
    return int(row[0]), str(row[1]), format_time(row[2]), row[3]


def _check_head(signer: AuditSigner, chain: str, head: _Head) -> None:
    """Refuse to append to a head this server did not sign (see ``AuditSigner.heads``).

    A new chain starts at seq 0, unsigned. A whole chain deleted and restarted that way is
    caught by verify (its organisation's events reappear from 1 against the checkpoints and
    the witness), not here.
    """
    seq, digest, signed_at, signature = head
    if seq == 0 or signer.heads.get(chain) == (seq, digest):
        return
    signed = {"seq": seq, "hash": digest, "signed_at": signed_at, "signature": signature}
    if not head_signature_ok(signer.public_key, chain, signed):
        log.critical(
            "audit chain %s: the head (event %s) is not signed by this server; refusing to "
            "append until `auxilio audit verify` has been run", chain, seq,
        )  # fmt: skip
        raise AuditHeadInvalid(chain=chain, seq=seq)


# The same three statements in plain SQL, for SQLite's inline driver (see _append_sqlite).
_SQLITE_SELECT_HEAD = "SELECT seq, hash, updated_at, signature FROM audit_heads WHERE chain = ?"
_SQLITE_INSERT_HEAD = (
    "INSERT INTO audit_heads (chain, seq, hash, updated_at) VALUES (?, 0, ?, ?) "
    "ON CONFLICT (chain) DO NOTHING"
)
_SQLITE_INSERT_EVENT = (
    "INSERT INTO audit_events (chain, seq, occurred_at, organisation_id, actor_id, actor_name, "
    "client_addr, action, target_type, target_id, request_id, details, prev_hash, hash) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SQLITE_UPDATE_HEAD = (
    "UPDATE audit_heads SET seq = ?, hash = ?, updated_at = ?, key_id = ?, signature = ? "
    "WHERE chain = ?"
)


def _sqlite_time(value: datetime) -> str:
    # What SQLAlchemy's SQLite DateTime stores: naive UTC, always six fractional digits.
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _sqlite_head(raw: sqlite3.Connection, chain: str) -> _Head:
    # The transaction began IMMEDIATE: this connection already holds SQLite's write lock.
    row = raw.execute(_SQLITE_SELECT_HEAD, (chain,)).fetchone()
    if row is None:
        raw.execute(_SQLITE_INSERT_HEAD, (chain, GENESIS_HASH, _sqlite_time(utcnow())))
        row = raw.execute(_SQLITE_SELECT_HEAD, (chain,)).fetchone()
    return int(row[0]), str(row[1]), stored_time(row[2]), row[3]


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    chain: str
    seq: int
    hash: str


async def record(
    db: AsyncSession,
    *,
    action: AuditAction,
    actor: Actor,
    organisation_id: uuid.UUID | None = None,
    target_type: str | None = None,
    target_id: uuid.UUID | str | None = None,
    details: Mapping[str, Any] | None = None,
) -> RecordedEvent:
    """Append one event to the organisation's chain inside the caller's transaction.

    Core statements, not the ORM: this runs with every state change, and the unit of work
    would cost more than the write itself.
    """
    org = organisation_id if organisation_id is not None else actor.organisation_id
    chain = chain_for(org)
    conn = await db.connection()
    signer: AuditSigner | None = db.info.get("audit_signer")
    if signer is None:
        # Every append signs its head: an unsigned one would fail verify, and the next append.
        raise RuntimeError("audit: the sessionmaker has no audit_signer (make_audit_signer)")
    raw = sqlite3_connection((await conn.get_raw_connection()).driver_connection)
    head = _sqlite_head(raw, chain) if raw is not None else await _lock_head(conn, chain)
    _check_head(signer, chain, head)
    seq, prev_hash = head[0] + 1, head[1]
    request = current_request()
    occurred_at = utcnow()
    fields: dict[str, Any] = {
        "chain": chain,
        "seq": seq,
        "occurred_at": format_time(occurred_at),
        "organisation_id": org.hex if org else None,
        "actor_id": actor.id.hex if actor.id else None,
        "actor_name": actor.display_name,
        "client_addr": request.client_addr,
        "action": str(action),
        "target_type": target_type,
        "target_id": target_id.hex if isinstance(target_id, uuid.UUID) else target_id,
        "request_id": request.request_id,
        # Round trip through orjson so that what is stored is exactly what is hashed.
        "details": orjson.loads(orjson.dumps(dict(details or {}), default=str)),
    }
    digest = chain_hash(prev_hash, fields)
    # The head is signed with the event's own time, so verify can recheck it from the row.
    head_key_id = signer.key_id
    head_signature = sign_head(signer.key, chain, seq, digest, fields["occurred_at"])
    if raw is not None:
        # SQLAlchemy costs ~100 µs a statement; on SQLite the three statements run directly on
        # the connection of the transaction it began, in exactly the formats it stores
        # (naive UTC text times, 32-hex UUIDs, JSON text). docs/adr/0002.
        raw.execute(
            _SQLITE_INSERT_EVENT,
            (chain, seq, _sqlite_time(occurred_at), fields["organisation_id"], fields["actor_id"],
             fields["actor_name"], fields["client_addr"], fields["action"], target_type,
             fields["target_id"], fields["request_id"], orjson.dumps(fields["details"]).decode(),
             prev_hash, digest),
        )  # fmt: skip
        raw.execute(
            _SQLITE_UPDATE_HEAD,
            (seq, digest, _sqlite_time(occurred_at), head_key_id, head_signature, chain),
        )
    else:
        await conn.execute(
            _INSERT_EVENT,
            {
                **fields,
                "occurred_at": occurred_at,
                "organisation_id": org,
                "actor_id": actor.id,
                "prev_hash": prev_hash,
                "hash": digest,
            },
        )
        await conn.execute(
            _UPDATE_HEAD,
            {"head_chain": chain, "head_seq": seq, "head_hash": digest,
             "head_updated_at": occurred_at, "head_key_id": head_key_id,
             "head_signature": head_signature},
        )  # fmt: skip
    signer.heads[chain] = (seq, digest)
    if seq % signer.every == 0:
        signed = {"signed_at": fields["occurred_at"], "key_id": head_key_id,
                  "signature": head_signature}  # fmt: skip
        await _add_checkpoint(db, signer, chain, seq, digest, occurred_at, signed)
    return RecordedEvent(chain=chain, seq=seq, hash=digest)


async def _add_checkpoint(
    db: AsyncSession,
    signer: AuditSigner,
    chain: str,
    seq: int,
    digest: str,
    at: datetime,
    head: Mapping[str, Any] | None,
) -> None:
    """Sign a checkpoint in ``db``'s transaction; the witness gets it (and the signed head at
    that seq) after the commit."""
    signed_at = format_time(at)
    signature = sign_checkpoint(signer.key, chain, seq, digest, signed_at)
    row = {"chain": chain, "seq": seq, "hash": digest, "key_id": signer.key_id,
           "signature": signature}  # fmt: skip
    await db.execute(_INSERT_CHECKPOINT, {**row, "signed_at": at})
    if signer.witness is not None:
        witness_after_commit(db, signer.witness, {**row, "signed_at": signed_at, "head": head})


async def checkpoint_stale_chains(db: AsyncSession, *, signer: AuditSigner) -> int:
    """Sign the head of every chain that moved since its last checkpoint (the T-seconds rule)."""
    signed = 0
    heads = (await db.execute(select(AuditHead).where(AuditHead.seq > 0))).scalars().all()
    for head in heads:
        last = (
            await db.execute(
                select(AuditCheckpoint.seq)
                .where(AuditCheckpoint.chain == head.chain)
                .order_by(AuditCheckpoint.seq.desc())
                .limit(1)
            )
        ).scalar_one_or_none()
        if last is not None and last >= head.seq:
            continue
        signed_head = {
            "seq": head.seq,
            "hash": head.hash,
            "signed_at": format_time(head.updated_at),
            "key_id": head.key_id,
            "signature": head.signature,
        }
        if not head_signature_ok(signer.public_key, head.chain, signed_head):
            # A checkpoint would vouch for a head the server never wrote.
            log.critical("audit chain %s: the head (event %s) is not signed by this server; "
                         "not checkpointed", head.chain, head.seq)  # fmt: skip
            continue
        await _add_checkpoint(db, signer, head.chain, head.seq, head.hash, utcnow(), signed_head)
        signed += 1
    return signed
