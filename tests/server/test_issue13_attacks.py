"""Issue 13 (unattended access) reviewed as an attacker, on the server: an emergency declared
while an unattended offer waits for the device's automatic receipt, an automated run whose
signed output goes onto another person's ticket, a stolen enrolment token raced, and a
technician of another organisation reaching a device.

Each finding is a test marked ``xfail(strict=True)`` with the hole as its reason: it fails
while the hole is open and turns the suite red once it is fixed (then drop the marker). The
other tests are defences that held, kept because each can fail.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from sqlalchemy import select

import tests.server.automation.conftest as automation
import tests.server.support_sessions.conftest as sessions
from auxilio.crypto.keys import encode_public_key, fingerprint
from auxilio.crypto.signing import DocumentKind, sign_document
from auxilio.policy.roles import Role
from auxilio.server.devices.enrolment import token_digest
from auxilio.server.devices.models import Device, EnrolmentToken
from auxilio.server.emergency.models import Emergency
from tests.factories import make_org, make_ticket, make_user
from tests.server.support_sessions.conftest import World
from tests.server.support_sessions.test_unattended_sessions import _consent, _offered, _published
from tests.server.support_sessions.unattended_helpers import POLICY

# The support-session fixtures (a real server over sockets), used here as their own tests do.
settings = sessions.settings
server_settings = sessions.server_settings
start_server = sessions.start_server
_close_peers = sessions._close_peers
http = sessions.http
world = sessions.world
# The automated runs' world, under another name (its own module calls it ``world``).
automation_world = automation.world


def _policy_without_ending_sessions() -> str:
    """The unattended test policy, but an emergency does not end live sessions: it only locks
    unattended access (``end_all_sessions: false`` is a policy the schema accepts)."""
    text = POLICY.format(max_duration="1h", lock="true")
    return text.replace("end_all_sessions: true", "end_all_sessions: false")


# -- emergencies ----------------------------------------------------------------------------


async def test_an_unattended_receipt_arriving_during_an_emergency_does_not_start_it(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    await world.use_policy(_policy_without_ending_sessions())
    enrolled, agent, _ = await _published(http, world, signing_key)
    sid, _, grant = await _offered(http, world, agent, enrolled.device_id, signing_key)
    # Declared while the offer waits (what emergency.service.declare writes under this policy:
    # the row, no session ended).
    async with world.app.state.sessionmaker() as db, db.begin():
        db.add(Emergency(organisation_id=world.org.id, declared_by=world.technician.user.id,
                         reason="breach", actions=["lock_unattended"], escalate_to=[]))
    await _consent(agent, grant)
    await asyncio.sleep(0.5)
    row = await world.row(sid)
    assert row.state != "active", "an unattended session started during an emergency"
    assert row.end_reason == "emergency"


async def test_an_unattended_offer_is_never_made_during_an_emergency_without_the_lock(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    """Held: a policy that neither ends sessions nor locks unattended access still gets no
    offer once the technician attaches (offer_unattended checks the emergency itself)."""
    text = _policy_without_ending_sessions().replace("lock_unattended: true",
                                                     "lock_unattended: false")
    await world.use_policy(text)
    enrolled, agent, _ = await _published(http, world, signing_key)
    async with world.app.state.sessionmaker() as db, db.begin():
        db.add(Emergency(organisation_id=world.org.id, declared_by=world.technician.user.id,
                         reason="breach", actions=[], escalate_to=[]))
    from tests.server.support_sessions.peers import FakeTechnician
    from tests.server.support_sessions.unattended_helpers import ask

    technician = FakeTechnician(http.live.url)  # type: ignore[attr-defined]
    response = await ask(http, world, technician, enrolled.device_id)
    assert response.status_code == 201, response.text
    await technician.connect()
    await technician.attach(response.json()["id"], world.technician.token)
    await technician.expect_error("emergency.unattended_locked")
    await asyncio.sleep(0.3)
    assert agent.texts_of("session.offer") == []


# -- automated runs -------------------------------------------------------------------------


async def test_an_automated_run_goes_only_onto_a_ticket_of_the_device_s_owner(
    automation_world: automation.World,
) -> None:
    w = automation_world
    await w.pre_authorise()
    stranger = await make_user(w.app, w.org, Role.END_USER)
    their_ticket = await make_ticket(w.app, stranger, title="Not about this device")
    response = await w.schedule(ticket_id=str(their_ticket), sections=["processes"])
    assert response.status_code in (403, 409, 422), response.text
    assert response.json()["error"]["code"] == "automation.ticket_device_mismatch"


async def test_a_senior_technician_of_another_organisation_cannot_touch_a_device_s_runs(
    automation_world: automation.World,
) -> None:
    """Held: another organisation's senior technician gets 404 for the device, every verb."""
    w = automation_world
    await w.pre_authorise()
    other = await make_org(w.app)
    outsider = await make_user(w.app, other, Role.SENIOR_TECHNICIAN)
    made = await w.schedule(sections=["os"])
    assert made.status_code == 201, made.text
    run = made.json()["id"]
    for method, url, body in (("POST", w.api, {"kind": "diagnostics", "sections": ["os"]}),
                              ("GET", w.api, None), ("GET", f"{w.api}/{run}", None),
                              ("DELETE", f"{w.api}/{run}", None)):  # fmt: skip
        answer = await w.client.request(method, url, json=body, headers=outsider.headers)
        assert answer.status_code == 404, (method, url, answer.text)
        assert answer.json()["error"]["code"] == "device_not_found"
    async with w.app.state.sessionmaker() as db:
        from auxilio.server.automation.models import AutomationRun

        found = await db.get(AutomationRun, uuid.UUID(run))
        assert found is not None and found.state == "scheduled"



@pytest.mark.parametrize("change", [{"is_active": False}, {"role": "technician"}])
async def test_a_run_of_a_technician_who_lost_the_right_is_never_sent(
    automation_world: automation.World, change: dict[str, Any]
) -> None:
    from auxilio.server.automation import sending as runs
    from auxilio.server.identity.models import User

    w = automation_world
    await w.pre_authorise()
    made = await w.schedule(sections=["os"], repeat_seconds=3600)
    assert made.status_code == 201, made.text
    async with w.app.state.sessionmaker() as db, db.begin():
        user = await db.get(User, w.senior.user.id)
        assert user is not None
        for name, value in change.items():
            setattr(user, name, value)
    async with w.app.state.sessionmaker() as db, db.begin():
        sent = await runs.send_due(db, server_key=w.server_key, online={w.device_id})
    assert sent == [], "the run was signed and sent for someone who may no longer run it"


async def test_a_run_the_active_policy_no_longer_allows_is_never_sent(
    automation_world: automation.World,
) -> None:
    from auxilio.server.automation import sending as runs

    w = automation_world
    await w.pre_authorise()
    made = await w.schedule(sections=["os"], repeat_seconds=3600)
    assert made.status_code == 201, made.text
    await w.use_policy(automation.automation_policy(allowed_device_groups=["kiosks"]))
    refused = await w.schedule(sections=["os"])
    assert refused.status_code == 403, refused.text  # a new request is refused by the policy
    async with w.app.state.sessionmaker() as db, db.begin():
        sent = await runs.send_due(db, server_key=w.server_key, online={w.device_id})
    assert sent == [], "a run the active policy no longer allows was signed and sent"


async def test_a_run_is_never_sent_under_a_pre_authorisation_older_than_the_policy_takes(
    automation_world: automation.World,
) -> None:
    from auxilio.crypto.preauth import AccessWindow
    from auxilio.server.automation import sending as runs

    w = automation_world
    now = dt.datetime.now(dt.UTC)
    await w.pre_authorise(window=AccessWindow(not_before=now - dt.timedelta(hours=1),
                                              not_after=now + dt.timedelta(days=90)))
    later = now + dt.timedelta(days=40)
    made = await w.schedule(sections=["os"], due_at=later.isoformat())
    if made.status_code == 403:
        return  # refused when scheduled: fixed there
    assert made.status_code == 201, made.text
    async with w.app.state.sessionmaker() as db, db.begin():
        sent = await runs.send_due(db, server_key=w.server_key, online={w.device_id}, now=later)
    assert sent == [], "sent under a pre-authorisation the policy no longer accepts"

# -- enrolment ------------------------------------------------------------------------------


async def _token(app: FastAPI, *, hours: int = 24) -> tuple[str, Any]:
    org = await make_org(app)
    owner = await make_user(app, org, Role.END_USER)
    senior = await make_user(app, org, Role.SENIOR_TECHNICIAN)
    token = f"stolen-{uuid.uuid4().hex}"
    async with app.state.sessionmaker() as db, db.begin():
        db.add(EnrolmentToken(
            organisation_id=org.id, token_hash=token_digest(token), device_group="kiosks",
            owner_id=owner.user.id, created_by=senior.user.id,
            expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours)))  # fmt: skip
    return token, org


def _enrolment_body(token: str, key: Ed25519PrivateKey, server_key: Ed25519PrivateKey,
                    **changes: Any) -> dict[str, Any]:  # fmt: skip
    device_key = encode_public_key(key.public_key())
    proof = sign_document(key, {"token_sha256": token_digest(token),
                                "device_public_key": device_key,
                                "server_fingerprint": fingerprint(server_key.public_key())},
                          kind=DocumentKind.ENROLMENT)  # fmt: skip
    body = {"token": token, "device_public_key": device_key, "platform": "linux",
            "name": "kiosk", "agent_version": "1.0", "proof": proof.model_dump(mode="json")}
    body.update(changes)
    return body


async def test_a_stolen_token_raced_by_two_devices_enrols_exactly_one(
    app: FastAPI, client: httpx.AsyncClient, signing_key: Ed25519PrivateKey
) -> None:
    """Held: the owner's agent and the thief send the token at once; one device is enrolled,
    the other gets enrolment.token_used (never a 500, never two devices)."""
    token, org = await _token(app)
    bodies = [_enrolment_body(token, Ed25519PrivateKey.generate(), signing_key)
              for _ in range(4)]  # fmt: skip
    answers = await asyncio.gather(*(client.post("/api/v1/agents/enroll", json=b)
                                     for b in bodies))  # fmt: skip
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201, 409, 409, 409], [a.text for a in answers]
    assert {a.json()["error"]["code"] for a in answers if a.status_code == 409} == {
        "enrolment.token_used"}
    async with app.state.sessionmaker() as db:
        devices = list((await db.execute(select(Device).where(
            Device.organisation_id == org.id))).scalars())  # fmt: skip
    assert len(devices) == 1


@pytest.mark.parametrize("changes, code", [
    ({"proof": {"body": "x" * 10_000, "signature": "y"}}, "validation_failed"),
    ({"name": "a" * 201}, "validation_failed"),
    ({"agent_version": "1\x00"}, "validation_failed"),
    ({"platform": "l\u202eux"}, "validation_failed"),
    ({"device_public_key": "not-a-key"}, "enrolment.proof_invalid"),
])  # fmt: skip
async def test_garbage_enrolment_bodies_get_a_stable_code(
    app: FastAPI, client: httpx.AsyncClient, signing_key: Ed25519PrivateKey,
    changes: dict[str, Any], code: str,
) -> None:
    """Held: what a fuzzer sends to the public enrolment endpoint is a 4xx with its code, and
    the token stays unused."""
    token, _ = await _token(app)
    body = _enrolment_body(token, Ed25519PrivateKey.generate(), signing_key, **changes)
    answer = await client.post("/api/v1/agents/enroll", json=body)
    assert 400 <= answer.status_code < 500, answer.text
    assert answer.json()["error"]["code"] == code
    async with app.state.sessionmaker() as db:
        row = (await db.execute(select(EnrolmentToken).where(
            EnrolmentToken.token_hash == token_digest(token)))).scalar_one()  # fmt: skip
    assert row.used_at is None


# -- the attended flow next to the enrolled service ------------------------------------------


async def test_the_service_connecting_never_takes_the_person_s_attended_session(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    from auxilio.protocol.types import Capability, ConsentDecision
    from tests.server.support_sessions.flow import request
    from tests.server.support_sessions.peers import FakeAgent, FakeTechnician
    from tests.server.support_sessions.unattended_helpers import EnrolledAgent, enrol, policy

    await world.use_policy(policy())
    enrolled = await enrol(world, signing_key)
    technician = FakeTechnician(http.live.url)  # type: ignore[attr-defined]
    response = await request(http, world, technician)
    assert response.status_code == 201, response.text
    created = response.json()
    await technician.connect()
    await technician.attach(created["id"], world.technician.token)
    await technician.expect_state("attached")
    # The person runs `auxilio agent join CODE` on the enrolled device: the same device key.
    person = FakeAgent(http.live.url, device_key=enrolled.key)  # type: ignore[attr-defined]
    await person.connect()
    await person.authenticate()
    await person.join(created["join_code"])
    person.verify(signing_key)
    # Meanwhile the service (re)connects, as it does after any network blip.
    service = EnrolledAgent(http.live.url, enrolled)  # type: ignore[attr-defined]
    await service.ready()
    await asyncio.sleep(0.5)
    assert service.texts_of("session.offer") == [], "the service was offered the attended session"
    await person.decide({Capability.CHAT: ConsentDecision.GRANTED})
    await person.expect_state("consented")


async def test_a_join_on_the_device_never_takes_over_the_live_unattended_session(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    from tests.server.support_sessions.peers import FakeAgent
    from tests.server.support_sessions.unattended_helpers import policy

    await world.use_policy(policy())
    enrolled, service, _ = await _published(http, world, signing_key)
    sid, _, grant = await _offered(http, world, service, enrolled.device_id, signing_key)
    await _consent(service, grant)
    await service.expect_state("consented")
    person = FakeAgent(http.live.url, device_key=enrolled.key)  # type: ignore[attr-defined]
    await person.connect()
    await person.authenticate()
    await asyncio.sleep(0.5)
    taken = [m for m in person.texts_of("session.state") if m.support_session_id == sid]
    assert taken == [], "the attended join's connection took over the unattended session"


# -- unbounded counts -----------------------------------------------------------------------


async def test_a_device_cannot_store_pre_authorisations_without_bound(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    from auxilio.server.devices.models import PreAuthorisationRecord
    from tests.server.support_sessions.unattended_helpers import EnrolledAgent, enrol, policy

    await world.use_policy(policy())
    enrolled = await enrol(world, signing_key)
    agent = EnrolledAgent(http.live.url, enrolled)  # type: ignore[attr-defined]
    await agent.ready()
    answers = []
    for _ in range(80):
        await agent.publish(enrolled.sign(enrolled.document()))
        answers.append(await agent.next_where(lambda f: isinstance(f, str) and (
            '"preauth.ack"' in f or '"error"' in f)))  # fmt: skip
    async with world.app.state.sessionmaker() as db:
        stored = list((await db.execute(select(PreAuthorisationRecord).where(
            PreAuthorisationRecord.device_id == enrolled.device_id))).scalars())  # fmt: skip
    assert len(stored) <= 64, f"{len(stored)} live pre-authorisations kept for one device"
    assert any('"error"' in a for a in answers)


async def test_garbage_on_the_enrolled_connection_gets_stable_codes_and_it_stays_open(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    """Held: documents that do not verify, verify as the wrong kind, or do not parse as what
    they claim; ids that are not UUIDs; results of runs never sent: each an `error` with its
    code, nothing stored, and the device's connection stays up."""
    from auxilio.protocol.frames import AutomationResult, PreAuthPublish, PreAuthRevoke
    from auxilio.protocol.frames import parse_message as parse
    from auxilio.protocol.types import SignedDocument
    from auxilio.server.devices.models import PreAuthorisationRecord
    from tests.server.support_sessions.peers import mid
    from tests.server.support_sessions.unattended_helpers import EnrolledAgent, enrol, policy

    await world.use_policy(policy())
    enrolled = await enrol(world, signing_key)
    agent = EnrolledAgent(http.live.url, enrolled)  # type: ignore[attr-defined]
    await agent.ready()

    async def answer() -> Any:
        return parse(await agent.next_where(lambda f: isinstance(f, str)))

    pre, rev = DocumentKind.PRE_AUTHORISATION, DocumentKind.PRE_AUTHORISATION_REVOCATION
    unsigned = SignedDocument(body="AAAA", signature="A" * 86)
    for document in (unsigned, sign_document(enrolled.key, {"x": 1}, kind=pre),
                     sign_document(enrolled.key, {"a": "b"}, kind=rev),
                     enrolled.sign(enrolled.document(id="not-a-uuid"))):  # fmt: skip
        await agent.send(PreAuthPublish(id=mid(), document=document))
        assert (await answer()).code == "pre_authorisation.invalid"
        await agent.send(PreAuthRevoke(id=mid(), document=document))
        assert (await answer()).code in ("pre_authorisation.invalid", "pre_authorisation.unknown")
    await agent.send(PreAuthRevoke(id=mid(), document=enrolled.revocation(str(uuid.uuid4()))))
    assert (await answer()).code == "pre_authorisation.unknown"
    for run in ("not-a-uuid", str(uuid.uuid4())):
        await agent.send(AutomationResult(id=mid(), run_id=run, result=unsigned))
        assert (await answer()).code == "automation.result_unknown_run"
    await asyncio.sleep(0.2)
    assert not agent.closed.is_set()
    async with world.app.state.sessionmaker() as db:
        assert list((await db.execute(select(PreAuthorisationRecord))).scalars()) == []


# -- the console's enrol form -------------------------------------------------------------------


@pytest.mark.parametrize("label", ["rack\x00b", "rack\u202etxt.exe", "rack\nforged line"])
async def test_the_enrol_form_refuses_a_label_the_api_refuses(
    app: FastAPI, client: httpx.AsyncClient, label: str
) -> None:
    from auxilio.server.validation import forbidden_character
    from tests.server.devices.helpers import make_world
    from tests.server.devices.test_devices_pages import post_form

    org = await make_world(app)
    api = await client.post("/api/v1/enrolment-tokens", headers=org.senior.headers, json={
        "device_group": "servers", "owner_id": str(org.owner.user.id), "label": label})
    assert api.status_code == 422 and api.json()["error"]["code"] == "validation_failed"
    page = await post_form(client, app, org.senior, "/console/devices/enrol", {
        "device_group": "servers", "owner_id": str(org.owner.user.id), "label": label,
        "expires_in_hours": "24"})  # fmt: skip
    assert page.status_code < 500
    async with app.state.sessionmaker() as db:
        labels = [row.label for row in (await db.execute(select(EnrolmentToken))).scalars()]
    assert all(forbidden_character(text, multiline=False) is None for text in labels), labels


async def test_a_technician_of_another_organisation_never_reaches_the_device(
    http: httpx.AsyncClient, world: World, signing_key: Ed25519PrivateKey
) -> None:
    """Held: with a ticket of their own organisation, a technician of another one asking for an
    unattended session on this organisation's enrolled, pre-authorised, online device gets
    404 device_not_found, and the device is offered nothing."""
    from auxilio.server.context import Actor
    from auxilio.server.policies import service as policies
    from tests.factories import make_technician
    from tests.server.support_sessions.conftest import mfa_token
    from tests.server.support_sessions.peers import FakeTechnician
    from tests.server.support_sessions.unattended_helpers import error_code, policy

    await world.use_policy(policy())
    enrolled, agent, _ = await _published(http, world, signing_key)
    other = await make_org(world.app)
    async with world.app.state.sessionmaker() as db, db.begin():
        version = await policies.upload_version(db, organisation_id=other.id, document=policy(),
                                                comment="test", actor=Actor.system(other.id))
        await policies.activate_version(db, version=version, actor=Actor.system(other.id))
    outsider = await make_technician(world.app, other, skills=["hardware"])
    token = await mfa_token(world.app, outsider)
    requester = await make_user(world.app, other, Role.END_USER, enrol_totp=False)
    ticket = await make_ticket(world.app, requester)
    technician = FakeTechnician(http.live.url)  # type: ignore[attr-defined]
    response = await http.post(
        "/api/v1/support-sessions", headers={"Authorization": f"Bearer {token}"},
        json={"ticket_id": str(ticket), "mode": "unattended", "device_id": str(enrolled.device_id),
              "capabilities": ["chat"], "technician_e2e_key": technician.public_key})
    assert response.status_code == 404 and error_code(response) == "device_not_found"
    for path in (f"/api/v1/devices/{enrolled.device_id}",
                 f"/api/v1/devices/{enrolled.device_id}/automation-runs"):  # fmt: skip
        seen = await http.get(path, headers={"Authorization": f"Bearer {token}"})
        assert seen.status_code in (403, 404), (path, seen.text)
    await asyncio.sleep(0.3)
    assert agent.texts_of("session.offer") == []
