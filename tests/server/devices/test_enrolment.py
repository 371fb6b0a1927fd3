"""Enrolment tokens and the agent's enrolment, on SQLite and PostgreSQL: every route's happy path,
each refusal with its code, the token single use (also two enrolments at once), the stolen token
reused, a proof made for another server, a device key already enrolled."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import datetime, timedelta

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from sqlalchemy import update

from auxilio.crypto.keys import encode_public_key, fingerprint
from auxilio.server.app import create_app
from auxilio.server.db.base import utcnow
from auxilio.server.devices.models import Device, EnrolmentToken
from auxilio.server.settings import Settings
from tests.factories import make_org, make_user
from tests.server.devices.helpers import (
    ENROLL,
    TOKENS,
    Org,
    enrol_body,
    make_world,
    new_token,
    proof,
    uid,
)


@pytest.fixture
async def world(app: FastAPI) -> Org:
    return await make_world(app)


def code(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]["code"]


# ---- tokens ----------------------------------------------------------------------------------


async def test_a_senior_technician_makes_a_token_shown_once_and_kept_as_its_hash(
    client: httpx.AsyncClient, world: Org
) -> None:
    made = await new_token(client, world, expires_in_hours=24)
    assert len(made["token"]) == 43  # 32 bytes, base64url without padding
    assert (made["device_group"], made["label"], made["state"]) == ("servers", "rack 3", "live")
    assert made["owner_id"] == str(world.owner.user.id)
    async with world.app.state.sessionmaker() as db:
        row = await db.get(EnrolmentToken, uuid.UUID(made["id"]))
        assert row is not None
        assert row.token_hash == hashlib.sha256(made["token"].encode()).hexdigest()
        assert timedelta(hours=23, minutes=59) < row.expires_at - row.created_at <= timedelta(
            hours=24)
    listed = (await client.get(TOKENS, headers=world.senior.headers)).json()["items"]
    assert [t["id"] for t in listed] == [made["id"]]
    assert "token" not in listed[0]
    created = await world.events("device:enrolment_token:created")
    assert created[0].target_id == uid(made["id"])
    assert made["token"] not in str(created[0].details)
    assert created[0].details["device_group"] == "servers"


async def test_a_token_expires_after_72_hours_by_default(
    client: httpx.AsyncClient, world: Org
) -> None:
    made = await new_token(client, world)
    expires = datetime.fromisoformat(made["expires_at"])
    assert timedelta(hours=71, minutes=59) < expires - utcnow() <= timedelta(hours=72)


async def test_a_technician_may_not_make_tokens(client: httpx.AsyncClient, world: Org) -> None:
    body = {"device_group": "servers", "owner_id": str(world.owner.user.id)}
    response = await client.post(TOKENS, headers=world.technician.headers, json=body)
    assert code(response) == (403, "forbidden")
    listed = await client.get(TOKENS, headers=world.owner.headers)
    assert listed.status_code == 403


@pytest.mark.parametrize(("fields", "expected"), [
    ({"device_group": ""}, "enrolment.group_invalid"),
    ({"device_group": "   "}, "enrolment.group_invalid"),
    ({"device_group": "x" * 65}, "enrolment.group_invalid"),
    ({"device_group": "a\nb"}, "enrolment.group_invalid"),
    ({"device_group": "a\u202eb"}, "enrolment.group_invalid"),
    ({"expires_in_hours": 0}, "enrolment.expiry_invalid"),
    ({"expires_in_hours": 721}, "enrolment.expiry_invalid"),
    ({"expires_in_hours": -5}, "enrolment.expiry_invalid"),
])  # fmt: skip
async def test_a_token_needs_a_short_group_and_an_expiry_of_1_to_720_hours(
    client: httpx.AsyncClient, world: Org, fields: dict[str, object], expected: str
) -> None:
    body = {"device_group": "servers", "owner_id": str(world.owner.user.id), **fields}
    response = await client.post(TOKENS, headers=world.senior.headers, json=body)
    assert code(response) == (422, expected)
    assert (await client.get(TOKENS, headers=world.senior.headers)).json()["items"] == []


async def test_the_owner_must_be_an_end_user_of_the_organisation(
    client: httpx.AsyncClient, world: Org, app: FastAPI
) -> None:
    elsewhere = await make_user(app, await make_org(app))
    for owner in (world.technician.user.id, elsewhere.user.id, world.org.id):
        body = {"device_group": "servers", "owner_id": str(owner)}
        response = await client.post(TOKENS, headers=world.senior.headers, json=body)
        assert code(response) == (422, "enrolment.owner_invalid")


async def test_an_unused_token_is_revoked_once(client: httpx.AsyncClient, world: Org) -> None:
    made = await new_token(client, world)
    first = await client.delete(f"{TOKENS}/{made['id']}", headers=world.senior.headers)
    assert first.status_code == 200, first.text
    assert first.json()["state"] == "revoked"
    again = await client.delete(f"{TOKENS}/{made['id']}", headers=world.senior.headers)
    assert code(again) == (409, "enrolment.token_already_revoked")
    missing = await client.delete(f"{TOKENS}/{world.org.id}", headers=world.senior.headers)
    assert code(missing) == (404, "enrolment.token_not_found")
    assert len(await world.events("device:enrolment_token:revoked")) == 1


async def test_another_organisations_token_is_not_found(
    client: httpx.AsyncClient, world: Org, app: FastAPI
) -> None:
    made = await new_token(client, world)
    other = await make_world(app)
    response = await client.delete(f"{TOKENS}/{made['id']}", headers=other.senior.headers)
    assert code(response) == (404, "enrolment.token_not_found")
    assert (await client.get(TOKENS, headers=other.senior.headers)).json()["items"] == []


# ---- enrolling -------------------------------------------------------------------------------


async def test_an_agent_enrols_with_a_token_and_a_proof_for_this_server(
    client: httpx.AsyncClient, world: Org, signing_key: Ed25519PrivateKey
) -> None:
    made = await new_token(client, world)
    key = Ed25519PrivateKey.generate()
    server = (await client.get("/api/v1/server-key")).json()
    assert server["fingerprint"] == fingerprint(signing_key.public_key())

    response = await client.post(ENROLL, json=enrol_body(made["token"], signing_key, key))

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["organisation_id"] == str(world.org.id)
    assert body["organisation_name"] == world.org.name
    assert (body["device_group"], body["owner_name"]) == ("servers", world.owner.user.display_name)
    assert body["server_public_key"] == server["public_key"]
    assert body["server_fingerprint"] == server["fingerprint"]
    [device] = await world.devices()
    assert str(device.id) == body["device_id"]
    assert (device.owner_id, device.platform, device.device_group) == (
        world.owner.user.id, "linux", "servers")
    assert device.public_key == encode_public_key(key.public_key())
    assert device.fingerprint == fingerprint(key.public_key())
    assert (device.name, device.agent_version) == ("web-01", "0.9.0")
    assert device.enrolled_at is not None and device.revoked_at is None
    listed = (await client.get(TOKENS, headers=world.senior.headers)).json()["items"]
    assert (listed[0]["state"], listed[0]["device_id"]) == ("used", body["device_id"])
    enrolled = await world.events("device:device:enrolled")
    assert [e.target_id for e in enrolled] == [uid(body["device_id"])]
    assert enrolled[0].details["fingerprint"] == fingerprint(key.public_key())
    shown = await client.get(f"/api/v1/devices/{body['device_id']}",
                             headers=world.technician.headers)  # fmt: skip
    assert shown.json()["enrolled_at"] is not None
    assert (shown.json()["agent_version"], shown.json()["online"]) == ("0.9.0", False)
    # A used token cannot be revoked: it did its work; revoke the device instead.
    late = await client.delete(f"{TOKENS}/{made['id']}", headers=world.senior.headers)
    assert code(late) == (409, "enrolment.token_used")


async def test_an_unknown_token_is_refused_and_audited(
    client: httpx.AsyncClient, world: Org, signing_key: Ed25519PrivateKey
) -> None:
    response = await client.post(ENROLL, json=enrol_body("not-a-token", signing_key))
    assert code(response) == (401, "enrolment.token_invalid")
    assert await world.devices() == []
    rejected = await world.events("device:enrolment:rejected")
    assert [e.details["code"] for e in rejected] == ["enrolment.token_invalid"]


async def test_a_token_is_single_use_and_a_reuse_is_audited_with_the_device_it_enrolled(
    client: httpx.AsyncClient, world: Org, signing_key: Ed25519PrivateKey
) -> None:
    made = await new_token(client, world)
    first = await client.post(ENROLL, json=enrol_body(made["token"], signing_key))
    assert first.status_code == 201
    thief = Ed25519PrivateKey.generate()

    stolen = await client.post(ENROLL, json=enrol_body(made["token"], signing_key, thief))

    assert code(stolen) == (409, "enrolment.token_used")
    assert len(await world.devices()) == 1
    [reused] = await world.events("device:enrolment:reused")
    assert reused.target_id == uid(first.json()["device_id"])
    assert reused.details["device_id"] == first.json()["device_id"]
    assert reused.details["presented_fingerprint"] == fingerprint(thief.public_key())
    assert reused.organisation_id == world.org.id


async def test_an_expired_token_is_refused(
    client: httpx.AsyncClient, world: Org, signing_key: Ed25519PrivateKey
) -> None:
    made = await new_token(client, world, expires_in_hours=1)
    async with world.app.state.sessionmaker() as db, db.begin():
        await db.execute(update(EnrolmentToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    response = await client.post(ENROLL, json=enrol_body(made["token"], signing_key))
    assert code(response) == (410, "enrolment.token_expired")
    assert await world.devices() == []
    listed = (await client.get(TOKENS, headers=world.senior.headers)).json()["items"]
    assert listed[0]["state"] == "expired"


async def test_a_revoked_token_is_refused(
    client: httpx.AsyncClient, world: Org, signing_key: Ed25519PrivateKey
) -> None:
    made = await new_token(client, world)
    await client.delete(f"{TOKENS}/{made['id']}", headers=world.senior.headers)
    response = await client.post(ENROLL, json=enrol_body(made["token"], signing_key))
    assert code(response) == (410, "enrolment.token_revoked")
    assert await world.devices() == []
    rejected = await world.events("device:enrolment:rejected")
    assert [e.details["code"] for e in rejected] == ["enrolment.token_revoked"]


async def test_a_proof_made_for_another_server_is_refused(
    client: httpx.AsyncClient, world: Org, signing_key: Ed25519PrivateKey
) -> None:
    made = await new_token(client, world)
    key = Ed25519PrivateKey.generate()
    elsewhere = fingerprint(Ed25519PrivateKey.generate().public_key())
    body = enrol_body(made["token"], signing_key, key, proof=proof(key, made["token"], elsewhere))
    response = await client.post(ENROLL, json=body)
    assert code(response) == (400, "enrolment.proof_invalid")
    assert response.json()["error"]["details"]["fields"] == ["server_fingerprint"]
    assert await world.devices() == []
    # The token is still good for the real device.
    assert (await client.post(ENROLL, json=enrol_body(made["token"], signing_key))
            ).status_code == 201  # fmt: skip


@pytest.mark.parametrize("fault", ["other_key", "other_token", "other_kind", "bad_key",
                                   "extra_field"])
async def test_a_proof_not_by_the_presented_key_for_this_token_is_refused(
    client: httpx.AsyncClient, world: Org, signing_key: Ed25519PrivateKey, fault: str
) -> None:
    from auxilio.crypto.signing import DocumentKind, sign_document

    made = await new_token(client, world)
    key = Ed25519PrivateKey.generate()
    server_fp = fingerprint(signing_key.public_key())
    body = enrol_body(made["token"], signing_key, key)
    if fault == "other_key":
        body["proof"] = proof(Ed25519PrivateKey.generate(), made["token"], server_fp,
                              device_public_key=body["device_public_key"])  # fmt: skip
    elif fault == "other_token":
        body["proof"] = proof(key, "another token", server_fp)
    elif fault == "other_kind":
        payload = {"token_sha256": hashlib.sha256(made["token"].encode()).hexdigest(),
                   "device_public_key": body["device_public_key"],
                   "server_fingerprint": server_fp}  # fmt: skip
        body["proof"] = sign_document(key, payload, kind=DocumentKind.AGENT_AUTH).model_dump()
    elif fault == "bad_key":
        body["device_public_key"] = "AAAA"
    else:
        body["proof"] = proof(key, made["token"], server_fp, extra="x")
    response = await client.post(ENROLL, json=body)
    assert code(response) == (400, "enrolment.proof_invalid")
    assert await world.devices() == []


async def test_a_device_key_already_enrolled_is_refused(
    client: httpx.AsyncClient, world: Org, signing_key: Ed25519PrivateKey
) -> None:
    key = Ed25519PrivateKey.generate()
    first, second = await new_token(client, world), await new_token(client, world)
    assert (await client.post(ENROLL, json=enrol_body(first["token"], signing_key, key))
            ).status_code == 201  # fmt: skip
    response = await client.post(ENROLL, json=enrol_body(second["token"], signing_key, key))
    assert code(response) == (409, "enrolment.key_in_use")
    assert len(await world.devices()) == 1
    listed = {t["id"]: t["state"] for t in
              (await client.get(TOKENS, headers=world.senior.headers)).json()["items"]}
    assert listed[second["id"]] == "live"  # not spent by the refusal
    # Once that device is revoked, the key may enrol again (the machine came back).
    async with world.app.state.sessionmaker() as db, db.begin():
        await db.execute(update(Device).values(revoked_at=utcnow()))
    again = await client.post(ENROLL, json=enrol_body(second["token"], signing_key, key))
    assert again.status_code == 201, again.text


async def test_two_enrolments_with_one_token_at_once_make_one_device(
    settings: Settings, signing_key: Ed25519PrivateKey, world: Org
) -> None:
    """Two apps (two server nodes) on one database: the token row is locked, so one wins."""
    made = await new_token_via(world, settings, signing_key)
    apps = [create_app(settings.model_copy(update={"node_id": f"n{i}"}), signing_key=signing_key)
            for i in range(2)]  # fmt: skip
    async with apps[0].router.lifespan_context(apps[0]), \
            apps[1].router.lifespan_context(apps[1]):  # fmt: skip
        clients = [
            httpx.AsyncClient(transport=httpx.ASGITransport(app=a, client=(f"198.51.100.{i}", 1)),
                              base_url="http://testserver")
            for i, a in enumerate(apps)
        ]
        try:
            answers = await asyncio.gather(*(
                c.post(ENROLL, json=enrol_body(made, signing_key)) for c in clients))
        finally:
            for c in clients:
                await c.aclose()
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [201, 409], [r.text for r in answers]
    loser = next(r for r in answers if r.status_code == 409)
    assert loser.json()["error"]["code"] == "enrolment.token_used"
    assert len(await world.devices()) == 1
    assert len(await world.events("device:device:enrolled")) == 1
    assert len(await world.events("device:enrolment:reused")) == 1


async def new_token_via(world: Org, settings: Settings, signing_key: Ed25519PrivateKey) -> str:
    transport = httpx.ASGITransport(app=world.app, client=("203.0.113.9", 1))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        return str((await new_token(c, world))["token"])


async def test_enrolment_attempts_are_rate_limited_per_address(
    client: httpx.AsyncClient, world: Org, signing_key: Ed25519PrivateKey, app: FastAPI
) -> None:
    per_minute = int(app.state.settings.rate_join_per_address_per_minute)
    answers = [await client.post(ENROLL, json=enrol_body(f"guess-{i}", signing_key))
               for i in range(per_minute + 1)]  # fmt: skip
    assert {r.status_code for r in answers[:per_minute]} == {401}
    assert code(answers[-1]) == (429, "rate_limited")
    assert int(answers[-1].headers["retry-after"]) >= 1


async def test_the_enrolment_body_is_checked(
    client: httpx.AsyncClient, world: Org, signing_key: Ed25519PrivateKey
) -> None:
    made = await new_token(client, world)
    for fault in ({"name": ""}, {"platform": "a\x00b"}, {"agent_version": "x" * 65},
                  {"proof": {"body": "!", "signature": "x"}}, {"extra": 1}):  # fmt: skip
        response = await client.post(ENROLL, json=enrol_body(made["token"], signing_key, **fault))
        assert code(response) == (422, "validation_failed"), fault
    assert await world.devices() == []
