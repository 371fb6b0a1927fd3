"""Arranging enrolment: an organisation's people, a token, and an agent's request to enrol."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from sqlalchemy import select

from auxilio.crypto.keys import encode_public_key, fingerprint
from auxilio.crypto.signing import DocumentKind, sign_document
from auxilio.policy.roles import Role
from auxilio.server.audit.models import AuditEvent
from auxilio.server.devices.models import Device
from auxilio.server.identity.models import Organisation
from tests.factories import Person, make_org, make_user

TOKENS = "/api/v1/enrolment-tokens"
ENROLL = "/api/v1/agents/enroll"


@dataclass
class Org:
    app: FastAPI
    org: Organisation
    senior: Person
    technician: Person
    supervisor: Person
    owner: Person

    async def events(self, action: str) -> list[AuditEvent]:
        async with self.app.state.sessionmaker() as db:
            rows = await db.execute(select(AuditEvent).where(AuditEvent.action == action)
                                    .order_by(AuditEvent.seq))  # fmt: skip
            return list(rows.scalars())

    async def devices(self) -> list[Device]:
        async with self.app.state.sessionmaker() as db:
            rows = await db.execute(select(Device).where(Device.organisation_id == self.org.id))
            return list(rows.scalars())


async def make_world(app: FastAPI) -> Org:
    org = await make_org(app)
    return Org(
        app=app, org=org,
        senior=await make_user(app, org, Role.SENIOR_TECHNICIAN, enrol_totp=False),
        technician=await make_user(app, org, Role.TECHNICIAN, enrol_totp=False),
        supervisor=await make_user(app, org, Role.SUPERVISOR, enrol_totp=False),
        owner=await make_user(app, org, Role.END_USER, enrol_totp=False),
    )  # fmt: skip


async def new_token(client: httpx.AsyncClient, world: Org, **fields: Any) -> dict[str, Any]:
    body = {"device_group": "servers", "owner_id": str(world.owner.user.id), "label": "rack 3",
            **fields}  # fmt: skip
    response = await client.post(TOKENS, headers=world.senior.headers, json=body)
    assert response.status_code == 201, response.text
    found: dict[str, Any] = response.json()
    return found


def proof(key: Ed25519PrivateKey, token: str, server_fingerprint: str,
          **override: Any) -> dict[str, str]:  # fmt: skip
    payload = {"token_sha256": hashlib.sha256(token.encode()).hexdigest(),
               "device_public_key": encode_public_key(key.public_key()),
               "server_fingerprint": server_fingerprint, **override}  # fmt: skip
    return sign_document(key, payload, kind=DocumentKind.ENROLMENT).model_dump()


def enrol_body(token: str, server_key: Ed25519PrivateKey, key: Ed25519PrivateKey | None = None,
               **override: Any) -> dict[str, Any]:  # fmt: skip
    key = key or Ed25519PrivateKey.generate()
    body = {"token": token, "device_public_key": encode_public_key(key.public_key()),
            "platform": "Linux-6.1-x86_64", "name": "web-01", "agent_version": "0.9.0",
            "proof": proof(key, token, fingerprint(server_key.public_key()))}  # fmt: skip
    body.update(override)
    return body


def uid(value: str | uuid.UUID) -> str:
    """A UUID as the audit log's target_id holds it (hex, no dashes)."""
    return uuid.UUID(str(value)).hex


def pre_authorisation(
    *, device_id: uuid.UUID, organisation_id: uuid.UUID, key: Ed25519PrivateKey,
    server_fingerprint: str, owner_name: str = "Olga Owner",
    scope: tuple[str, ...] = ("chat", "terminal"), window: dict[str, Any] | None = None,
    automated_runs: bool = False,
) -> Any:
    """A PreAuthorisationRecord as the server stores one the device signed (crypto/preauth.py):
    by default open from an hour ago for a week, every day, all day."""
    from datetime import timedelta

    from auxilio.crypto.preauth import AccessWindow, PreAuthorisation, sign_pre_authorisation
    from auxilio.server.db.base import utcnow
    from auxilio.server.devices.models import PreAuthorisationRecord

    now = utcnow().replace(microsecond=0)
    spec = {"not_before": now - timedelta(hours=1), "not_after": now + timedelta(days=7),
            **(window or {})}  # fmt: skip
    document = PreAuthorisation(
        id=str(uuid.uuid4()), device_id=str(device_id), organisation_id=str(organisation_id),
        server_fingerprint=server_fingerprint, owner_name=owner_name, scope=scope,
        automated_runs=automated_runs, window=AccessWindow.model_validate(spec),
        created_at=now - timedelta(hours=1),
    )  # fmt: skip
    signed = sign_pre_authorisation(key, document)
    return PreAuthorisationRecord(
        id=uuid.UUID(document.id), organisation_id=organisation_id, device_id=device_id,
        document=signed.model_dump(), scope=list(document.scope),
        automated_runs=automated_runs, not_before=document.window.not_before,
        not_after=document.window.not_after,
        window=document.window.model_dump(mode="json"), owner_name=owner_name,
        signed_at=document.created_at, received_at=now,
    )  # fmt: skip
