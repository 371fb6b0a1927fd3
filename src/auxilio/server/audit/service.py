"""Recording, listing, exporting and verifying audit events.

``record`` joins the caller's transaction, so an audit event exists exactly when the state change
it describes was committed. Writers of one chain are serialised by the chain's head row
(``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so concurrent requests
never fork a chain.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from auxilio.server.audit.actions import AuditAction
from auxilio.server.audit.chain import (
    GENESIS_HASH,
    SYSTEM_CHAIN,
    ChainReport,
    ChainVerifier,
    chain_hash,
    format_time,
    sign_checkpoint,
)
from auxilio.server.audit.models import AuditCheckpoint, AuditEvent, AuditHead
from auxilio.server.context import Actor, current_request
from auxilio.server.db.base import utcnow


@dataclass(frozen=True, slots=True)
class AuditSigner:
    """The server's checkpoint signer; lives in ``db.info["audit_signer"]``."""

    key: Ed25519PrivateKey
    key_id: str
    every: int


def chain_for(organisation_id: uuid.UUID | None) -> str:
    return organisation_id.hex if organisation_id is not None else SYSTEM_CHAIN


def _json_safe(value: Any) -> Any:
    # Round trip through orjson so that what is stored is exactly what is hashed.
    return orjson.loads(orjson.dumps(value, default=str))


async def _lock_head(db: AsyncSession, chain: str) -> AuditHead:
    head = (
        await db.execute(select(AuditHead).where(AuditHead.chain == chain).with_for_update())
    ).scalar_one_or_none()
    if head is not None:
        return head
    values = {"chain": chain, "seq": 0, "hash": GENESIS_HASH, "updated_at": utcnow()}
    dialect = db.bind.dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    await db.execute(insert(AuditHead).values(values).on_conflict_do_nothing())
    return (
        await db.execute(select(AuditHead).where(AuditHead.chain == chain).with_for_update())
    ).scalar_one()


async def record(
    db: AsyncSession,
    *,
    action: AuditAction,
    actor: Actor,
    organisation_id: uuid.UUID | None = None,
    target_type: str | None = None,
    target_id: uuid.UUID | str | None = None,
    details: Mapping[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the organisation's chain inside the caller's transaction."""
    org = organisation_id if organisation_id is not None else actor.organisation_id
    chain = chain_for(org)
    head = await _lock_head(db, chain)
    request = current_request()
    occurred_at = utcnow()
    fields: dict[str, Any] = {
        "chain": chain,
        "seq": head.seq + 1,
        "occurred_at": format_time(occurred_at),
        "organisation_id": org.hex if org else None,
        "actor_id": actor.id.hex if actor.id else None,
        "actor_name": actor.display_name,
        "client_addr": request.client_addr,
        "action": str(action),
        "target_type": target_type,
        "target_id": target_id.hex if isinstance(target_id, uuid.UUID) else target_id,
        "request_id": request.request_id,
        "details": _json_safe(dict(details or {})),
    }
    digest = chain_hash(head.hash, fields)
    event = AuditEvent(
        chain=chain,
        seq=fields["seq"],
        occurred_at=occurred_at,
        organisation_id=org,
        actor_id=actor.id,
        actor_name=fields["actor_name"],
        client_addr=fields["client_addr"],
        action=fields["action"],
        target_type=target_type,
        target_id=fields["target_id"],
        request_id=fields["request_id"],
        details=fields["details"],
        prev_hash=head.hash,
        hash=digest,
    )
    db.add(event)
    head.seq = event.seq
    head.hash = digest
    head.updated_at = occurred_at
    signer: AuditSigner | None = db.info.get("audit_signer")
    if signer is not None and event.seq % signer.every == 0:
        db.add(_checkpoint(signer, chain, event.seq, digest, occurred_at))
    await db.flush()
    return event


def _checkpoint(
    signer: AuditSigner, chain: str, seq: int, digest: str, at: datetime
) -> AuditCheckpoint:
    signed_at = format_time(at)
    return AuditCheckpoint(
        chain=chain,
        seq=seq,
        hash=digest,
        signed_at=at,
        key_id=signer.key_id,
        signature=sign_checkpoint(signer.key, chain, seq, digest, signed_at),
    )


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
        if last is None or last < head.seq:
            db.add(_checkpoint(signer, head.chain, head.seq, head.hash, utcnow()))
            signed += 1
    await db.flush()
    return signed


def event_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored row (ORM or Core mapping) as the plain dict that is hashed and exported."""

    def _hex(value: Any) -> str | None:
        return value.hex if isinstance(value, uuid.UUID) else value

    return {
        "chain": row["chain"],
        "seq": row["seq"],
        "occurred_at": format_time(row["occurred_at"]),
        "organisation_id": _hex(row["organisation_id"]),
        "actor_id": _hex(row["actor_id"]),
        "actor_name": row["actor_name"],
        "client_addr": row["client_addr"],
        "action": row["action"],
        "target_type": row["target_type"],
        "target_id": row["target_id"],
        "request_id": row["request_id"],
        "details": row["details"],
        "prev_hash": row["prev_hash"],
        "hash": row["hash"],
    }


def checkpoint_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "chain": row["chain"],
        "seq": row["seq"],
        "hash": row["hash"],
        "signed_at": format_time(row["signed_at"]),
        "key_id": row["key_id"],
        "signature": row["signature"],
    }


_EVENT_COLUMNS = [c for c in AuditEvent.__table__.c if c.name != "id"]


async def list_chains(conn: AsyncConnection | AsyncSession) -> list[str]:
    rows = await conn.execute(select(AuditHead.chain).order_by(AuditHead.chain))
    return [r[0] for r in rows]


async def iter_events(
    conn: AsyncConnection, chain: str, *, batch: int = 5000
) -> AsyncIterator[dict[str, Any]]:
    """All events of a chain in seq order, streamed in batches (keyset pagination)."""
    after = 0
    while True:
        rows = (
            await conn.execute(
                select(*_EVENT_COLUMNS)
                .where(AuditEvent.chain == chain, AuditEvent.seq > after)
                .order_by(AuditEvent.seq)
                .limit(batch)
            )
        ).mappings().all()
        if not rows:
            return
        for row in rows:
            yield event_dict(row)
        after = rows[-1]["seq"]


async def load_checkpoints(conn: AsyncConnection, chain: str) -> list[dict[str, Any]]:
    cp = AuditCheckpoint
    rows = (
        await conn.execute(
            select(cp.chain, cp.seq, cp.hash, cp.signed_at, cp.key_id, cp.signature)
            .where(cp.chain == chain)
            .order_by(cp.seq)
        )
    ).mappings().all()
    return [checkpoint_dict(r) for r in rows]


async def load_head(conn: AsyncConnection, chain: str) -> dict[str, Any] | None:
    row = (
        await conn.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.chain == chain))
    ).first()
    return {"seq": row[0], "hash": row[1]} if row else None


async def verify_database(
    conn: AsyncConnection, *, public_key: Ed25519PublicKey | None, chains: Iterable[str] | None = None
) -> list[ChainReport]:
    """Verify every chain (or the given ones) straight from the database."""
    reports = []
    for chain in chains if chains is not None else await list_chains(conn):
        verifier = ChainVerifier(
            chain, public_key=public_key, checkpoints=await load_checkpoints(conn, chain)
        )
        async for event in iter_events(conn, chain):
            if not verifier.feed(event):
                break
        reports.append(verifier.finish(head=await load_head(conn, chain)))
    return reports
