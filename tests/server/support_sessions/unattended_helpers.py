"""An enrolled device for the unattended tests: its row, its key, its owner's signed
pre-authorisations, and a fake agent that says hello with its device id."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auxilio.crypto.keys import encode_public_key, fingerprint
from auxilio.crypto.preauth import (
    AccessWindow,
    PreAuthorisation,
    PreAuthorisationRevocation,
    sign_pre_authorisation,
    sign_revocation,
)
from auxilio.crypto.signing import sign_agent_challenge
from auxilio.protocol.frames import AgentAuth, AgentHello, PreAuthPublish, PreAuthRevoke
from auxilio.protocol.types import Capability, SignedDocument
from auxilio.server.db.base import utcnow
from auxilio.server.devices.models import Device
from tests.server.support_sessions.conftest import LiveServer, World
from tests.server.support_sessions.peers import FakeAgent, FakeTechnician, mid

T = TypeVar("T")

POLICY = """
version: 1
name: Unattended test policy
consent: {{required: true, timeout: 30s, on_timeout: deny}}
capabilities:
  chat: {{roles: [technician, senior_technician, supervisor], modes: [attended, unattended]}}
  terminal: {{roles: [technician, senior_technician, supervisor], shells: [bash],
             modes: [attended, unattended]}}
unattended:
  allowed_device_groups: [kiosks]
  owner_pre_authorisation: {{required: true, window: 30d, scope: [chat, terminal]}}
  ticket_required: true
sessions: {{max_duration: {max_duration}, warn_before: 5m, idle_timeout: 15m}}
staff: {{mfa_required: true}}
emergency:
  declare_roles: [supervisor, admin]
  actions: {{end_all_sessions: true, lock_unattended: {lock}, escalate_to: [security-team]}}
"""


def policy(*, max_duration: str = "1h", lock: str = "true") -> str:
    return POLICY.format(max_duration=max_duration, lock=lock)


def window(*, start: dt.timedelta = dt.timedelta(hours=-1),
           end: dt.timedelta = dt.timedelta(days=7), **more: Any) -> AccessWindow:
    now = utcnow()
    return AccessWindow(not_before=now + start, not_after=now + end, **more)


@dataclass
class Enrolled:
    """An enrolled device of the world's requester (group ``kiosks``)."""

    world: World
    device_id: uuid.UUID
    key: Ed25519PrivateKey
    server_key: Ed25519PrivateKey

    def document(self, *, scope: tuple[str, ...] = ("chat", "terminal"),
                 access: AccessWindow | None = None, **changes: Any) -> PreAuthorisation:
        fields: dict[str, Any] = dict(
            id=str(uuid.uuid4()), device_id=str(self.device_id),
            organisation_id=str(self.world.org.id),
            server_fingerprint=fingerprint(self.server_key.public_key()), owner_name="Rosa Owner",
            scope=tuple(Capability(c) for c in scope), window=access or window(),
            created_at=utcnow())
        fields.update(changes)
        return PreAuthorisation(**fields)

    def sign(self, document: PreAuthorisation, key: Ed25519PrivateKey | None = None
             ) -> SignedDocument:
        return sign_pre_authorisation(key or self.key, document)

    def revocation(self, pre_authorisation_id: str, *, key: Ed25519PrivateKey | None = None,
                   device_id: str | None = None) -> SignedDocument:
        return sign_revocation(key or self.key, PreAuthorisationRevocation(
            pre_authorisation_id=pre_authorisation_id,
            device_id=device_id or str(self.device_id), revoked_at=utcnow(), reason="done"))

    async def row(self) -> Device:
        async with self.world.app.state.sessionmaker() as db:
            found: Device | None = await db.get(Device, self.device_id)
            assert found is not None
            return found

    async def update(self, **values: Any) -> None:
        async with self.world.app.state.sessionmaker() as db, db.begin():
            found = await db.get(Device, self.device_id)
            assert found is not None
            for name, value in values.items():
                setattr(found, name, value)


async def enrol(world: World, server_key: Ed25519PrivateKey, *, group: str = "kiosks",
                platform: str = "linux") -> Enrolled:
    key = Ed25519PrivateKey.generate()
    async with world.app.state.sessionmaker() as db, db.begin():
        device = Device(
            organisation_id=world.org.id, owner_id=world.requester.user.id, name="kiosk-1",
            platform=platform, device_group=group, public_key=encode_public_key(key.public_key()),
            fingerprint=fingerprint(key.public_key()), enrolled_at=utcnow(), agent_version="test")
        db.add(device)
    return Enrolled(world=world, device_id=device.id, key=key, server_key=server_key)


class EnrolledAgent(FakeAgent):
    """A fake agent that says hello as an enrolled device (``device_id``)."""

    def __init__(self, base_url: str, enrolled: Enrolled, *,
                 device_key: Ed25519PrivateKey | None = None) -> None:
        super().__init__(base_url, device_key=device_key or enrolled.key)
        self.enrolled = enrolled

    async def hello(self, device_id: str | None = None) -> None:
        await self.send(AgentHello(
            id=mid(), device_id=device_id or str(self.enrolled.device_id),
            device_public_key=encode_public_key(self.device_key.public_key()),
            agent_version="test", platform=self.platform, protocol_version=1,
            min_protocol_version=1, capabilities=self.capabilities))
        hello = await self.expect("server.hello")
        self.server_fingerprint = hello.server_fingerprint
        await self.send(AgentAuth(id=mid(), signature=sign_agent_challenge(
            self.device_key, challenge=hello.challenge,
            server_fingerprint=hello.server_fingerprint)))

    async def ready(self) -> Any:
        await self.connect()
        await self.hello()
        return await self.expect("device.ready")

    async def publish(self, signed: SignedDocument) -> None:
        await self.send(PreAuthPublish(id=mid(), document=signed))

    async def revoke(self, signed: SignedDocument) -> None:
        await self.send(PreAuthRevoke(id=mid(), document=signed))


async def ask(http: httpx.AsyncClient, world: World, technician: FakeTechnician,
              device_id: uuid.UUID | str, capabilities: tuple[str, ...] = ("chat",), *,
              ticket_id: uuid.UUID | None = None) -> httpx.Response:
    return await http.post(
        "/api/v1/support-sessions",
        headers={"Authorization": f"Bearer {world.technician.token}"},
        json={"ticket_id": str(ticket_id or world.ticket_id), "mode": "unattended",
              "device_id": str(device_id), "capabilities": list(capabilities),
              "technician_e2e_key": technician.public_key})


def error_code(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    return code


async def on_server(live: LiveServer, coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on the live server's own event loop (its bus is not thread-safe)."""
    loop = live.server.servers[0].get_loop()
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))
