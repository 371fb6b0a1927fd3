"""An enrolled device's connection: device.ready, and its pre-authorisations published and
revoked over it (docs/unattended.md)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select

from auxilio.crypto.keys import encode_public_key
from auxilio.protocol.frames import AgentHeartbeat, AutomationResult, PreAuthPublish
from auxilio.protocol.types import Capability
from auxilio.server.audit.models import AuditEvent
from auxilio.server.db.base import utcnow
from auxilio.server.devices import preauth
from auxilio.server.devices.models import Device, PreAuthorisationRecord
from tests.server.support_sessions.conftest import World
from tests.server.support_sessions.peers import FakeAgent, mid
from tests.server.support_sessions.unattended_helpers import (
    Enrolled,
    EnrolledAgent,
    enrol,
    policy,
    window,
)


async def _agent(http: httpx.AsyncClient, world: World, key: Ed25519PrivateKey) -> tuple[
        Enrolled, EnrolledAgent]:
    await world.use_policy(policy())
    enrolled = await enrol(world, key)
    return enrolled, EnrolledAgent(http.live.url, enrolled)  # type: ignore[attr-defined]


async def test_an_enrolled_device_is_told_ready_and_its_presence_is_recorded(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    enrolled, agent = await _agent(http, world, signing_key)
    before = (await enrolled.row()).last_seen_at
    ready = await agent.ready()
    assert ready.device_id == str(enrolled.device_id)
    assert ready.emergency_active is False and ready.pre_authorisations == ()
    row = await enrolled.row()
    assert row.last_seen_at is not None and row.last_seen_at != before
    # Idle: heartbeats keep it, nothing else is sent.
    await agent.send(AgentHeartbeat(id=mid(), sent_at=utcnow()))
    await asyncio.sleep(0.3)
    assert not agent.closed.is_set()
    assert [m.type for m in agent.texts_of("error")] == []


async def test_an_unknown_revoked_or_other_key_device_is_refused_and_closed(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    enrolled, _ = await _agent(http, world, signing_key)
    url = http.live.url  # type: ignore[attr-defined]

    unknown = EnrolledAgent(url, enrolled)
    await unknown.connect()
    await unknown.hello(device_id=str(uuid.uuid4()))
    await unknown.expect_error("device.unknown")
    await unknown.closed.wait()

    other_key = EnrolledAgent(url, enrolled, device_key=Ed25519PrivateKey.generate())
    await other_key.connect()
    await other_key.hello()
    await other_key.expect_error("device.key_mismatch")
    await other_key.closed.wait()

    await enrolled.update(revoked_at=utcnow(), revoke_reason="stolen")
    revoked = EnrolledAgent(url, enrolled)
    await revoked.connect()
    await revoked.hello()
    await revoked.expect_error("device.revoked")
    await revoked.closed.wait()


async def test_a_device_registered_but_not_enrolled_is_unknown(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    enrolled, _ = await _agent(http, world, signing_key)
    await enrolled.update(enrolled_at=None)
    agent = EnrolledAgent(http.live.url, enrolled)  # type: ignore[attr-defined]
    await agent.connect()
    await agent.hello()
    await agent.expect_error("device.unknown")


async def test_a_pre_authorisation_is_stored_once_acked_and_named_in_the_next_ready(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    enrolled, agent = await _agent(http, world, signing_key)
    await agent.ready()
    document = enrolled.document()
    signed = enrolled.sign(document)
    await agent.publish(signed)
    ack = await agent.expect("preauth.ack")
    assert (ack.pre_authorisation_id, ack.state) == (document.id, "stored")
    await agent.publish(signed)  # the same document again: acked, nothing new
    assert (await agent.expect("preauth.ack")).state == "stored"
    async with world.app.state.sessionmaker() as db:
        rows = list((await db.execute(select(PreAuthorisationRecord))).scalars())
        stored = list((await db.execute(select(AuditEvent).where(
            AuditEvent.action == "device:pre_authorisation:stored"))).scalars())
    assert len(rows) == 1 and rows[0].scope == ["chat", "terminal"]
    assert rows[0].document == {"body": signed.body, "signature": signed.signature}
    assert len(stored) == 1
    again = EnrolledAgent(http.live.url, enrolled)  # type: ignore[attr-defined]
    ready = await again.ready()
    assert ready.pre_authorisations == (document.id,)
    # The newer connection replaced the older one.
    await agent.closed.wait()


async def test_each_bad_document_is_refused_by_code_and_the_connection_stays(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    enrolled, agent = await _agent(http, world, signing_key)
    await agent.ready()
    stranger = Ed25519PrivateKey.generate()
    cases = [
        (enrolled.sign(enrolled.document(), key=stranger), "pre_authorisation.invalid"),
        (enrolled.sign(enrolled.document(device_id=str(uuid.uuid4()))),
         "pre_authorisation.wrong_device"),
        (enrolled.sign(enrolled.document(organisation_id=str(uuid.uuid4()))),
         "pre_authorisation.wrong_organisation"),
        (enrolled.sign(enrolled.document(server_fingerprint="SHA256:another-server")),
         "pre_authorisation.wrong_server"),
        (enrolled.sign(enrolled.document(access=window(start=dt.timedelta(days=-3),
                                                       end=dt.timedelta(days=-1)))),
         "pre_authorisation.expired"),
    ]
    for signed, code in cases:
        await agent.publish(signed)
        await agent.expect_error(code)
    first = enrolled.document()
    await agent.publish(enrolled.sign(first))
    await agent.expect("preauth.ack")
    other = enrolled.document(id=first.id, scope=("chat",))
    await agent.publish(enrolled.sign(other))
    await agent.expect_error("pre_authorisation.conflict")
    await agent.revoke(enrolled.revocation(str(uuid.uuid4())))
    await agent.expect_error("pre_authorisation.unknown")
    await agent.revoke(enrolled.revocation(first.id, key=stranger))
    await agent.expect_error("pre_authorisation.invalid")
    await agent.revoke(enrolled.revocation(first.id, device_id=str(uuid.uuid4())))
    await agent.expect_error("pre_authorisation.wrong_device")
    assert not agent.closed.is_set()
    async with world.app.state.sessionmaker() as db:
        rows = list((await db.execute(select(PreAuthorisationRecord))).scalars())
    assert [(str(r.id), r.scope, r.revoked_at) for r in rows] == [(first.id, ["chat", "terminal"],
                                                                   None)]


async def test_a_revocation_is_recorded_acked_and_idempotent(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    enrolled, agent = await _agent(http, world, signing_key)
    await agent.ready()
    document = enrolled.document()
    await agent.publish(enrolled.sign(document))
    await agent.expect("preauth.ack")
    revocation = enrolled.revocation(document.id)
    await agent.revoke(revocation)
    ack = await agent.expect("preauth.ack")
    assert (ack.pre_authorisation_id, ack.state) == (document.id, "revoked")
    await agent.revoke(revocation)
    assert (await agent.expect("preauth.ack")).state == "revoked"
    async with world.app.state.sessionmaker() as db:
        row = await db.get(PreAuthorisationRecord, uuid.UUID(document.id))
        revoked = list((await db.execute(select(AuditEvent).where(
            AuditEvent.action == "device:pre_authorisation:revoked"))).scalars())
    assert row is not None and row.revoked_at is not None
    assert row.revocation == {"body": revocation.body, "signature": revocation.signature}
    assert len(revoked) == 1
    # A revoked one is never live again under its id.
    await agent.publish(enrolled.sign(document))
    await agent.expect_error("pre_authorisation.revoked")
    ready = await EnrolledAgent(http.live.url, enrolled).ready()  # type: ignore[attr-defined]
    assert ready.pre_authorisations == ()


async def test_a_one_off_agent_cannot_publish(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    enrolled, _ = await _agent(http, world, signing_key)
    agent = FakeAgent(http.live.url, device_key=enrolled.key)  # type: ignore[attr-defined]
    await agent.connect()
    await agent.authenticate()
    await agent.send(PreAuthPublish(id=mid(), document=enrolled.sign(enrolled.document())))
    await agent.expect_error("device.not_enrolled")


async def test_a_database_editor_widening_a_stored_pre_authorisation_gains_nothing(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    enrolled, agent = await _agent(http, world, signing_key)
    await agent.ready()
    document = enrolled.document(scope=("chat",))
    await agent.publish(enrolled.sign(document))
    await agent.expect("preauth.ack")
    chat, terminal = {Capability.CHAT}, {Capability.CHAT, Capability.TERMINAL}
    now = utcnow()

    async def covering(capabilities: set[Capability]) -> PreAuthorisationRecord | None:
        async with world.app.state.sessionmaker() as db:
            device = await db.get(Device, enrolled.device_id)
            assert device is not None
            return await preauth.covering(db, device, capabilities, now)

    async def edit(**values: object) -> None:
        async with world.app.state.sessionmaker() as db, db.begin():
            row = await db.get(PreAuthorisationRecord, uuid.UUID(document.id))
            assert row is not None
            for name, value in values.items():
                setattr(row, name, value)

    assert await covering(chat) is not None
    assert await covering(terminal) is None  # not what the owner signed
    original = document.window.model_dump(mode="json")
    await edit(scope=["chat", "terminal"])
    assert await covering(terminal) is None and await covering(chat) is None
    await edit(scope=["chat"], not_after=document.window.not_after + dt.timedelta(days=300))
    assert await covering(chat) is None
    await edit(not_after=document.window.not_after,
               window={**original, "not_after": "2099-01-01T00:00:00Z"})
    assert await covering(chat) is None
    await edit(window=original)
    assert await covering(chat) is not None  # as signed again: usable again
    # The stored document itself rewritten with a wider scope no longer verifies.
    wider = enrolled.sign(enrolled.document(id=document.id, scope=("chat", "terminal")),
                          key=Ed25519PrivateKey.generate())
    await edit(document={"body": wider.body, "signature": wider.signature},
               scope=["chat", "terminal"])
    assert await covering(terminal) is None
    # Another device's key on the row: the signature is checked with the device's own key.
    await enrolled.update(public_key=encode_public_key(Ed25519PrivateKey.generate().public_key()))
    await edit(document={"body": enrolled.sign(document).body,
                         "signature": enrolled.sign(document).signature}, scope=["chat"])
    assert await covering(chat) is None


async def test_an_automation_result_for_no_run_is_refused_by_its_code_and_audited(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    enrolled, agent = await _agent(http, world, signing_key)
    await agent.ready()
    run_id = str(uuid.uuid4())
    await agent.send(AutomationResult(id=mid(), run_id=run_id,
                                      result=enrolled.sign(enrolled.document())))
    await agent.expect_error("automation.result_unknown_run")
    async with world.app.state.sessionmaker() as db:
        refused = list((await db.execute(select(AuditEvent).where(
            AuditEvent.action == "automation:result:refused"))).scalars())
    assert len(refused) == 1 and refused[0].details["run_id"] == run_id
    await agent.send(AgentHeartbeat(id=mid(), sent_at=utcnow()))
    await agent.publish(enrolled.sign(enrolled.document()))
    assert (await agent.expect("preauth.ack")).state == "stored"  # the connection goes on
