"""The catalogue's world: an organisation, an author (senior technician), approvers, helpers to
write drafts and switch the active policy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from auxilio.policy import load_template
from auxilio.policy.roles import Role
from auxilio.server.audit.models import AuditEvent
from auxilio.server.context import Actor
from auxilio.server.identity.models import Organisation
from auxilio.server.policies import service as policies
from tests.factories import Person, make_org, make_user

API = "/api/v1/runbooks"


def draft(runbook_id: str = "flush-dns", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "runbook_id": runbook_id,
        "name": "Flush the DNS cache",
        "description": "Flushes what caches names.",
        "platforms": ["linux"],
        "interpreter": "sh",
        "script": 'echo "flushing ${AUXILIO_PARAM_WHAT}"\n',
        "parameters": [
            {
                "name": "what",
                "type": "choice",
                "choices": ["all", "hosts"],
                "default": "all",
                "required": False,
            }
        ],
        "timeout_seconds": 30,
    }
    body.update(overrides)
    return body


@dataclass
class Catalogue:
    app: FastAPI
    client: httpx.AsyncClient
    org: Organisation
    author: Person  # senior technician: may write, may not approve under the templates
    supervisor: Person
    admin: Person

    async def use_template(self, name: str) -> None:
        async with self.app.state.sessionmaker() as db, db.begin():
            version = await policies.upload_version(
                db,
                organisation_id=self.org.id,
                document=load_template(name),
                comment="test",
                actor=Actor.system(self.org.id),
            )
            await policies.activate_version(db, version=version, actor=Actor.system(self.org.id))

    async def create(self, body: dict[str, Any] | None = None, by: Person | None = None) -> Any:
        response = await self.client.post(
            API, json=body or draft(), headers=(by or self.author).headers
        )
        assert response.status_code == 201, response.text
        return response.json()

    async def approve(self, runbook_id: str, version: int, by: Person) -> httpx.Response:
        return await self.client.post(
            f"{API}/{runbook_id}/versions/{version}/approve", headers=by.headers
        )

    async def audit(self, prefix: str = "runbook:") -> list[AuditEvent]:
        async with self.app.state.sessionmaker() as db:
            rows = await db.execute(
                select(AuditEvent)
                .where(AuditEvent.action.like(f"{prefix}%"))
                .order_by(AuditEvent.seq)
            )
            return list(rows.scalars())


@pytest.fixture
async def catalogue(app: FastAPI, client: httpx.AsyncClient) -> Catalogue:
    org = await make_org(app)
    return Catalogue(
        app=app,
        client=client,
        org=org,
        author=await make_user(app, org, Role.SENIOR_TECHNICIAN),
        supervisor=await make_user(app, org, Role.SUPERVISOR),
        admin=await make_user(app, org, Role.ADMIN),
    )
