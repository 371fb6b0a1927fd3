"""Revoking an enrolled device, on SQLite and PostgreSQL: who may, what it voids (the owner's
pre-authorisations), the close sent to the node holding the device's connection, the reason's
checks, and a second revocation refused."""

from __future__ import annotations

import uuid

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from auxilio.crypto.keys import fingerprint
from auxilio.server.devices.channel import CLOSE_DEVICE_REVOKED, device_topic
from auxilio.server.devices.models import Device, PreAuthorisationRecord
from auxilio.server.relay.bus import BusMessage, MessageKind
from tests.server.devices.helpers import (
    ENROLL,
    Org,
    enrol_body,
    make_world,
    new_token,
    pre_authorisation,
    uid,
)


@pytest.fixture
async def world(app: FastAPI) -> Org:
    return await make_world(app)


async def enrolled(
    client: httpx.AsyncClient, world: Org, signing_key: Ed25519PrivateKey
) -> tuple[uuid.UUID, Ed25519PrivateKey]:
    key = Ed25519PrivateKey.generate()
    made = await new_token(client, world)
    response = await client.post(ENROLL, json=enrol_body(made["token"], signing_key, key))
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["device_id"]), key


async def test_a_supervisor_revokes_a_device_its_pre_authorisations_die_and_it_is_closed(
    client: httpx.AsyncClient, world: Org, signing_key: Ed25519PrivateKey, app: FastAPI
) -> None:
    device_id, key = await enrolled(client, world, signing_key)
    server_fp = fingerprint(signing_key.public_key())
    async with app.state.sessionmaker() as db, db.begin():
        pre = pre_authorisation(device_id=device_id, organisation_id=world.org.id, key=key,
                                server_fingerprint=server_fp)  # fmt: skip
        db.add(pre)
    pre_id = pre.id
    heard: list[BusMessage] = []

    async def holder(message: BusMessage) -> None:  # the node holding the device's connection
        heard.append(message)

    bus = app.state.support_sessions.hub.bus
    held = await bus.subscribe(device_topic(device_id), holder)
    try:
        shown = await client.get(f"/api/v1/devices/{device_id}", headers=world.technician.headers)
        assert shown.json()["online"] is True
        response = await client.post(f"/api/v1/devices/{device_id}/revoke",
                                     headers=world.supervisor.headers,
                                     json={"reason": " Laptop stolen "})  # fmt: skip
    finally:
        await held.cancel()

    assert response.status_code == 200, response.text
    assert response.json()["revoked_at"] is not None
    assert [(m.kind, m.code) for m in heard] == [(MessageKind.CLOSE, CLOSE_DEVICE_REVOKED)]
    async with app.state.sessionmaker() as db:
        device = await db.get(Device, device_id)
        stored = await db.get(PreAuthorisationRecord, pre_id)
    assert device is not None and stored is not None
    assert (device.revoke_reason, device.revoked_by) == ("Laptop stolen", world.supervisor.user.id)
    assert stored.revoked_at is not None
    assert stored.revocation is not None
    assert stored.revocation["by"] == "organisation"
    assert stored.revocation["reason"] == "Laptop stolen"
    [event] = await world.events("device:device:revoked")
    assert event.target_id == uid(device_id)
    assert event.details["pre_authorisations"] == [str(pre_id)]
    assert event.details["support_sessions_ended"] == []

    again = await client.post(f"/api/v1/devices/{device_id}/revoke",
                              headers=world.supervisor.headers, json={"reason": "again"})
    assert (again.status_code, again.json()["error"]["code"]) == (409, "device.already_revoked")
    assert len(await world.events("device:device:revoked")) == 1


async def test_a_technician_may_not_revoke(
    client: httpx.AsyncClient, world: Org, signing_key: Ed25519PrivateKey
) -> None:
    device_id, _ = await enrolled(client, world, signing_key)
    for person in (world.technician, world.senior, world.owner):
        response = await client.post(f"/api/v1/devices/{device_id}/revoke",
                                     headers=person.headers, json={"reason": "no"})
        assert response.status_code == 403
    assert [d.revoked_at for d in await world.devices()] == [None]


@pytest.mark.parametrize("reason", ["", "   ", "x" * 2001, "a\x00b", "a\u202eb"])
async def test_a_revocation_needs_a_reason(
    client: httpx.AsyncClient, world: Org, signing_key: Ed25519PrivateKey, reason: str
) -> None:
    device_id, _ = await enrolled(client, world, signing_key)
    response = await client.post(f"/api/v1/devices/{device_id}/revoke",
                                 headers=world.supervisor.headers, json={"reason": reason})
    assert (response.status_code, response.json()["error"]["code"]) == (
        422, "device.reason_invalid")
    assert [d.revoked_at for d in await world.devices()] == [None]


async def test_another_organisations_device_is_not_found(
    client: httpx.AsyncClient, world: Org, signing_key: Ed25519PrivateKey, app: FastAPI
) -> None:
    device_id, _ = await enrolled(client, world, signing_key)
    other = await make_world(app)
    for target in (device_id, uuid.uuid4()):
        response = await client.post(f"/api/v1/devices/{target}/revoke",
                                     headers=other.supervisor.headers, json={"reason": "x"})
        assert (response.status_code, response.json()["error"]["code"]) == (
            404, "device_not_found")
