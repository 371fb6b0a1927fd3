"""Unauthenticated failures are aggregated: floods write a handful of rows, and every failure is
counted in them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from auxilio.server.audit.actions import AuditAction
from auxilio.server.audit.failures import FailureAggregator, flush_failures
from auxilio.server.audit.models import AuditEvent
from auxilio.server.context import RequestInfo, set_request
from auxilio.server.support_sessions import consent
from auxilio.server.support_sessions.consent import AgentRefused
from tests.server.audit.test_hiding_and_rollback import verify_all

T0 = datetime(2026, 12, 1, 9, 30, 5, tzinfo=UTC)
REJECTED = AuditAction.JOIN_CODE_REJECTED


async def events(app: FastAPI, *actions: AuditAction) -> list[dict[str, Any]]:
    async with app.state.sessionmaker() as db:
        rows = (
            await db.execute(
                select(AuditEvent.action, AuditEvent.client_addr, AuditEvent.details).where(
                    AuditEvent.action.in_([str(a) for a in actions])
                )
            )
        ).all()
    return [{"action": a, "client_addr": c, "details": d} for a, c, d in rows]


def counted(rows: list[dict[str, Any]], action: AuditAction) -> int:
    """Failures accounted for: each first-failure event is one, each summary carries its count."""
    first = sum(1 for r in rows if r["action"] == str(action))
    summed = sum(
        r["details"]["count"]
        for r in rows
        if r["action"] == str(AuditAction.AUDIT_FAILURES_SUMMARISED)
        and r["details"]["action"] == str(action)
    )
    return first + summed


def test_the_first_failure_of_an_address_in_a_minute_is_written_and_the_rest_counted() -> None:
    agg = FailureAggregator()
    admitted = [
        agg.admit(REJECTED, reason="join_code.invalid", client_addr="198.51.100.1", now=T0)
        for _ in range(2000)
    ]
    assert admitted[0] and not any(admitted[1:])
    assert agg.take(now=T0) == []  # the minute is not over yet
    [summary] = agg.take(now=T0 + timedelta(minutes=1))
    assert summary.details() == {
        "action": str(REJECTED),
        "client_addr": "198.51.100.1",
        "minute": "2026-12-01T09:30Z",
        "count": 1999,
        "reasons": {"join_code.invalid": 1999},
    }
    assert agg.pending == 0


def test_a_new_minute_writes_the_first_failure_again() -> None:
    agg = FailureAggregator()
    assert agg.admit(REJECTED, reason="r", client_addr="a", now=T0)
    assert not agg.admit(REJECTED, reason="r", client_addr="a", now=T0)
    assert agg.admit(REJECTED, reason="r", client_addr="a", now=T0 + timedelta(seconds=60))


def test_many_addresses_cannot_flood_the_log_and_every_failure_is_counted() -> None:
    agg = FailureAggregator(first_per_minute=20, keys_per_minute=100)
    written = sum(
        agg.admit(REJECTED, reason="join_code.invalid", client_addr=f"10.0.{i // 250}.{i % 250}",
                  now=T0)
        for i in range(5000)
    )  # fmt: skip
    summaries = agg.take(now=T0 + timedelta(minutes=1))
    assert written == 20
    assert len(summaries) == 80 + 1  # addresses 21-100 counted apart, the rest under "*"
    spill = next(s for s in summaries if s.client_addr == "*")
    assert spill.details()["addresses"] == 4900
    assert written + sum(s.tally.count for s in summaries) == 5000


def test_each_reason_has_its_first_failure_written() -> None:
    agg = FailureAggregator()
    for reason in ("join_code.invalid", "join_code.used", "join_code.expired"):
        assert agg.admit(REJECTED, reason=reason, client_addr="a", now=T0)
        assert not agg.admit(REJECTED, reason=reason, client_addr="a", now=T0)
    summaries = agg.take(now=T0 + timedelta(minutes=1))
    assert sorted(tuple(s.details()["reasons"].items()) for s in summaries) == [
        (("join_code.expired", 1),),
        (("join_code.invalid", 1),),
        (("join_code.used", 1),),
    ]


def test_reasons_are_bounded_in_a_summary() -> None:
    agg = FailureAggregator(first_per_minute=0, keys_per_minute=0)  # everything under "*"
    for i in range(100):
        agg.admit(REJECTED, reason=f"reason-{i}", client_addr=f"10.0.0.{i}", now=T0)
    [summary] = agg.take(now=T0 + timedelta(minutes=1))
    reasons = summary.details()["reasons"]
    assert len(reasons) == 21 and reasons["other"] == 100 - 20
    assert sum(reasons.values()) == 100 == summary.details()["addresses"]


def test_summaries_that_could_not_be_written_are_kept_for_the_next_round() -> None:
    agg = FailureAggregator()
    for _ in range(10):
        agg.admit(REJECTED, reason="r", client_addr="a", now=T0)
    taken = agg.take(now=T0 + timedelta(minutes=1))
    agg.give_back(taken)
    assert agg.pending == 9
    [again] = agg.take(now=T0 + timedelta(minutes=1))
    assert again.tally.count == 9


def _minutes_spanned(start: datetime, end: datetime) -> int:
    """How many clock minutes a loop from ``start`` to ``end`` touched: each may hold one first
    event and one summary per action (the aggregation is per minute)."""
    first = start.replace(second=0, microsecond=0)
    last = end.replace(second=0, microsecond=0)
    return int((last - first) / timedelta(minutes=1)) + 1


async def test_2000_bogus_tokens_from_one_address_write_a_handful_of_rows_and_lose_none(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    start = datetime.now(UTC)
    for i in range(2000):
        response = await client.get(
            "/api/v1/me", headers={"Authorization": f"Bearer bogus-token-{i}"}
        )
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "token_invalid"
    minutes = _minutes_spanned(start, datetime.now(UTC))
    await flush_failures(app.state.sessionmaker, app.state.audit_failures, everything=True)
    rows = await events(app, AuditAction.TOKEN_REJECTED, AuditAction.AUDIT_FAILURES_SUMMARISED)
    # A first event and a summary per minute the loop touched (on a slow machine, several).
    assert len(rows) <= 2 * minutes
    assert counted(rows, AuditAction.TOKEN_REJECTED) == 2000
    assert {r["client_addr"] for r in rows} == {"203.0.113.7"}
    assert all(r.ok for r in (await verify_all(app)).values())


async def _never_called(_: object) -> bool:
    raise AssertionError("a wrong code never reaches the technician check")


async def test_2000_bad_join_codes_from_one_address_write_a_handful_of_rows_and_lose_none(
    app: FastAPI,
) -> None:
    set_request(RequestInfo(client_addr="198.51.100.23"))
    start = datetime.now(UTC)
    for i in range(2000):
        async with app.state.sessionmaker() as db, db.begin():
            try:
                await consent.join_support_session(
                    db, join_code=f"WRONG-{i:04d}", device_public_key="unused", platform="linux",
                    server_key=app.state.signing_key, announced=(),
                    technician_attached=_never_called,
                )  # fmt: skip
            except AgentRefused as exc:
                assert exc.code == "join_code.invalid"
            else:
                raise AssertionError("a wrong join code was accepted")
    minutes = _minutes_spanned(start, datetime.now(UTC))
    await flush_failures(app.state.sessionmaker, app.state.audit_failures, everything=True)
    rows = await events(app, REJECTED, AuditAction.AUDIT_FAILURES_SUMMARISED)
    assert len(rows) <= 2 * minutes
    assert counted(rows, REJECTED) == 2000
    summary = next(r for r in rows if r["action"] == str(AuditAction.AUDIT_FAILURES_SUMMARISED))
    assert summary["client_addr"] == "198.51.100.23"
    assert set(summary["details"]["reasons"]) == {"join_code.invalid"}


async def test_counts_still_in_memory_are_written_when_the_server_stops(
    settings: Any, signing_key: Any
) -> None:
    from auxilio.server.app import create_app

    application = create_app(settings, signing_key=signing_key)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, client=("192.0.2.4", 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            for _ in range(30):
                await c.get("/api/v1/me", headers={"Authorization": "Bearer nope"})
    async with application.router.lifespan_context(application):
        rows = await events(
            application, AuditAction.TOKEN_REJECTED, AuditAction.AUDIT_FAILURES_SUMMARISED
        )
    assert counted(rows, AuditAction.TOKEN_REJECTED) == 30
