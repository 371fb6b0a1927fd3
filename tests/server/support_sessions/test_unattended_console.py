"""The console's unattended start page (/console/devices/{id}/connect): the owner's open tickets
and only the capabilities the owner's open pre-authorisation allows."""

from __future__ import annotations

import datetime as dt
import uuid

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auxilio.server.web.session import SESSION_COOKIE
from tests.server.support_sessions.conftest import World
from tests.server.support_sessions.unattended_helpers import EnrolledAgent, enrol, policy, window


async def _page(
    http: httpx.AsyncClient, world: World, device_id: uuid.UUID | str
) -> httpx.Response:
    return await http.get(f"/console/devices/{device_id}/connect",
                          headers={"Cookie": f"{SESSION_COOKIE}={world.technician.token}"})


async def test_the_connect_page_offers_the_owners_tickets_and_the_pre_authorised_scope(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    await world.use_policy(policy())
    enrolled = await enrol(world, signing_key)
    page = await _page(http, world, enrolled.device_id)
    assert page.status_code == 200, page.text
    assert 'id="no-pre-authorisation"' in page.text and "start-session-form" not in page.text
    assert 'id="device-offline"' in page.text

    agent = EnrolledAgent(http.live.url, enrolled)  # type: ignore[attr-defined]
    await agent.ready()
    document = enrolled.document(scope=("chat",))
    await agent.publish(enrolled.sign(document))
    await agent.expect("preauth.ack")
    # One that opens only tomorrow adds nothing now.
    await agent.publish(enrolled.sign(enrolled.document(
        scope=("chat", "terminal"), access=window(start=dt.timedelta(days=1)))))
    await agent.expect("preauth.ack")
    page = await _page(http, world, enrolled.device_id)
    assert page.status_code == 200
    assert f'data-device-id="{enrolled.device_id}"' in page.text
    assert 'name="mode" value="unattended"' in page.text
    assert f'<option value="{world.ticket_id}">' in page.text
    assert 'id="cap-chat"' in page.text and 'id="cap-terminal"' not in page.text
    assert document.id in page.text and 'id="device-online"' in page.text


async def test_an_unknown_device_is_not_found(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    page = await _page(http, world, uuid.uuid4())
    assert page.status_code == 404
