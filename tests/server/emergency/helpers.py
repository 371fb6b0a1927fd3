"""Arranging an organisation for the emergency tests: its people, a ticket, a policy."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from fastapi import FastAPI
from sqlalchemy import select

from auxilio.crypto.keys import encode_public_key
from auxilio.policy.roles import Role
from auxilio.server.audit.models import AuditEvent
from auxilio.server.emergency.models import Emergency
from auxilio.server.identity.models import Organisation
from auxilio.server.support_sessions.models import SupportSession
from tests.factories import (
    Person,
    activate_policy,
    make_org,
    make_technician,
    make_ticket,
    make_user,
)

POLICY = """
version: 1
name: Emergency test policy
consent: {{required: true, timeout: 30s, on_timeout: deny}}
capabilities:
  chat: {{roles: [technician, senior_technician, supervisor]}}
  terminal: {{roles: [technician, senior_technician, supervisor], shells: [bash],
             modes: [attended, unattended]}}
unattended:
  allowed_device_groups: [servers]
  ticket_required: false
sessions: {{max_duration: 1h, warn_before: 10m}}
staff: {{mfa_required: false}}
emergency:
  declare_roles: {roles}
  actions: {{end_all_sessions: {end_all}, lock_unattended: true, escalate_to: {contacts}}}
"""


def policy_text(
    *, roles: str = "[supervisor, admin]", end_all: str = "true",
    contacts: str = "[security-team, ciso@example.test]",
) -> str:
    return POLICY.format(roles=roles, end_all=end_all, contacts=contacts)


def e2e_key() -> str:
    return encode_public_key(X25519PrivateKey.generate().public_key())


@dataclass
class Org:
    app: FastAPI
    org: Organisation
    supervisor: Person
    supervisor2: Person
    admin: Person
    technician: Person
    requester: Person
    ticket_id: uuid.UUID

    async def use_policy(self, text: str) -> None:
        await activate_policy(self.app, self.org.id, text)

    async def request_session(self, client: httpx.AsyncClient) -> httpx.Response:
        return await client.post(
            "/api/v1/support-sessions", headers=self.technician.headers,
            json={"ticket_id": str(self.ticket_id), "mode": "attended", "capabilities": ["chat"],
                  "technician_e2e_key": e2e_key()})

    async def events(self, action: str) -> list[AuditEvent]:
        async with self.app.state.sessionmaker() as db:
            rows = await db.execute(select(AuditEvent).where(
                AuditEvent.organisation_id == self.org.id, AuditEvent.action == action)
                .order_by(AuditEvent.seq))
            return list(rows.scalars())

    async def emergencies(self) -> list[Emergency]:
        async with self.app.state.sessionmaker() as db:
            rows = await db.execute(select(Emergency).where(
                Emergency.organisation_id == self.org.id).order_by(Emergency.declared_at))
            return list(rows.scalars())

    async def session_row(self, sid: str | uuid.UUID) -> SupportSession:
        async with self.app.state.sessionmaker() as db:
            found = await db.get(SupportSession, uuid.UUID(str(sid)))
            assert found is not None
            return found


async def make_world(app: FastAPI, **policy: Any) -> Org:
    org = await make_org(app)
    supervisor = await make_user(app, org, Role.SUPERVISOR, enrol_totp=False)
    supervisor2 = await make_user(app, org, Role.SUPERVISOR, enrol_totp=False)
    admin = await make_user(app, org, Role.ADMIN, enrol_totp=False)
    technician = await make_technician(app, org, skills=["hardware"])
    requester = await make_user(app, org, Role.END_USER, enrol_totp=False)
    ticket_id = await make_ticket(app, requester)
    world = Org(app, org, supervisor, supervisor2, admin, technician, requester, ticket_id)
    await world.use_policy(policy_text(**policy))
    return world
