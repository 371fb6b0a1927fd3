"""Audit rows in a real database: recorded with their state change, tampering by hand detected."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, text

from auxilio.policy.roles import Role
from auxilio.server.audit.actions import AuditAction
from auxilio.server.audit.models import AuditCheckpoint, AuditEvent
from auxilio.server.audit.reading import verify_database
from auxilio.server.audit.service import AuditSigner, chain_for, checkpoint_stale_chains, record
from auxilio.server.context import Actor
from tests.factories import make_org, make_user


async def fill(app: FastAPI, org_id: Any, n: int) -> None:
    async with app.state.sessionmaker() as db, db.begin():
        for i in range(n):
            await record(
                db,
                action=AuditAction.TICKET_OPENED,
                actor=Actor.system(org_id),
                target_type="ticket",
                target_id=str(i),
                details={"i": i},
            )


async def verify(app: FastAPI, chain: str) -> Any:
    async with app.state.engine.connect() as conn:
        [report] = await verify_database(
            conn, public_key=app.state.signing_key.public_key(), chains=[chain]
        )
    return report


async def raw(app: FastAPI, sql: str, **params: Any) -> None:
    async with app.state.engine.begin() as conn:
        await conn.execute(text(sql), params)


@pytest.fixture
async def chain(app: FastAPI) -> str:
    org = await make_org(app)
    await fill(app, org.id, 12)
    return chain_for(org.id)


async def test_an_untouched_database_verifies(app: FastAPI, chain: str) -> None:
    report = await verify(app, chain)
    assert report.ok, report.broken
    assert report.events == 13  # organisation created + 12


async def test_editing_a_row_by_hand_names_that_event(app: FastAPI, chain: str) -> None:
    await raw(
        app, "UPDATE audit_events SET actor_name = 'mallory' WHERE chain = :c AND seq = 7", c=chain
    )
    report = await verify(app, chain)
    assert report.broken.seq == 7


async def test_editing_details_by_hand_names_that_event(app: FastAPI, chain: str) -> None:
    await raw(
        app, "UPDATE audit_events SET details = '{\"i\": 99}' WHERE chain = :c AND seq = 4", c=chain
    )
    assert (await verify(app, chain)).broken.seq == 4


async def test_deleting_a_row_by_hand_names_that_event(app: FastAPI, chain: str) -> None:
    await raw(app, "DELETE FROM audit_events WHERE chain = :c AND seq = 5", c=chain)
    assert (await verify(app, chain)).broken.seq == 5


async def test_deleting_the_last_row_by_hand_names_that_event(app: FastAPI, chain: str) -> None:
    await raw(app, "DELETE FROM audit_events WHERE chain = :c AND seq = 13", c=chain)
    report = await verify(app, chain)
    assert report.broken.seq == 13 and "missing" in report.broken.reason


async def test_reordering_rows_by_hand_is_detected(app: FastAPI, chain: str) -> None:
    # Swap the seq numbers of two rows (through a free value: seq is unique per chain).
    await raw(app, "UPDATE audit_events SET seq = -1 WHERE chain = :c AND seq = 8", c=chain)
    await raw(app, "UPDATE audit_events SET seq = 8 WHERE chain = :c AND seq = 9", c=chain)
    await raw(app, "UPDATE audit_events SET seq = 9 WHERE chain = :c AND seq = -1", c=chain)
    assert (await verify(app, chain)).broken.seq == 8


async def test_inserting_a_row_by_hand_is_detected(app: FastAPI, chain: str) -> None:
    # Make room at seq 6 through a free range (seq is unique per chain).
    await raw(
        app, "UPDATE audit_events SET seq = seq + 1000 WHERE chain = :c AND seq >= 6", c=chain
    )
    await raw(
        app, "UPDATE audit_events SET seq = seq - 999 WHERE chain = :c AND seq >= 1006", c=chain
    )
    await raw(
        app,
        "INSERT INTO audit_events (chain, seq, occurred_at, actor_name, action, request_id, "
        "details, prev_hash, hash) "
        "SELECT chain, 6, occurred_at, 'mallory', action, request_id, details, prev_hash, hash "
        "FROM audit_events WHERE chain = :c AND seq = 5",
        c=chain,
    )
    assert (await verify(app, chain)).broken.seq == 6


async def test_checkpoints_are_signed_every_n_events_and_verified(app: FastAPI) -> None:
    org = await make_org(app)
    await fill(app, org.id, 120)  # the test settings sign every 50 events
    async with app.state.sessionmaker() as db:
        seqs = (
            (
                await db.execute(
                    select(AuditCheckpoint.seq)
                    .where(AuditCheckpoint.chain == chain_for(org.id))
                    .order_by(AuditCheckpoint.seq)
                )
            )
            .scalars()
            .all()
        )
    assert list(seqs) == [50, 100]
    assert (await verify(app, chain_for(org.id))).checkpoints == 2


async def test_the_time_rule_signs_the_head_of_a_chain_that_moved(app: FastAPI) -> None:
    org = await make_org(app)
    await fill(app, org.id, 3)
    signer: AuditSigner = app.state.audit_signer
    async with app.state.sessionmaker() as db, db.begin():
        assert await checkpoint_stale_chains(db, signer=signer) >= 1
    async with app.state.sessionmaker() as db, db.begin():
        # Nothing moved since: nothing more to sign.
        assert await checkpoint_stale_chains(db, signer=signer) == 0
    assert (await verify(app, chain_for(org.id))).checkpoints == 1


async def test_a_failed_state_change_leaves_no_audit_event(app: FastAPI) -> None:
    org = await make_org(app)

    async def count() -> int:
        async with app.state.sessionmaker() as db:
            return int(
                (await db.execute(select(func.count()).select_from(AuditEvent))).scalar_one()
            )

    before = await count()
    with pytest.raises(RuntimeError):
        async with app.state.sessionmaker() as db, db.begin():
            await record(db, action=AuditAction.TICKET_OPENED, actor=Actor.system(org.id))
            raise RuntimeError("the state change failed after its audit row was written")
    assert await count() == before
    assert (await verify(app, chain_for(org.id))).ok


async def test_parallel_requests_never_fork_the_chain(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    admin = await make_user(app, org, Role.ADMIN)
    responses = await asyncio.gather(
        *[
            client.post("/api/v1/me/tokens", json={"name": f"t{i}"}, headers=admin.headers)
            for i in range(25)
        ]
    )
    assert [r.status_code for r in responses] == [201] * 25
    report = await verify(app, chain_for(org.id))
    assert report.ok, report.broken
    async with app.state.sessionmaker() as db:
        seqs = (
            (
                await db.execute(
                    select(AuditEvent.seq)
                    .where(AuditEvent.chain == chain_for(org.id))
                    .order_by(AuditEvent.seq)
                )
            )
            .scalars()
            .all()
        )
    assert list(seqs) == list(range(1, len(seqs) + 1))


async def test_parallel_writers_in_separate_transactions_never_fork_the_chain(app: FastAPI) -> None:
    org = await make_org(app)
    await asyncio.gather(*[fill(app, org.id, 5) for _ in range(10)])
    report = await verify(app, chain_for(org.id))
    assert report.ok, report.broken
    assert report.events == 51
