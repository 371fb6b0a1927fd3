"""The automated runs' world: an organisation under a managed-servers policy (no approval, no
training), an enrolled server in the group "servers" with its device key, its owner's
pre-authorisation, a ticket, an approved example runbook, and a fake node holding the device's
connection on the bus."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from sqlalchemy import select

from auxilio.crypto.keys import encode_public_key, fingerprint
from auxilio.crypto.preauth import AccessWindow, PreAuthorisation, sign_pre_authorisation
from auxilio.policy import load_template
from auxilio.policy.roles import Role
from auxilio.protocol.types import Capability
from auxilio.runbooks import load_example
from auxilio.server.audit.models import AuditEvent
from auxilio.server.automation.scheduler import AutomationScheduler
from auxilio.server.db.base import utcnow
from auxilio.server.devices.channel import device_topic, parse
from auxilio.server.devices.models import Device, PreAuthorisationRecord
from auxilio.server.identity.models import Organisation
from auxilio.server.relay.bus import BusMessage
from tests.factories import Person, activate_policy, make_org, make_ticket, make_user


def automation_policy(**unattended: Any) -> str:
    """managed-servers, less what no test here is about: trainings and the approval."""
    policy = yaml.safe_load(load_template("managed-servers"))
    policy["staff"].pop("trainings_required")
    policy["unattended"]["approval_required"] = False
    policy["unattended"].update(unattended)
    return yaml.safe_dump(policy)


@dataclass
class World:
    app: FastAPI
    client: httpx.AsyncClient
    org: Organisation
    senior: Person
    technician: Person
    supervisor: Person
    owner: Person
    device_id: uuid.UUID
    device_key: Ed25519PrivateKey
    ticket_id: uuid.UUID
    server_key: Ed25519PrivateKey
    heard: list[dict[str, Any]] = field(default_factory=list)

    @property
    def api(self) -> str:
        return f"/api/v1/devices/{self.device_id}/automation-runs"

    async def use_policy(self, document: str) -> None:
        await activate_policy(self.app, self.org.id, document)

    async def pre_authorise(self, *, scope: tuple[Capability, ...] = (
            Capability.DIAGNOSTICS, Capability.RUNBOOKS), automated_runs: bool = True,
            window: AccessWindow | None = None) -> uuid.UUID:  # fmt: skip
        now = utcnow()
        document = PreAuthorisation(
            id=str(uuid.uuid4()), device_id=str(self.device_id), organisation_id=str(self.org.id),
            server_fingerprint=fingerprint(self.server_key.public_key()), owner_name="Owner",
            scope=scope, automated_runs=automated_runs,
            window=window or AccessWindow(not_before=now - dt.timedelta(hours=1),
                                          not_after=now + dt.timedelta(days=7)),
            created_at=now,
        )  # fmt: skip
        signed = sign_pre_authorisation(self.device_key, document)
        async with self.app.state.sessionmaker() as db, db.begin():
            db.add(PreAuthorisationRecord(
                id=uuid.UUID(document.id), organisation_id=self.org.id, device_id=self.device_id,
                document=signed.model_dump(mode="json"), scope=[str(c) for c in scope],
                automated_runs=automated_runs, not_before=document.window.not_before,
                not_after=document.window.not_after,
                window=document.window.model_dump(mode="json"), owner_name="Owner",
                signed_at=now, received_at=now,
            ))  # fmt: skip
        return uuid.UUID(document.id)

    async def revoke_pre_authorisation(self, pre_id: uuid.UUID) -> None:
        async with self.app.state.sessionmaker() as db, db.begin():
            row = await db.get(PreAuthorisationRecord, pre_id)
            assert row is not None
            row.revoked_at = utcnow()

    async def approve_example(self, runbook_id: str = "collect-logs", **changes: Any) -> None:
        fields = dict(load_example(runbook_id).fields)
        fields.update(changes)
        body = {"runbook_id": runbook_id, **{k: fields[k] for k in (
            "name", "description", "platforms", "interpreter", "script", "parameters",
            "timeout_seconds") if k in fields}}  # fmt: skip
        made = await self.client.post("/api/v1/runbooks", json=body, headers=self.senior.headers)
        assert made.status_code == 201, made.text
        version = made.json()["version"]
        approved = await self.client.post(
            f"/api/v1/runbooks/{runbook_id}/versions/{version}/approve",
            headers=self.supervisor.headers)  # fmt: skip
        assert approved.status_code == 200, approved.text

    async def schedule(self, by: Person | None = None, **body: Any) -> httpx.Response:
        body.setdefault("kind", "diagnostics")
        body.setdefault("ticket_id", str(self.ticket_id))
        return await self.client.post(self.api, json=body, headers=(by or self.senior).headers)

    def scheduler(self) -> AutomationScheduler:
        return AutomationScheduler(self.app.state.sessionmaker, server_key=self.server_key,
                                   bus=self.app.state.support_sessions.hub.bus)  # fmt: skip

    async def online(self) -> Any:
        """A fake node holding the device's connection: what it is sent lands in ``heard``."""

        async def holder(message: BusMessage) -> None:
            payload = parse(message)
            if payload is not None:
                self.heard.append(payload)

        bus = self.app.state.support_sessions.hub.bus
        return await bus.subscribe(device_topic(self.device_id), holder)

    async def device(self) -> Device:
        async with self.app.state.sessionmaker() as db:
            found = await db.get(Device, self.device_id)
            assert found is not None
            return found

    async def audit(self, prefix: str = "automation:") -> list[AuditEvent]:
        async with self.app.state.sessionmaker() as db:
            rows = await db.execute(select(AuditEvent).where(AuditEvent.action.like(f"{prefix}%"))
                                    .order_by(AuditEvent.seq))  # fmt: skip
            return list(rows.scalars())

    async def actions(self, prefix: str = "automation:") -> list[str]:
        return [e.action for e in await self.audit(prefix)]


def details(event: AuditEvent) -> dict[str, Any]:
    value = event.details
    return value if isinstance(value, dict) else orjson.loads(value)


@pytest.fixture
async def world(app: FastAPI, client: httpx.AsyncClient,
                signing_key: Ed25519PrivateKey) -> World:  # fmt: skip
    # The tests run the rounds themselves, at the moments they choose.
    await app.state.automation_scheduler.stop()
    org = await make_org(app)
    owner = await make_user(app, org, Role.END_USER)
    device_key = Ed25519PrivateKey.generate()
    now = utcnow()
    async with app.state.sessionmaker() as db, db.begin():
        device = Device(
            organisation_id=org.id, owner_id=owner.user.id, name="srv-1", platform="linux",
            device_group="servers", public_key=encode_public_key(device_key.public_key()),
            fingerprint=fingerprint(device_key.public_key()), enrolled_at=now,
            agent_version="test",
        )  # fmt: skip
        db.add(device)
    world = World(
        app=app, client=client, org=org,
        senior=await make_user(app, org, Role.SENIOR_TECHNICIAN),
        technician=await make_user(app, org, Role.TECHNICIAN),
        supervisor=await make_user(app, org, Role.SUPERVISOR), owner=owner,
        device_id=device.id, device_key=device_key, ticket_id=await make_ticket(app, owner),
        server_key=signing_key,
    )  # fmt: skip
    await world.use_policy(automation_policy())
    return world
