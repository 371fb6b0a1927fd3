"""Audit chain benchmark: append events/s (a commit per event, and batched) and verify events/s,
on SQLite and (when AUXILIO_BENCH_POSTGRES_URL is set) PostgreSQL.

Every append signs the chain's head (Ed25519) and every 1000th writes a checkpoint to a witness
directory (fsync'd), as the server does.

References measured in the same run, on the same database:
  - append: a plain INSERT of a row of the same width, committed the same way (no chain), and
    the append without the head signature (the path before issue 7: ``sign_head`` replaced by
    a constant, the same statements otherwise)
  - verify: SHA-256 over the same canonical bytes alone (the floor any hash chain pays), and
    verify without the witness
Goals: verify >= 130,000 events/s (issue 2); append >= 2,500 events/s committing each on SQLite
with the signed head (issue 7).

    .venv/bin/python bench/bench_audit.py [--events 3000] [--verify-events 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from auxilio.server.audit import service
from auxilio.server.audit.actions import AuditAction
from auxilio.server.audit.chain import (
    GENESIS_HASH,
    ChainReport,
    ChainVerifier,
    canonical,
    chain_hash,
    format_time,
    sign_checkpoint,
    sign_head,
)
from auxilio.server.audit.export import export_chain, verify_export
from auxilio.server.audit.models import AuditCheckpoint, AuditEvent, AuditHead
from auxilio.server.audit.reading import verify_database
from auxilio.server.audit.service import AuditSigner, chain_for, record
from auxilio.server.audit.witness import DirectoryWitness, read_witness
from auxilio.server.context import Actor
from auxilio.server.db.engine import create_engine, create_sessionmaker
from auxilio.server.db.migrate import downgrade, upgrade
from auxilio.server.keys import key_id
from auxilio.server.settings import load_settings

KEY = Ed25519PrivateKey.generate()


def rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else float("inf")


def synthetic_chain(n: int, chain: str, org_hex: str) -> list[dict[str, Any]]:
    events, prev = [], GENESIS_HASH
    for seq in range(1, n + 1):
        event = {
            "chain": chain,
            "seq": seq,
            # Distinct, increasing times: 1 ms apart.
            "occurred_at": f"2026-11-24T{seq // 3_600_000 % 24:02d}:{seq // 60_000 % 60:02d}:"
            f"{seq // 1000 % 60:02d}.{seq % 1000:03d}456Z",
            "organisation_id": org_hex,
            "actor_id": None,
            "actor_name": "Ana López",
            "client_addr": "198.51.100.7",
            "action": "ticket:status:changed",
            "target_type": "ticket",
            "target_id": str(seq),
            "request_id": "ef" * 16,
            "details": {"from": "open", "to": "resolved"},
            "prev_hash": prev,
        }
        event["hash"] = prev = chain_hash(prev, event)
        events.append(event)
    return events


async def bench_backend(
    url: str, data_dir: Path, events: int, verify_events: int
) -> dict[str, Any]:
    settings = load_settings(data_dir=data_dir, database_url=url)
    engine = create_engine(settings)
    maker = create_sessionmaker(engine)
    witness = DirectoryWitness(data_dir / "witness")
    signer = AuditSigner(KEY, key_id(KEY.public_key()), 1000, witness=witness)
    maker.configure(info={"audit_signer": signer})
    org = uuid.uuid4()
    actor = Actor(id=uuid.uuid4(), display_name="bench technician", organisation_id=org)
    details = {"from": "open", "to": "resolved", "ticket": 1234}

    async with engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE TABLE IF NOT EXISTS bench_plain (id INTEGER PRIMARY KEY, "
                "actor VARCHAR(200), action VARCHAR(80), details TEXT)"
            )
        )

    # Reference: a plain insert, one commit each.
    start = time.perf_counter()
    for i in range(events):
        async with maker() as db, db.begin():
            await db.execute(
                text(
                    "INSERT INTO bench_plain (id, actor, action, details) VALUES (:i, :a, :b, :d)"
                ),
                {"i": i, "a": actor.display_name, "b": "x", "d": json.dumps(details)},
            )
    plain_each = rate(events, time.perf_counter() - start)

    async def append_each_committed(chain_org: uuid.UUID) -> float:
        who = Actor(id=actor.id, display_name=actor.display_name, organisation_id=chain_org)
        start = time.perf_counter()
        for _ in range(events):
            async with maker() as db, db.begin():
                await record(
                    db,
                    action=AuditAction.TICKET_STATUS_CHANGED,
                    actor=who,
                    target_type="ticket",
                    target_id="1234",
                    details=details,
                )
        return rate(events, time.perf_counter() - start)

    # The reference first, on a chain of its own: the same append with the head left unsigned.
    unsigned_org = uuid.uuid4()
    service.sign_head = lambda *_args: "unsigned"  # type: ignore[assignment]
    try:
        append_unsigned = await append_each_committed(unsigned_org)
    finally:
        service.sign_head = sign_head
    append_each = await append_each_committed(org)

    batch = 100
    start = time.perf_counter()
    for _ in range(events // batch):
        async with maker() as db, db.begin():
            for _ in range(batch):
                await record(
                    db,
                    action=AuditAction.TICKET_STATUS_CHANGED,
                    actor=actor,
                    target_type="ticket",
                    target_id="1234",
                    details=details,
                )
    append_batched = rate(events // batch * batch, time.perf_counter() - start)

    async with engine.connect() as conn:
        [report] = await verify_database(
            conn,
            public_key=KEY.public_key(),
            chains=[chain_for(org)],
            witness=read_witness([witness.path]),
        )
    assert report.ok, report.broken  # a broken chain would make every figure meaningless
    assert report.witnessed == report.checkpoints

    # Verification over a long chain: bulk-load a precomputed chain, then verify it from the
    # database and from an export file.
    big = uuid.uuid4()
    rows = [
        {
            **e,
            "occurred_at": datetime.fromisoformat(e["occurred_at"].replace("Z", "+00:00")),
            "organisation_id": big,
        }
        for e in synthetic_chain(verify_events, chain_for(big), big.hex)
    ]
    async with engine.begin() as conn:
        for i in range(0, len(rows), 10_000):
            await conn.execute(AuditEvent.__table__.insert(), rows[i : i + 10_000])
    big_witness = DirectoryWitness(data_dir / "big-witness")
    await _sign_loaded_chain(engine, chain_for(big), rows, big_witness)

    async def timed_verify(with_witness: bool) -> tuple[float, ChainReport]:
        start = time.perf_counter()
        async with engine.connect() as conn:
            [found] = await verify_database(
                conn,
                public_key=KEY.public_key(),
                chains=[chain_for(big)],
                witness=read_witness([big_witness.path]) if with_witness else None,
            )
        return time.perf_counter() - start, found

    # Best of two rounds, alternating: the first read of the table warms the page cache.
    rounds = [await timed_verify(w) for w in (False, True, False, True)]
    verify_db_seconds = min(t for t, _ in rounds[0::2])
    verify_witness_seconds = min(t for t, _ in rounds[1::2])
    big_report, witnessed_report = rounds[0][1], rounds[1][1]
    assert big_report.ok, big_report.broken
    assert witnessed_report.ok and witnessed_report.witnessed == verify_events // 1000
    export = io.BytesIO()
    async with engine.connect() as conn:
        await export_chain(conn, chain_for(big), export, public_key=KEY.public_key())
    start = time.perf_counter()
    [file_report] = verify_export(export.getvalue().splitlines(), public_key=KEY.public_key())
    verify_file_seconds = time.perf_counter() - start
    assert file_report.ok and file_report.events == verify_events
    await engine.dispose()
    return {
        "append_commit_each_events_per_s": append_each,
        "append_batched_100_events_per_s": append_batched,
        "reference_unsigned_head_commit_each_events_per_s": append_unsigned,
        "signed_vs_unsigned_head_ratio": round(append_each / append_unsigned, 3),
        "reference_plain_insert_commit_each_rows_per_s": plain_each,
        "append_vs_plain_insert_ratio": round(append_each / plain_each, 3),
        "verify_from_database_events_per_s": rate(verify_events, verify_db_seconds),
        "verify_from_database_with_witness_events_per_s": rate(
            verify_events, verify_witness_seconds
        ),
        "witness_entries": verify_events // 1000,
        "verify_export_file_events_per_s": rate(verify_events, verify_file_seconds),
        "verified_events": verify_events,
    }


async def _sign_loaded_chain(
    engine: Any, chain: str, rows: list[dict[str, Any]], witness: DirectoryWitness
) -> None:
    """Head, checkpoints every 1000 events and their witness entries for a bulk-loaded chain,
    as the server would have written them."""
    checkpoints = []
    for row in rows[999::1000]:
        at = format_time(row["occurred_at"])
        signature = sign_checkpoint(KEY, chain, row["seq"], row["hash"], at)
        checkpoints.append(
            {"chain": chain, "seq": row["seq"], "hash": row["hash"],
             "signed_at": row["occurred_at"], "key_id": key_id(KEY.public_key()),
             "signature": signature}
        )  # fmt: skip
        head = {"signed_at": at, "signature": sign_head(KEY, chain, row["seq"], row["hash"], at)}
        witness.append({**checkpoints[-1], "signed_at": at, "head": head})
    last = rows[-1]
    at = format_time(last["occurred_at"])
    async with engine.begin() as conn:
        await conn.execute(AuditCheckpoint.__table__.insert(), checkpoints)
        await conn.execute(
            AuditHead.__table__.insert(),
            {"chain": chain, "seq": last["seq"], "hash": last["hash"],
             "updated_at": last["occurred_at"], "key_id": key_id(KEY.public_key()),
             "signature": sign_head(KEY, chain, last["seq"], last["hash"], at)},
        )  # fmt: skip


def bench_verify_in_memory(n: int) -> dict[str, Any]:
    events, prev = [], GENESIS_HASH
    for seq in range(1, n + 1):
        event = {
            "chain": "c",
            "seq": seq,
            "occurred_at": "2026-11-24T10:00:00.123456Z",
            "organisation_id": "ab" * 16,
            "actor_id": "cd" * 16,
            "actor_name": "Ana López",
            "client_addr": "198.51.100.7",
            "action": "ticket:status:changed",
            "target_type": "ticket",
            "target_id": str(seq),
            "request_id": "ef" * 16,
            "details": {"from": "open", "to": "resolved"},
            "prev_hash": prev,
        }
        event["hash"] = prev = chain_hash(prev, event)
        events.append(event)
    start = time.perf_counter()
    verifier = ChainVerifier("c", public_key=None)
    for event in events:
        verifier.feed(event)
    seconds = time.perf_counter() - start
    last = events[-1]
    at = last["occurred_at"]
    head = {"seq": n, "hash": last["hash"], "signed_at": at,
            "signature": sign_head(KEY, "c", n, last["hash"], at)}  # fmt: skip
    assert verifier.finish(head=head).ok
    blobs = [bytes.fromhex(e["prev_hash"]) + canonical(e) for e in events]
    start = time.perf_counter()
    for blob in blobs:
        hashlib.sha256(blob).hexdigest()
    sha_only = time.perf_counter() - start
    return {
        "verify_in_memory_events_per_s": rate(n, seconds),
        "reference_sha256_only_per_s": rate(n, sha_only),
        "verify_goal_events_per_s": 130_000,
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--verify-events", type=int, default=200_000)
    args = parser.parse_args()
    result: dict[str, Any] = {"benchmark": "audit", "python": sys.version.split()[0]}
    result.update(bench_verify_in_memory(args.verify_events))
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        await asyncio.to_thread(upgrade, url)
        result["sqlite"] = await bench_backend(url, Path(tmp), args.events, args.verify_events)
        result["sqlite"]["append_goal_commit_each_events_per_s"] = 2500
    pg = os.environ.get("AUXILIO_BENCH_POSTGRES_URL")
    if pg:
        await asyncio.to_thread(downgrade, pg, "base")
        await asyncio.to_thread(upgrade, pg)
        with tempfile.TemporaryDirectory() as tmp:
            result["postgresql"] = await bench_backend(
                pg, Path(tmp), args.events, args.verify_events
            )
        async with create_engine(load_settings(database_url=pg)).begin() as conn:
            await conn.execute(text("DROP TABLE IF EXISTS bench_plain"))
        await asyncio.to_thread(downgrade, pg, "base")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
