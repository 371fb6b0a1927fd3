"""``GET /api/v1/audit/verify``: the organisation's chain, against the server's witness."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from auxilio.policy.roles import Role
from auxilio.server.audit.service import chain_for
from tests.factories import make_org, make_user
from tests.server.audit.test_audit_database import fill, raw


async def test_the_route_reports_a_rollback_that_the_witness_saw(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    auditor = await make_user(app, org, Role.AUDITOR)
    await fill(app, org.id, 60)  # checkpoint 50 witnessed
    intact = (await client.get("/api/v1/audit/verify", headers=auditor.headers)).json()
    assert intact["intact"] and intact["witnessed"] == 1 and intact["code"] is None
    chain = chain_for(org.id)
    # Cut back to event 40: the tail, its checkpoints and the head go.
    await raw(app, "DELETE FROM audit_events WHERE chain = :c AND seq > 40", c=chain)
    await raw(app, "DELETE FROM audit_checkpoints WHERE chain = :c", c=chain)
    await raw(app, "DELETE FROM audit_heads WHERE chain = :c", c=chain)
    body = (await client.get("/api/v1/audit/verify", headers=auditor.headers)).json()
    assert not body["intact"]
    assert body["code"] == "audit.rolled_back" and body["first_broken_seq"] == 41


async def test_the_route_says_when_the_witness_cannot_be_read(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    auditor = await make_user(app, org, Role.AUDITOR)
    witness = app.state.settings.audit_witness_path
    (witness / f"{chain_for(org.id)}.jsonl").write_text("torn")
    body = (await client.get("/api/v1/audit/verify", headers=auditor.headers)).json()
    assert body["intact"] is False and body["code"] == "audit.witness_unreadable"
    assert "line 1 is not JSON" in body["reason"]
