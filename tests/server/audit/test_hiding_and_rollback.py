"""Attacks on the audit log by hand, in the database: hiding a chain, cutting its tail, rolling it
back to an older signed state, rewriting it with the server key. Each must fail verify."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, text

from auxilio.server.audit.actions import AuditAction
from auxilio.server.audit.chain import (
    BreakCode,
    ChainReport,
    chain_hash,
    head_signature_ok,
    sign_checkpoint,
    sign_head,
)
from auxilio.server.audit.errors import AuditHeadInvalid
from auxilio.server.audit.models import AuditEvent
from auxilio.server.audit.reading import iter_events, load_checkpoints, load_head, verify_database
from auxilio.server.audit.service import AuditSigner, chain_for, checkpoint_stale_chains, record
from auxilio.server.audit.witness import read_witness
from auxilio.server.context import Actor
from tests.factories import make_org
from tests.server.audit.test_audit_database import fill, raw


async def verify_all(app: FastAPI, *, witness: bool = False) -> dict[str, ChainReport]:
    seen = read_witness([app.state.settings.audit_witness_path]) if witness else None
    async with app.state.engine.connect() as conn:
        reports = await verify_database(
            conn, public_key=app.state.signing_key.public_key(), witness=seen
        )
    return {r.chain: r for r in reports}


async def head_row(app: FastAPI, chain: str) -> dict[str, Any]:
    async with app.state.engine.connect() as conn:
        row = (
            await conn.execute(text("SELECT * FROM audit_heads WHERE chain = :c"), {"c": chain})
        ).one()
    return dict(row._mapping)


async def count_events(app: FastAPI, chain: str) -> int:
    async with app.state.sessionmaker() as db:
        return int(
            (
                await db.execute(
                    select(func.count()).select_from(AuditEvent).where(AuditEvent.chain == chain)
                )
            ).scalar_one()
        )


@pytest.fixture
async def org_chain(app: FastAPI) -> tuple[str, str]:
    org = await make_org(app, slug="acme")
    await fill(app, org.id, 59)  # 60 events: a checkpoint (every 50 in the tests) at 50
    return chain_for(org.id), org.slug


async def test_an_untouched_database_verifies_with_its_witness(
    app: FastAPI, org_chain: tuple[str, str]
) -> None:
    chain, slug = org_chain
    report = (await verify_all(app, witness=True))[chain]
    assert report.ok, report.broken
    assert report.events == 60 and report.witnessed == 1 and report.organisation == slug


async def test_every_append_signs_the_head(app: FastAPI) -> None:
    org = await make_org(app)
    chain = chain_for(org.id)
    key = app.state.signing_key.public_key()
    for n in range(3):
        await fill(app, org.id, 1)
        async with app.state.engine.connect() as conn:
            head = await load_head(conn, chain)
        assert head is not None and head["seq"] == n + 2
        assert head_signature_ok(key, chain, head)


async def test_deleting_the_head_row_fails_naming_the_chain(
    app: FastAPI, org_chain: tuple[str, str]
) -> None:
    chain, _ = org_chain
    await raw(app, "DELETE FROM audit_heads WHERE chain = :c", c=chain)
    report = (await verify_all(app))[chain]  # found from its events, though it has no head
    assert report.broken.code == BreakCode.HEAD_MISSING and report.broken.seq == 60


async def test_deleting_a_whole_chain_of_an_existing_organisation_fails(
    app: FastAPI, org_chain: tuple[str, str]
) -> None:
    chain, slug = org_chain
    for table in ("audit_events", "audit_heads", "audit_checkpoints"):
        await raw(app, f"DELETE FROM {table} WHERE chain = :c", c=chain)  # noqa: S608 -- fixed names
    report = (await verify_all(app))[chain]  # found from the organisations table
    assert report.broken.code == BreakCode.CHAIN_MISSING and report.organisation == slug


async def test_deleting_every_event_but_keeping_the_head_fails(
    app: FastAPI, org_chain: tuple[str, str]
) -> None:
    chain, _ = org_chain
    await raw(app, "DELETE FROM audit_events WHERE chain = :c", c=chain)
    report = (await verify_all(app))[chain]
    assert not report.ok and report.broken.seq == 1


async def test_deleting_a_chain_and_its_organisation_fails_against_the_witness(
    app: FastAPI, org_chain: tuple[str, str]
) -> None:
    chain, _ = org_chain
    for table in ("audit_events", "audit_heads", "audit_checkpoints"):
        await raw(app, f"DELETE FROM {table} WHERE chain = :c", c=chain)  # noqa: S608 -- fixed names
    await raw(app, "DELETE FROM users")
    await raw(app, "DELETE FROM organisations")
    assert chain not in await verify_all(app)  # nothing in the database names it any more
    report = (await verify_all(app, witness=True))[chain]
    assert report.broken.code == BreakCode.ROLLED_BACK and "event 50" in report.broken.reason


async def test_deleting_the_tail_after_the_last_checkpoint_and_rewriting_the_head_fails(
    app: FastAPI, org_chain: tuple[str, str]
) -> None:
    chain, _ = org_chain
    await raw(app, "DELETE FROM audit_events WHERE chain = :c AND seq > 55", c=chain)
    await raw(
        app,
        "UPDATE audit_heads SET seq = 55, hash = (SELECT hash FROM audit_events "
        "WHERE chain = :c AND seq = 55) WHERE chain = :c",
        c=chain,
    )
    report = (await verify_all(app))[chain]
    assert report.broken.code == BreakCode.HEAD_SIGNATURE_INVALID
    assert "event 55" in report.broken.reason


async def test_the_server_refuses_to_append_to_a_rewritten_head_and_writes_nothing(
    app: FastAPI, org_chain: tuple[str, str]
) -> None:
    chain, _ = org_chain
    await raw(app, "DELETE FROM audit_events WHERE chain = :c AND seq > 55", c=chain)
    await raw(
        app,
        "UPDATE audit_heads SET seq = 55, hash = (SELECT hash FROM audit_events "
        "WHERE chain = :c AND seq = 55) WHERE chain = :c",
        c=chain,
    )
    with pytest.raises(AuditHeadInvalid):
        await fill(app, uuid.UUID(chain), 1)
    # The evidence stays: no event was appended over the cut, the head still fails verify.
    assert await count_events(app, chain) == 55
    assert (await verify_all(app))[chain].broken.code == BreakCode.HEAD_SIGNATURE_INVALID


async def test_a_head_signed_by_another_process_is_appended_to(
    app: FastAPI, org_chain: tuple[str, str]
) -> None:
    chain, _ = org_chain
    signer: AuditSigner = app.state.audit_signer
    signer.heads.clear()  # as if the CLI, or another node, had written the last event
    await fill(app, uuid.UUID(chain), 1)
    assert (await verify_all(app))[chain].ok


async def test_a_rollback_to_an_older_signed_head_is_caught_by_the_witness_only(
    app: FastAPI,
) -> None:
    org = await make_org(app, slug="rolled")
    chain = chain_for(org.id)
    await fill(app, org.id, 29)
    saved = await head_row(app, chain)  # a backup of the database at event 30
    await fill(app, org.id, 30)  # events 31-60, checkpoint 50 witnessed
    # Restore the backup's state: the tail, its checkpoint and the head go back to event 30.
    await raw(app, "DELETE FROM audit_events WHERE chain = :c AND seq > 30", c=chain)
    await raw(app, "DELETE FROM audit_checkpoints WHERE chain = :c AND seq > 30", c=chain)
    await raw(
        app,
        "UPDATE audit_heads SET seq = :seq, hash = :hash, updated_at = :updated_at, "
        "key_id = :key_id, signature = :signature WHERE chain = :chain",
        **saved,
    )
    assert (await verify_all(app))[chain].ok  # validly signed: the database alone cannot tell
    report = (await verify_all(app, witness=True))[chain]
    assert report.broken.code == BreakCode.ROLLED_BACK and report.broken.seq == 31
    assert "ends at event 30" in report.broken.reason and "event 50" in report.broken.reason


async def _rewrite_with_the_key(app: FastAPI, chain: str, seq: int) -> None:
    """What a holder of the server key can do: change event ``seq``, rehash every event after
    it, re-sign the checkpoints and the head."""
    key = app.state.signing_key
    async with app.state.engine.connect() as conn:
        events = [e async for e in iter_events(conn, chain)]
        checkpoints = await load_checkpoints(conn, chain)
        head = await load_head(conn, chain)
    assert head is not None
    prev = events[seq - 2]["hash"]
    events[seq - 1]["actor_name"] = "nobody"
    for event in events[seq - 1 :]:
        event["prev_hash"] = prev
        event["hash"] = prev = chain_hash(prev, event)
        await raw(
            app,
            "UPDATE audit_events SET actor_name = :a, prev_hash = :p, hash = :h "
            "WHERE chain = :c AND seq = :s",
            a=event["actor_name"], p=event["prev_hash"], h=event["hash"], c=chain, s=event["seq"],
        )  # fmt: skip
    by_seq = {e["seq"]: e["hash"] for e in events}
    for cp in checkpoints:
        digest = by_seq[cp["seq"]]
        await raw(
            app,
            "UPDATE audit_checkpoints SET hash = :h, signature = :sig "
            "WHERE chain = :c AND seq = :s",
            h=digest,
            sig=sign_checkpoint(key, chain, cp["seq"], digest, cp["signed_at"]),
            c=chain,
            s=cp["seq"],
        )
    last = events[-1]
    await raw(
        app,
        "UPDATE audit_heads SET hash = :h, signature = :sig WHERE chain = :c",
        h=last["hash"],
        sig=sign_head(key, chain, last["seq"], last["hash"], head["signed_at"]),
        c=chain,
    )


async def test_a_history_rewritten_with_the_server_key_is_caught_by_the_witness_only(
    app: FastAPI, org_chain: tuple[str, str]
) -> None:
    chain, _ = org_chain
    await _rewrite_with_the_key(app, chain, 20)
    assert (await verify_all(app))[chain].ok  # re-signed throughout: the database agrees
    report = (await verify_all(app, witness=True))[chain]
    assert report.broken.code == BreakCode.REWRITTEN and report.broken.seq == 50


async def test_a_checkpoint_reaches_the_witness_only_once_committed(app: FastAPI) -> None:
    org = await make_org(app)
    chain = chain_for(org.id)
    await fill(app, org.id, 48)  # 49 events
    witness_file = app.state.settings.audit_witness_path / f"{chain}.jsonl"
    with pytest.raises(RuntimeError):
        async with app.state.sessionmaker() as db, db.begin():
            await record(db, action=AuditAction.TICKET_OPENED, actor=Actor.system(org.id))
            raise RuntimeError("the state change failed after checkpoint 50 was signed")
    assert not witness_file.exists()
    await fill(app, org.id, 1)  # event 50 again, after the head the rollback left (signed)
    [entry] = read_witness([app.state.settings.audit_witness_path])[chain]
    assert entry["seq"] == 50
    assert (await verify_all(app, witness=True))[chain].witnessed == 1


async def test_the_time_rule_checkpoint_is_witnessed_with_the_signed_head(app: FastAPI) -> None:
    org = await make_org(app)
    chain = chain_for(org.id)
    await fill(app, org.id, 3)
    async with app.state.sessionmaker() as db, db.begin():
        assert await checkpoint_stale_chains(db, signer=app.state.audit_signer) >= 1
    [entry] = read_witness([app.state.settings.audit_witness_path])[chain]
    assert entry["seq"] == 4 and entry["head"]["signature"]
    assert (await verify_all(app, witness=True))[chain].witnessed == 1


async def test_the_time_rule_does_not_checkpoint_a_rewritten_head(
    app: FastAPI, org_chain: tuple[str, str]
) -> None:
    chain, _ = org_chain
    await raw(app, "DELETE FROM audit_events WHERE chain = :c AND seq > 55", c=chain)
    await raw(
        app,
        "UPDATE audit_heads SET seq = 55, hash = (SELECT hash FROM audit_events "
        "WHERE chain = :c AND seq = 55) WHERE chain = :c",
        c=chain,
    )
    async with app.state.sessionmaker() as db, db.begin():
        await checkpoint_stale_chains(db, signer=app.state.audit_signer)
    entries = read_witness([app.state.settings.audit_witness_path]).get(chain, [])
    assert [e["seq"] for e in entries] == [50]
