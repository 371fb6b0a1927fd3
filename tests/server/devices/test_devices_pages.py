"""The console's device pages in process (the browser test is tests/web/test_devices_page.py):
the list with its filters, presence and pre-authorisation states, the detail page's connect
link only when online inside a live window, the enrol form showing its token once, the revoke
form (CSRF, supervisors only, a bad reason worded), and a forged pre-authorisation never live."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from sqlalchemy import select

from auxilio.crypto.keys import fingerprint
from auxilio.server.db.base import utcnow
from auxilio.server.devices.channel import device_topic
from auxilio.server.devices.models import Device, EnrolmentToken
from auxilio.server.relay.bus import BusMessage
from auxilio.server.web.session import CSRF_FIELD, SESSION_COOKIE, csrf_for_token, csrf_key
from tests.factories import Person
from tests.server.devices.helpers import (
    ENROLL,
    Org,
    enrol_body,
    make_world,
    new_token,
    pre_authorisation,
)


@pytest.fixture
async def world(app: FastAPI) -> Org:
    return await make_world(app)


async def token_id(app: FastAPI, person: Person) -> object:
    from auxilio.server.identity.auth import resolve_token

    async with app.state.sessionmaker() as db:
        token, _user = await resolve_token(db, secret=person.token)
        return token.id


async def post_form(
    client: httpx.AsyncClient, app: FastAPI, person: Person, path: str, data: dict[str, str],
    *, csrf: bool = True,
) -> httpx.Response:  # fmt: skip
    form = dict(data)
    if csrf:
        form[CSRF_FIELD] = csrf_for_token(csrf_key(app.state), await token_id(app, person))
    cookie = {"Cookie": f"{SESSION_COOKIE}={person.token}"}
    return await client.post(path, data=form, headers=cookie)


async def get(client: httpx.AsyncClient, person: Person, path: str) -> httpx.Response:
    return await client.get(path, headers={"Cookie": f"{SESSION_COOKIE}={person.token}"})


async def enrolled(
    client: httpx.AsyncClient, world: Org, signing_key: Ed25519PrivateKey, *,
    group: str = "servers", name: str = "web-01",
) -> tuple[uuid.UUID, Ed25519PrivateKey]:  # fmt: skip
    key = Ed25519PrivateKey.generate()
    made = await new_token(client, world, device_group=group)
    body = enrol_body(made["token"], signing_key, key, name=name)
    response = await client.post(ENROLL, json=body)
    assert response.status_code == 201, response.text
    return uuid.UUID(response.json()["device_id"]), key


async def add_pre(app: FastAPI, world: Org, device_id: uuid.UUID, key: Ed25519PrivateKey,
                  signing_key: Ed25519PrivateKey, **options: object) -> uuid.UUID:  # fmt: skip
    async with app.state.sessionmaker() as db, db.begin():
        record = pre_authorisation(device_id=device_id, organisation_id=world.org.id, key=key,
                                   server_fingerprint=fingerprint(signing_key.public_key()),
                                   **options)  # type: ignore[arg-type]  # fmt: skip
        db.add(record)
    return uuid.UUID(str(record.id))


def row_of(html: str, device_id: uuid.UUID) -> str:
    found = re.search(rf'<tr data-device-id="{device_id}">(.*?)</tr>', html, re.S)
    assert found, html[:3000]
    return found.group(1)


async def test_the_list_shows_presence_pre_authorisation_and_filters(
    client: httpx.AsyncClient, world: Org, signing_key: Ed25519PrivateKey, app: FastAPI
) -> None:
    servers, key = await enrolled(client, world, signing_key)
    desks, _ = await enrolled(client, world, signing_key, group="desks", name="desk-7")
    await add_pre(app, world, servers, key, signing_key, window={
        "weekdays": [0, 1, 2, 3, 4], "daily_start": "09:00", "daily_end": "17:00",
        "timezone": "Europe/Madrid"})  # fmt: skip

    async def holder(message: BusMessage) -> None:
        del message

    held = await app.state.support_sessions.hub.bus.subscribe(device_topic(servers), holder)
    try:
        html = (await get(client, world.technician, "/console/devices")).text
        online_only = (await get(client, world.technician, "/console/devices?online=1")).text
    finally:
        await held.cancel()
    row = row_of(html, servers)
    assert "Online" in row and "Live until" in row
    assert "Chat, Terminal" in row
    assert "Mon, Tue, Wed, Thu, Fri 09:00-17:00 (Europe/Madrid)" in row
    assert "Enrolled" in row
    assert "None" in row_of(html, desks) and "Offline" in row_of(html, desks)
    assert f'data-device-id="{desks}"' not in online_only
    assert f'data-device-id="{servers}"' in online_only
    desks_only = (await get(client, world.technician, "/console/devices?group=desks")).text
    assert f'data-device-id="{servers}"' not in desks_only
    hostile = await get(client, world.technician, "/console/devices?group=a%00b")
    assert hostile.status_code == 200 and f'data-device-id="{servers}"' in hostile.text
    # In Spanish, the weekday names are Spanish; the hours stay in the window's zone.
    spanish = await client.get("/console/devices", headers={
        "Cookie": f"{SESSION_COOKIE}={world.technician.token}; auxilio_lang=es"})
    assert "lun, mar, mié, jue, vie 09:00-17:00 (Europe/Madrid)" in row_of(spanish.text, servers)
    # A technician has no enrol form; a senior technician has.
    assert 'id="enrol-form"' not in html
    assert 'id="enrol-form"' in (await get(client, world.senior, "/console/devices")).text


async def test_a_forged_or_revoked_pre_authorisation_is_never_live(
    client: httpx.AsyncClient, world: Org, signing_key: Ed25519PrivateKey, app: FastAPI
) -> None:
    device_id, _key = await enrolled(client, world, signing_key)
    forger = Ed25519PrivateKey.generate()  # not the device's key
    await add_pre(app, world, device_id, forger, signing_key)
    html = (await get(client, world.technician, f"/console/devices/{device_id}")).text
    assert "Invalid signature" in html
    assert "connect-unattended" not in html
    assert "Invalid signature" in row_of(
        (await get(client, world.technician, "/console/devices")).text, device_id)


async def test_the_connect_link_shows_only_when_online_inside_a_live_window(
    client: httpx.AsyncClient, world: Org, signing_key: Ed25519PrivateKey, app: FastAPI
) -> None:
    device_id, key = await enrolled(client, world, signing_key)
    path = f"/console/devices/{device_id}"
    await add_pre(app, world, device_id, key, signing_key)

    async def holder(message: BusMessage) -> None:
        del message

    offline = (await get(client, world.technician, path)).text
    held = await app.state.support_sessions.hub.bus.subscribe(device_topic(device_id), holder)
    try:
        online = (await get(client, world.technician, path)).text
        # A window that opens only later (tomorrow and after): online, but not now.
        later = utcnow() + timedelta(days=1)
        async with app.state.sessionmaker() as db, db.begin():
            from sqlalchemy import delete

            from auxilio.server.devices.models import PreAuthorisationRecord

            await db.execute(delete(PreAuthorisationRecord))
        await add_pre(app, world, device_id, key, signing_key,
                      window={"not_before": later, "not_after": later + timedelta(days=2)})
        shut = (await get(client, world.technician, path)).text
    finally:
        await held.cancel()
    assert "connect-unattended" not in offline
    assert f'href="/console/devices/{device_id}/connect"' in online
    assert "connect-unattended" not in shut
    assert "opens" in shut


async def test_the_enrol_form_shows_the_token_once_with_the_command_line(
    client: httpx.AsyncClient, world: Org, app: FastAPI
) -> None:
    response = await post_form(client, app, world.senior, "/console/devices/enrol", {
        "device_group": "servers", "owner_id": str(world.owner.user.id), "label": "rack",
        "expires_in_hours": "24"})  # fmt: skip
    assert response.status_code == 200, response.text[:2000]
    found = re.search(r"auxilio agent enroll --server (\S+) --token ([A-Za-z0-9_-]{43})",
                      response.text)  # fmt: skip
    assert found, response.text[:3000]
    assert found.group(1) == "http://testserver"
    async with app.state.sessionmaker() as db:
        from sqlalchemy import select

        [row] = (await db.execute(select(EnrolmentToken))).scalars()
    import hashlib

    assert row.token_hash == hashlib.sha256(found.group(2).encode()).hexdigest()
    assert found.group(2) not in (await get(client, world.senior, "/console/devices")).text


@pytest.mark.parametrize(("data", "code"), [
    ({"device_group": "", "owner_id": "x"}, "enrolment.group_invalid"),
    ({"device_group": "servers", "owner_id": "not-a-uuid"}, "enrolment.owner_invalid"),
    ({"device_group": "servers", "expires_in_hours": "999"}, "enrolment.expiry_invalid"),
    ({"device_group": "servers", "expires_in_hours": "soon"}, "enrolment.expiry_invalid"),
    # The label as the API's schema takes it: one line, no control or bidirectional characters.
    ({"device_group": "servers", "label": "rack\x00b"}, "validation_failed"),
    ({"device_group": "servers", "label": "rack\u202etxt.exe"}, "validation_failed"),
    ({"device_group": "servers", "label": "rack\nforged line"}, "validation_failed"),
])  # fmt: skip
async def test_the_enrol_form_words_each_refusal(
    client: httpx.AsyncClient, world: Org, app: FastAPI, data: dict[str, str], code: str
) -> None:
    form = {"owner_id": str(world.owner.user.id), **data}
    response = await post_form(client, app, world.senior, "/console/devices/enrol", form)
    assert response.status_code == 422
    assert f"<code>{code}</code>" in response.text
    assert "auxilio agent enroll" not in response.text
    async with app.state.sessionmaker() as db:  # nothing kept
        assert list((await db.execute(select(EnrolmentToken).where(
            EnrolmentToken.created_by == world.senior.user.id))).scalars()) == []  # fmt: skip


async def test_the_enrol_form_needs_csrf_and_the_permission(
    client: httpx.AsyncClient, world: Org, app: FastAPI
) -> None:
    form = {"device_group": "servers", "owner_id": str(world.owner.user.id)}
    assert (await post_form(client, app, world.senior, "/console/devices/enrol", form,
                            csrf=False)).status_code == 403  # fmt: skip
    assert (await post_form(client, app, world.technician, "/console/devices/enrol",
                            form)).status_code == 403  # fmt: skip
    async with app.state.sessionmaker() as db:
        from sqlalchemy import func, select

        assert (await db.execute(select(func.count()).select_from(EnrolmentToken))
                ).scalar_one() == 0  # fmt: skip


async def test_a_supervisor_revokes_from_the_page(
    client: httpx.AsyncClient, world: Org, signing_key: Ed25519PrivateKey, app: FastAPI
) -> None:
    device_id, key = await enrolled(client, world, signing_key)
    await add_pre(app, world, device_id, key, signing_key)
    path = f"/console/devices/{device_id}"
    assert 'id="revoke-form"' not in (await get(client, world.technician, path)).text
    assert 'id="revoke-form"' in (await get(client, world.supervisor, path)).text
    refused = await post_form(client, app, world.technician, f"{path}/revoke", {"reason": "x"})
    assert refused.status_code == 403
    no_csrf = await post_form(client, app, world.supervisor, f"{path}/revoke", {"reason": "x"},
                              csrf=False)  # fmt: skip
    assert no_csrf.status_code == 403
    blank = await post_form(client, app, world.supervisor, f"{path}/revoke", {"reason": " "})
    assert blank.status_code == 422 and "<code>device.reason_invalid</code>" in blank.text

    done = await post_form(client, app, world.supervisor, f"{path}/revoke", {"reason": "Stolen"})

    assert (done.status_code, done.headers["location"]) == (303, path)
    async with app.state.sessionmaker() as db:
        device = await db.get(Device, device_id)
    assert device is not None and device.revoke_reason == "Stolen"
    html = (await get(client, world.supervisor, path)).text
    assert "Stolen" in html and 'id="revoke-form"' not in html
    assert "Revoked" in html
    again = await post_form(client, app, world.supervisor, f"{path}/revoke", {"reason": "Again"})
    assert again.status_code == 409 and "<code>device.already_revoked</code>" in again.text
    elsewhere = f"/console/devices/{uuid.uuid4()}/revoke"
    other = await post_form(client, app, world.supervisor, elsewhere, {"reason": "x"})
    assert other.status_code == 404
