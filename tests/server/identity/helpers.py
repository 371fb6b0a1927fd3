"""Local helpers of the identity tests: fresh reads of the database, TOTP codes, logins."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
from fastapi import FastAPI
from sqlalchemy import func, inspect, select, table

from auxilio.server.audit.actions import AuditAction
from auxilio.server.audit.models import AuditEvent
from auxilio.server.db.base import utcnow
from auxilio.server.identity import secrets as sec
from auxilio.server.identity.models import LoginThrottle, User
from tests.factories import PASSWORD

LOGIN = "/api/v1/auth/login"


async def load_user(app: FastAPI, user_id: uuid.UUID) -> User:
    async with app.state.sessionmaker() as db:
        user = await db.get(User, user_id)
        assert user is not None
        return user


async def audit_count(
    app: FastAPI, action: AuditAction, *, target_id: uuid.UUID | None = None
) -> int:
    query = select(func.count()).select_from(AuditEvent).where(AuditEvent.action == str(action))
    if target_id is not None:
        query = query.where(AuditEvent.target_id == target_id.hex)
    async with app.state.sessionmaker() as db:
        return int((await db.execute(query)).scalar_one())


async def audit_details(app: FastAPI, action: AuditAction) -> list[dict[str, Any]]:
    query = (
        select(AuditEvent.details)
        .where(AuditEvent.action == str(action))
        .order_by(AuditEvent.id)
    )
    async with app.state.sessionmaker() as db:
        return list((await db.execute(query)).scalars())


async def row_counts(app: FastAPI) -> dict[str, int]:
    """Rows in every table: equal before and after a refused request means nothing was written."""
    counts: dict[str, int] = {}
    # The tables the database has, not the models: a model may land before its migration.
    async with app.state.engine.connect() as conn:
        names = await conn.run_sync(lambda sync: inspect(sync).get_table_names())
        for name in sorted(names):
            query = select(func.count()).select_from(table(name))
            counts[name] = int((await conn.execute(query)).scalar_one())
    assert "users" in counts and "audit_events" in counts
    return counts


async def throttle(app: FastAPI, key: str) -> LoginThrottle | None:
    async with app.state.sessionmaker() as db:
        query = select(LoginThrottle).where(LoginThrottle.key == key)
        return (await db.execute(query)).scalar_one_or_none()


def current_step(now: datetime | None = None) -> int:
    return int((now or utcnow()).timestamp()) // sec.TOTP_PERIOD


def wrong_code(secret: str, now: datetime | None = None) -> str:
    """Six digits that match no step of the acceptance window."""
    step = current_step(now)
    window = {sec.totp_code_at(secret, s) for s in range(step - 2, step + 3)}
    return next(c for c in (str(d) * 6 for d in range(10)) if c not in window)


async def fresh_code(app: FastAPI, user_id: uuid.UUID, secret: str) -> str:
    """A code the server has not accepted yet: the current step, or the next after the last used."""
    user = await load_user(app, user_id)
    step = current_step()
    if user.totp_last_step is not None:
        step = max(step, user.totp_last_step + 1)
    return sec.totp_code_at(secret, step)


def secret_of(provisioning_uri: str) -> str:
    return parse_qs(urlparse(provisioning_uri).query)["secret"][0]


async def login(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD, **extra: Any
) -> httpx.Response:
    return await client.post(LOGIN, json={"email": email, "password": password, **extra})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_code(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code
