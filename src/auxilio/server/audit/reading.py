"""Reading chains back: which chains exist, their events (streamed), checkpoints and heads, and
``verify_database``.

Chains are found from the events, heads, checkpoints, the organisations and the witness, not from
``audit_heads`` alone, so that a deleted head row or a deleted chain cannot hide from verify.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from auxilio.server.audit.chain import ChainReport, ChainVerifier, chain_for, format_time
from auxilio.server.audit.models import AuditCheckpoint, AuditEvent, AuditHead
from auxilio.server.identity.models import Organisation


def _checkpoint_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "chain": row["chain"],
        "seq": row["seq"],
        "hash": row["hash"],
        "signed_at": format_time(row["signed_at"]),
        "key_id": row["key_id"],
        "signature": row["signature"],
    }


async def discover_chains(
    conn: AsyncConnection | AsyncSession, *, also: Iterable[str] = ()
) -> dict[str, str | None]:
    """Every chain that exists or should: any chain with events, a head or checkpoints, every
    organisation's (which at least recorded its creation), and ``also`` (the witness's). Maps
    each chain to its organisation's slug where the organisation still exists."""
    found: dict[str, str | None] = dict.fromkeys(also)
    for table in (AuditEvent.__table__, AuditHead.__table__, AuditCheckpoint.__table__):
        # DISTINCT over the (chain, seq) unique index: no table scan on either database.
        found.update(
            dict.fromkeys(r[0] for r in await conn.execute(select(table.c.chain).distinct()))
        )
    for org_id, slug in await conn.execute(select(Organisation.id, Organisation.slug)):
        found[chain_for(org_id)] = slug
    return dict(sorted(found.items()))


async def list_chains(conn: AsyncConnection | AsyncSession) -> list[str]:
    return list(await discover_chains(conn))


_RAW_EVENTS = text(
    "SELECT chain, seq, occurred_at, organisation_id, actor_id, actor_name, client_addr, action, "
    "target_type, target_id, request_id, details, prev_hash, hash FROM audit_events "
    "WHERE chain = :chain AND seq > :after ORDER BY seq LIMIT :limit"
)


# PostgreSQL formats the values as the canonical text itself: building datetime, UUID and JSON
# objects per row only for the verifier to format them back cost three quarters of the time.
_RAW_EVENTS_PG = text(
    "SELECT chain, seq, "
    'to_char(occurred_at, \'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\'), '
    "replace(organisation_id::text, '-', ''), replace(actor_id::text, '-', ''), "
    "actor_name, client_addr, action, target_type, target_id, request_id, details::text, "
    "prev_hash, hash FROM audit_events "
    "WHERE chain = :chain AND seq > :after ORDER BY seq LIMIT :limit"
)


def stored_time(value: Any) -> str:
    """A time column as read without its type (text on SQLite, formatted by PostgreSQL in
    ``_RAW_EVENTS_PG``, or a datetime) in the canonical form."""
    if isinstance(value, datetime):
        return format_time(value.replace(tzinfo=UTC) if value.tzinfo is None else value)
    text_value = str(value)
    if text_value.endswith("Z"):
        return text_value  # formatted by PostgreSQL already (_RAW_EVENTS_PG)
    # SQLite keeps "YYYY-MM-DD HH:MM:SS.ffffff" (naive UTC, always six digits).
    return (
        f"{text_value[:10]}T{text_value[11:]}Z"
        if "." in text_value
        else f"{text_value[:10]}T{text_value[11:]}.000000Z"
    )


def _raw_id(value: Any) -> str | None:
    if value is None:
        return None
    return value.hex if isinstance(value, uuid.UUID) else str(value).replace("-", "")


async def iter_events(
    conn: AsyncConnection, chain: str, *, batch: int = 5000
) -> AsyncIterator[dict[str, Any]]:
    """All events of a chain in seq order, streamed in batches (keyset pagination).

    Reads untyped rows: the column types would parse times, UUIDs and JSON only for the
    verifier to format them back, which costs more than the hashing itself.
    """
    after = 0
    loads = orjson.loads
    query = _RAW_EVENTS_PG if conn.dialect.name == "postgresql" else _RAW_EVENTS
    while True:
        rows = (await conn.execute(query, {"chain": chain, "after": after, "limit": batch})).all()
        if not rows:
            return
        for row in rows:
            details = row[11]
            yield {
                "chain": row[0],
                "seq": row[1],
                "occurred_at": stored_time(row[2]),
                "organisation_id": _raw_id(row[3]),
                "actor_id": _raw_id(row[4]),
                "actor_name": row[5],
                "client_addr": row[6],
                "action": row[7],
                "target_type": row[8],
                "target_id": row[9],
                "request_id": row[10],
                "details": loads(details) if isinstance(details, str | bytes) else details,
                "prev_hash": row[12],
                "hash": row[13],
            }
        after = rows[-1][1]


async def load_checkpoints(conn: AsyncConnection, chain: str) -> list[dict[str, Any]]:
    cp = AuditCheckpoint
    rows = (
        (
            await conn.execute(
                select(cp.chain, cp.seq, cp.hash, cp.signed_at, cp.key_id, cp.signature)
                .where(cp.chain == chain)
                .order_by(cp.seq)
            )
        )
        .mappings()
        .all()
    )
    return [_checkpoint_dict(dict(r)) for r in rows]


async def load_head(conn: AsyncConnection, chain: str) -> dict[str, Any] | None:
    h = AuditHead
    row = (
        await conn.execute(
            select(h.seq, h.hash, h.updated_at, h.key_id, h.signature).where(h.chain == chain)
        )
    ).first()
    if row is None:
        return None
    return {"seq": row[0], "hash": row[1], "signed_at": format_time(row[2]), "key_id": row[3],
            "signature": row[4]}  # fmt: skip


async def verify_database(
    conn: AsyncConnection,
    *,
    public_key: Ed25519PublicKey | None,
    chains: Iterable[str] | None = None,
    witness: Mapping[str, list[dict[str, Any]]] | None = None,
) -> list[ChainReport]:
    """Verify every chain (or the given ones) straight from the database, against the witness
    entries (by chain, from ``witness.read_witness``) when given."""
    seen = witness or {}
    if chains is None:
        found = await discover_chains(conn, also=seen)
    else:
        # Only the organisations' names: discovering every chain would scan the events' index.
        orgs = await conn.execute(select(Organisation.id, Organisation.slug))
        found = {chain_for(org_id): slug for org_id, slug in orgs}
    reports = []
    for chain in chains if chains is not None else found:
        verifier = ChainVerifier(
            chain,
            public_key=public_key,
            checkpoints=await load_checkpoints(conn, chain),
            witness=seen.get(chain, ()),
        )
        async for event in iter_events(conn, chain):
            if not verifier.feed(event):
                break
        report = verifier.finish(head=await load_head(conn, chain))
        report.organisation = found.get(chain)
        reports.append(report)
    return reports
