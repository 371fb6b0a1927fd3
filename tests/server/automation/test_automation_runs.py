"""Automated runs on the server: the API and its refusals, the scheduler's round (an online
device gets a signed order, an offline one's run expires, a revoked pre-authorisation is
refused at send time, nothing is sent during an emergency) and the device's signed result
(verified, attached to the ticket; tampered, replayed or mismatched results refused)."""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from auxilio.agent.access import AccessStore
from auxilio.agent.automation import handle_order
from auxilio.agent.state import AgentState
from auxilio.crypto.automation import make_outcome, sign_outcome, verify_order
from auxilio.crypto.keys import encode_public_key, fingerprint
from auxilio.crypto.preauth import AccessWindow
from auxilio.crypto.signing import DocumentKind, sign_document
from auxilio.protocol.frames import AutomationRun as RunMessage
from auxilio.protocol.types import Capability, SignedDocument
from auxilio.server.automation import results, sending
from auxilio.server.automation.models import AutomationRun
from auxilio.server.db.base import utcnow
from auxilio.server.devices.models import Device, PreAuthorisationRecord
from auxilio.server.emergency.models import Emergency
from auxilio.server.tickets.attachment_models import TicketAttachment
from tests.server.automation.conftest import World, automation_policy, details


async def scheduled(world: World, **body: Any) -> dict[str, Any]:
    response = await world.schedule(**body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def refused(world: World, code: str, status: int = 403, **body: Any) -> dict[str, Any]:
    before = await rows(world)
    response = await world.schedule(**body)
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    assert await rows(world) == before  # nothing kept
    return error


async def rows(world: World) -> int:
    async with world.app.state.sessionmaker() as db:
        return len(list((await db.execute(select(AutomationRun))).scalars()))


async def run_row(world: World, run_id: str) -> AutomationRun:
    async with world.app.state.sessionmaker() as db:
        found = await db.get(AutomationRun, uuid.UUID(run_id))
        assert found is not None
        return found


async def send(world: World, *, online: bool = True, at: dt.datetime | None = None) -> list[Any]:
    async with world.app.state.sessionmaker() as db, db.begin():
        return await sending.send_due(db, server_key=world.server_key,
                                      online={world.device_id} if online else set(),
                                      now=at)  # fmt: skip


# -- the API and the policy -----------------------------------------------------------------------


async def test_a_diagnostics_run_is_scheduled_inside_the_pre_authorisation(world: World) -> None:
    pre = await world.pre_authorise()
    run = await scheduled(world, sections=["os", "memory"])
    assert run["state"] == "scheduled" and run["kind"] == "diagnostics"
    assert run["sections"] == ["os", "memory"] and run["pre_authorisation_id"] == str(pre)
    assert run["policy_version"] and run["result"] is None
    events = await world.audit()
    assert [e.action for e in events] == ["automation:run:scheduled"]
    assert details(events[0])["pre_authorisation_id"] == str(pre)
    listed = await world.client.get(world.api, headers=world.senior.headers)
    assert [r["id"] for r in listed.json()] == [run["id"]]
    shown = await world.client.get(f"{world.api}/{run['id']}", headers=world.senior.headers)
    assert shown.json()["state"] == "scheduled"


async def test_diagnostics_default_to_every_section(world: World) -> None:
    await world.pre_authorise()
    run = await scheduled(world)
    assert "processes" in run["sections"] and len(run["sections"]) == 9


async def test_without_a_pre_authorisation_it_is_refused_and_audited(world: World) -> None:
    await refused(world, "automation.not_pre_authorised")
    events = await world.audit()
    assert [e.action for e in events] == ["automation:run:refused"]
    assert details(events[0])["code"] == "automation.not_pre_authorised"


async def test_a_pre_authorisation_without_automated_runs_does_not_count(world: World) -> None:
    await world.pre_authorise(automated_runs=False, scope=(Capability.DIAGNOSTICS,))
    await refused(world, "automation.not_pre_authorised")


async def test_a_capability_outside_the_scope_is_not_pre_authorised(world: World) -> None:
    await world.pre_authorise(scope=(Capability.DIAGNOSTICS,))
    await world.approve_example()
    await refused(world, "automation.not_pre_authorised", kind="runbook",
                  runbook_id="collect-logs")


async def test_a_revoked_pre_authorisation_does_not_count(world: World) -> None:
    await world.revoke_pre_authorisation(await world.pre_authorise())
    await refused(world, "automation.not_pre_authorised")


async def test_a_due_time_outside_the_window_is_refused(world: World) -> None:
    now = utcnow()
    await world.pre_authorise(window=AccessWindow(
        not_before=now - dt.timedelta(hours=1), not_after=now + dt.timedelta(days=7),
        daily_start=dt.time(0, 0), daily_end=dt.time(0, 1)))  # fmt: skip
    later = now.replace(hour=12, minute=0) + dt.timedelta(days=1)
    error = await refused(world, "automation.outside_window", due_at=later.isoformat())
    assert error["details"]["next_opening"] is not None


async def test_a_device_group_the_policy_does_not_allow_is_refused(world: World) -> None:
    await world.use_policy(automation_policy(allowed_device_groups=["desktops"]))
    await world.pre_authorise()
    error = await refused(world, "automation.policy_denied")
    assert error["details"]["rule"] == "unattended.allowed_device_groups"


async def test_without_a_ticket_when_the_policy_needs_one(world: World) -> None:
    await world.pre_authorise()
    error = await refused(world, "automation.policy_denied", ticket_id=None)
    assert error["details"]["rule"] == "unattended.ticket_required"


async def test_an_approval_required_is_a_refusal(world: World) -> None:
    await world.use_policy(automation_policy(approval_required=True))
    await world.pre_authorise()
    error = await refused(world, "automation.approval_required")
    assert error["details"]["rule"] == "unattended.approval_required"


async def test_during_an_emergency_the_policy_locks_it(world: World) -> None:
    await world.pre_authorise()
    async with world.app.state.sessionmaker() as db, db.begin():
        db.add(Emergency(organisation_id=world.org.id, declared_by=world.supervisor.user.id,
                         reason="breach"))  # fmt: skip
    error = await refused(world, "automation.policy_denied")
    assert error["details"]["rule"] == "emergency.actions.lock_unattended"


async def test_a_technician_may_not_manage_automation(world: World) -> None:
    await world.pre_authorise()
    response = await world.schedule(by=world.technician)
    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"


async def test_a_runbook_with_no_approved_version_is_refused(world: World) -> None:
    await world.pre_authorise()
    await refused(world, "automation.runbook_not_approved", kind="runbook",
                  runbook_id="collect-logs")


async def test_a_runbook_the_policy_does_not_list_is_refused(world: World) -> None:
    await world.pre_authorise()
    await world.approve_example("flush-dns")
    error = await refused(world, "automation.policy_denied", kind="runbook",
                          runbook_id="flush-dns")
    assert error["details"]["rule"].startswith("capabilities.runbooks")


async def test_a_runbook_run_pins_the_approved_version(world: World) -> None:
    await world.pre_authorise()
    await world.approve_example()
    run = await scheduled(world, kind="runbook", runbook_id="collect-logs",
                          params={"lines": 20})
    assert (run["runbook_id"], run["version"], run["params"]) == ("collect-logs", 1,
                                                                  {"lines": 20})


@pytest.mark.parametrize(("body", "code"), [
    ({"kind": "runbook", "runbook_id": "collect-logs", "params": {"lines": 0}},
     "automation.parameter_invalid"),
    ({"kind": "runbook", "runbook_id": "collect-logs", "params": {"colour": "red"}},
     "automation.parameter_invalid"),
    ({"kind": "diagnostics", "sections": ["passwords"]}, "automation.invalid"),
    ({"kind": "diagnostics", "sections": ["os", "os"]}, "automation.invalid"),
    ({"kind": "diagnostics", "runbook_id": "collect-logs"}, "automation.invalid"),
    ({"kind": "runbook"}, "automation.invalid"),
    ({"kind": "diagnostics", "repeat_seconds": 10}, "automation.invalid"),
    ({"kind": "diagnostics", "due_at": "2020-01-01T00:00:00Z"}, "automation.invalid"),
    ({"kind": "shell"}, "validation_failed"),
    ({"kind": "diagnostics", "script": "rm -rf /"}, "validation_failed"),
])  # fmt: skip
async def test_bad_requests(world: World, body: dict[str, Any], code: str) -> None:
    await world.pre_authorise()
    await world.approve_example()
    await refused(world, code, status=422, **body)


async def test_a_ticket_of_another_requester_is_refused(world: World) -> None:
    from auxilio.policy.roles import Role
    from tests.factories import make_ticket, make_user

    await world.pre_authorise()
    stranger = await make_user(world.app, world.org, Role.END_USER)
    theirs = await make_ticket(world.app, stranger, title="Not about this device")
    await refused(world, "automation.ticket_device_mismatch", status=422,
                  ticket_id=str(theirs))


async def test_a_device_that_is_not_enrolled_is_refused(world: World) -> None:
    await world.pre_authorise()
    async with world.app.state.sessionmaker() as db, db.begin():
        device = await db.get(Device, world.device_id)
        assert device is not None
        device.enrolled_at = None
    await refused(world, "automation.device_not_enrolled")


async def test_cancel(world: World) -> None:
    await world.pre_authorise()
    run = await scheduled(world)
    url = f"{world.api}/{run['id']}"
    cancelled = await world.client.delete(url, headers=world.senior.headers)
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    again = await world.client.delete(url, headers=world.senior.headers)
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "automation.not_cancellable"
    assert await send(world) == []  # a cancelled run is never sent
    missing = await world.client.get(f"{world.api}/{uuid.uuid4()}", headers=world.senior.headers)
    assert missing.json()["error"]["code"] == "automation.run_not_found"


# -- the scheduler --------------------------------------------------------------------------------


async def test_the_scheduler_sends_a_due_run_to_the_online_device(world: World) -> None:
    pre = await world.pre_authorise()
    run = await scheduled(world, sections=["os"])
    held = await world.online()
    try:
        assert await world.scheduler().run_once() == 1
    finally:
        await held.cancel()
    assert [m["kind"] for m in world.heard] == ["forward"]
    message = RunMessage.model_validate(world.heard[0]["message"])
    order = verify_order(world.server_key.public_key(), message.order)
    assert (order.run_id, order.device_id, order.pre_authorisation_id) == (
        run["id"], str(world.device_id), str(pre))
    assert order.device_public_key == encode_public_key(world.device_key.public_key())
    assert order.sections == ("os",) and order.ticket_ref.startswith("#")
    row = await run_row(world, run["id"])
    assert row.state == "sent" and row.sent_at is not None
    assert await world.actions() == ["automation:run:scheduled", "automation:run:sent"]
    # Sent once: the next round has nothing to send.
    assert await world.scheduler().run_once() == 0


async def test_an_offline_device_waits_then_its_run_expires_with_the_window(
    world: World,
) -> None:
    now = utcnow()
    await world.pre_authorise(window=AccessWindow(not_before=now - dt.timedelta(hours=1),
                                                  not_after=now + dt.timedelta(hours=2)))
    run = await scheduled(world)
    assert await world.scheduler().run_once() == 0
    assert (await run_row(world, run["id"])).state == "scheduled"
    assert await send(world, online=False, at=now + dt.timedelta(hours=3)) == []
    row = await run_row(world, run["id"])
    assert (row.state, row.error_code) == ("refused", "automation.pre_authorisation_expired")


async def test_an_offline_device_whose_daily_window_shuts_expires(world: World) -> None:
    now = utcnow().replace(second=0, microsecond=0)
    start = (now - dt.timedelta(minutes=5)).time()
    end = (now + dt.timedelta(minutes=30)).time()
    if end <= start:
        pytest.skip("the test's daily window would cross midnight")
    await world.pre_authorise(window=AccessWindow(
        not_before=now - dt.timedelta(days=1), not_after=now + dt.timedelta(days=7),
        daily_start=start, daily_end=end))  # fmt: skip
    run = await scheduled(world)
    await send(world, online=False, at=now + dt.timedelta(hours=1))
    row = await run_row(world, run["id"])
    assert (row.state, row.error_code) == ("expired", "automation.window_passed")
    assert (await world.actions())[-1] == "automation:run:expired"


async def test_a_pre_authorisation_revoked_before_sending_refuses_the_run(world: World) -> None:
    pre = await world.pre_authorise()
    run = await scheduled(world)
    await world.revoke_pre_authorisation(pre)
    held = await world.online()
    try:
        assert await world.scheduler().run_once() == 0
    finally:
        await held.cancel()
    assert world.heard == []
    row = await run_row(world, run["id"])
    assert (row.state, row.error_code) == ("refused", "automation.pre_authorisation_revoked")
    events = await world.audit()
    assert events[-1].action == "automation:run:refused"
    assert details(events[-1])["code"] == "automation.pre_authorisation_revoked"


async def test_a_pre_authorisation_altered_in_the_database_refuses_the_run(
    world: World,
) -> None:
    pre = await world.pre_authorise()
    run = await scheduled(world)
    async with world.app.state.sessionmaker() as db, db.begin():
        row = await db.get(PreAuthorisationRecord, pre)
        assert row is not None
        row.document = {**row.document, "signature": "A" * 86}
    await send(world)
    found = await run_row(world, run["id"])
    assert (found.state, found.error_code) == ("refused", "automation.pre_authorisation_invalid")


async def test_a_runbook_changed_since_scheduling_is_refused_at_send_time(world: World) -> None:
    await world.pre_authorise()
    await world.approve_example()
    run = await scheduled(world, kind="runbook", runbook_id="collect-logs")
    await world.approve_example(timeout_seconds=30)  # version 2 retires version 1
    await send(world)
    row = await run_row(world, run["id"])
    assert (row.state, row.error_code) == ("refused", "automation.runbook_changed")


async def test_nothing_is_sent_during_an_emergency(world: World) -> None:
    await world.pre_authorise()
    run = await scheduled(world)
    async with world.app.state.sessionmaker() as db, db.begin():
        db.add(Emergency(organisation_id=world.org.id, declared_by=world.supervisor.user.id,
                         reason="breach"))  # fmt: skip
    assert await send(world) == []
    assert (await run_row(world, run["id"])).state == "scheduled"


async def test_a_revoked_device_is_refused_at_send_time(world: World) -> None:
    await world.pre_authorise()
    run = await scheduled(world)
    async with world.app.state.sessionmaker() as db, db.begin():
        device = await db.get(Device, world.device_id)
        assert device is not None
        device.revoked_at = utcnow()
    await send(world)
    row = await run_row(world, run["id"])
    assert (row.state, row.error_code) == ("refused", "automation.device_revoked")


async def _refused_at_send(world: World, run_id: str, code: str, rule: str) -> None:
    row = await run_row(world, run_id)
    assert (row.state, row.error_code) == ("refused", code)
    assert row.error_detail
    event = (await world.audit())[-1]
    assert event.action == "automation:run:refused" and event.actor_id is None
    assert (details(event)["code"], details(event)["rule"]) == (code, rule)
    async with world.app.state.sessionmaker() as db:  # a repeating run's chain ends there
        following = (await db.execute(select(AutomationRun).where(
            AutomationRun.state == "scheduled"))).scalars().all()  # fmt: skip
    assert list(following) == []


@pytest.mark.parametrize("change, code, rule", [
    ({"is_active": False}, "automation.creator_inactive", "identity.user.is_active"),
    ({"role": "technician"}, "automation.not_permitted", "roles.technician"),
    ({"totp_confirmed_at": None}, "automation.policy_denied", "staff.mfa_required"),
])  # fmt: skip
async def test_a_run_whose_creator_lost_the_right_is_refused_at_send_time(
    world: World, change: dict[str, Any], code: str, rule: str
) -> None:
    from auxilio.server.identity.models import User

    await world.pre_authorise()
    run = await scheduled(world, sections=["os"], repeat_seconds=3600)
    async with world.app.state.sessionmaker() as db, db.begin():
        user = await db.get(User, world.senior.user.id)
        assert user is not None
        for name, value in change.items():
            setattr(user, name, value)
    assert await send(world) == []
    await _refused_at_send(world, run["id"], code, rule)


async def test_a_run_the_active_policy_no_longer_allows_is_refused_at_send_time(
    world: World,
) -> None:
    await world.pre_authorise()
    run = await scheduled(world, sections=["os"], repeat_seconds=3600)
    await world.use_policy(automation_policy(allowed_device_groups=["kiosks"]))
    assert await send(world) == []
    await _refused_at_send(world, run["id"], "automation.policy_denied",
                           "unattended.allowed_device_groups")  # fmt: skip
    async with world.app.state.sessionmaker() as db:  # asked again, recorded as the system's
        from auxilio.server.audit.models import AuditEvent

        asked = (await db.execute(select(AuditEvent).where(AuditEvent.action.like(
            "policy:decision:%")).order_by(AuditEvent.seq))).scalars().all()  # fmt: skip
    assert asked[-1].target_id == uuid.UUID(run["id"]).hex
    assert asked[-1].actor_id is None


@pytest.mark.parametrize("days, sent", [(29, True), (31, False)])
async def test_the_policy_s_pre_authorisation_validity_is_asked_at_the_run_s_time(
    world: World, days: int, sent: bool
) -> None:
    """managed-servers takes a pre-authorisation for 30 days: a run due later is refused."""
    now = utcnow()
    await world.pre_authorise(window=AccessWindow(not_before=now - dt.timedelta(hours=1),
                                                  not_after=now + dt.timedelta(days=90)))
    later = now + dt.timedelta(days=days)
    run = await scheduled(world, sections=["os"], due_at=later.isoformat())
    assert len(await send(world, at=later)) == (1 if sent else 0)
    if sent:
        assert (await run_row(world, run["id"])).state == "sent"
    else:
        await _refused_at_send(world, run["id"], "automation.policy_denied",
                               "unattended.owner_pre_authorisation.window")  # fmt: skip


async def test_a_sent_run_without_an_answer_expires(world: World) -> None:
    await world.pre_authorise()
    run = await scheduled(world)
    assert len(await send(world)) == 1
    await send(world, at=utcnow() + dt.timedelta(minutes=30))
    row = await run_row(world, run["id"])
    assert (row.state, row.error_code) == ("expired", "automation.no_result")


# -- the device's result --------------------------------------------------------------------------


async def sent_order(world: World, **body: Any) -> tuple[str, Any]:
    run = await scheduled(world, **body)
    outgoing = await send(world)
    assert len(outgoing) == 1
    return run["id"], verify_order(world.server_key.public_key(), outgoing[0].message.order)


def signed_outcome(world: World, order: Any, **changes: Any) -> SignedDocument:
    now = utcnow()
    fields: dict[str, Any] = dict(run_id=order.run_id, nonce=order.nonce, status="done",
                                  output='{"os": {}}', started_at=now, finished_at=now)
    fields.update(changes)
    return sign_outcome(world.device_key, make_outcome(**fields))


async def record(world: World, run_id: str, signed: SignedDocument) -> str | None:
    """The code of a refusal, or None when the result was taken. Called as the device's
    connection calls it: in a transaction that an exception rolls back."""
    device = await world.device()
    try:
        async with world.app.state.sessionmaker() as db, db.begin():
            await results.record_result(db, device=device, run_id=run_id, signed=signed)
    except results.ResultRefused as exc:
        return exc.code
    return None


async def test_a_result_is_stored_and_attached_to_the_ticket(world: World) -> None:
    await world.pre_authorise()
    run_id, order = await sent_order(world)
    signed = signed_outcome(world, order)
    assert await record(world, run_id, signed) is None
    row = await run_row(world, run_id)
    assert row.state == "done" and row.result is not None
    assert row.result["signed"] == signed.model_dump(mode="json")
    response = await world.client.get(f"/api/v1/tickets/{world.ticket_id}/attachments",
                                      headers=world.senior.headers)  # fmt: skip
    [attachment] = response.json()
    assert attachment["id"] == row.result["attachment_id"]
    assert attachment["verified"] is True and attachment["kind"] == "diagnostics"
    assert attachment["author_id"] == str(world.senior.user.id)
    content = await world.client.get(
        f"/api/v1/tickets/{world.ticket_id}/attachments/{attachment['id']}",
        headers=world.senior.headers)  # fmt: skip
    import json

    body = json.loads(content.json()["content"])
    assert body["automation_run_id"] == run_id and body["output"] == '{"os": {}}'
    assert body["signed"] == signed.model_dump(mode="json")
    shown = await world.client.get(f"{world.api}/{run_id}", headers=world.senior.headers)
    assert shown.json()["result"]["status"] == "done"
    assert (await world.actions())[-1] == "automation:run:done"


async def test_a_failed_run_is_failed_with_its_code(world: World) -> None:
    await world.pre_authorise()
    run_id, order = await sent_order(world)
    signed = signed_outcome(world, order, status="failed", code="runbook.exit_nonzero",
                            exit_code=3)
    assert await record(world, run_id, signed) is None
    row = await run_row(world, run_id)
    assert (row.state, row.error_code) == ("failed", "runbook.exit_nonzero")


async def test_a_tampered_result_is_refused(world: World) -> None:
    await world.pre_authorise()
    run_id, order = await sent_order(world)
    good = signed_outcome(world, order)
    other = signed_outcome(world, order, output="something else")
    tampered = SignedDocument(body=other.body, signature=good.signature)
    assert await record(world, run_id, tampered) == "automation.result_invalid"
    # Signed by the device, but the output is not what its hash says.
    payload = make_outcome(run_id=order.run_id, nonce=order.nonce, status="done", output="x",
                           started_at=utcnow(), finished_at=utcnow()).model_dump(mode="json")
    payload["output"] = "y"
    forged = sign_document(world.device_key, payload, kind=DocumentKind.AUTOMATION_RESULT)
    assert await record(world, run_id, forged) == "automation.result_invalid"
    assert (await run_row(world, run_id)).state == "sent"
    events = await world.audit("automation:result:")
    assert [details(e)["code"] for e in events] == ["automation.result_invalid"] * 2
    async with world.app.state.sessionmaker() as db:
        assert list((await db.execute(select(TicketAttachment))).scalars()) == []


async def test_a_replayed_result_is_refused(world: World) -> None:
    await world.pre_authorise()
    run_id, order = await sent_order(world)
    signed = signed_outcome(world, order)
    assert await record(world, run_id, signed) is None
    assert await record(world, run_id, signed) == "automation.result_replayed"
    async with world.app.state.sessionmaker() as db:
        assert len(list((await db.execute(select(TicketAttachment))).scalars())) == 1


async def test_a_result_with_another_nonce_or_run_is_refused(world: World) -> None:
    await world.pre_authorise()
    run_id, order = await sent_order(world)
    assert await record(world, run_id, signed_outcome(world, order, nonce="N" * 24)) == (
        "automation.result_mismatch")
    assert await record(world, run_id, signed_outcome(world, order, run_id="other")) == (
        "automation.result_mismatch")
    assert await record(world, str(uuid.uuid4()), signed_outcome(world, order)) == (
        "automation.result_unknown_run")
    assert await record(world, "not-a-uuid", signed_outcome(world, order)) == (
        "automation.result_unknown_run")


async def test_a_result_of_a_cancelled_run_is_refused(world: World) -> None:
    await world.pre_authorise()
    run_id, order = await sent_order(world)
    await world.client.delete(f"{world.api}/{run_id}", headers=world.senior.headers)
    assert await record(world, run_id, signed_outcome(world, order)) == (
        "automation.result_replayed")


async def test_a_repeating_run_schedules_its_next(world: World) -> None:
    await world.pre_authorise()
    run_id, order = await sent_order(world, repeat_seconds=3600)
    assert await record(world, run_id, signed_outcome(world, order)) is None
    listed = (await world.client.get(world.api, headers=world.senior.headers)).json()
    assert [r["state"] for r in listed] == ["scheduled", "done"]
    first = await run_row(world, run_id)
    assert dt.datetime.fromisoformat(listed[0]["due_at"]) == first.due_at + dt.timedelta(
        hours=1)


async def test_the_real_agent_answers_the_real_order(world: World, tmp_path: Path) -> None:
    """Order signed by the server, run by the agent's own code against its own copy of the
    pre-authorisation, result verified and attached by the server."""
    state = AgentState(tmp_path / "agent")
    access = AccessStore(state)
    now = utcnow()
    entry = access.grant(
        device_id=str(world.device_id), organisation_id=str(world.org.id),
        server_fingerprint=fingerprint(world.server_key.public_key()), owner_name="Owner",
        scope=(Capability.DIAGNOSTICS,), automated_runs=True,
        window=AccessWindow(not_before=now - dt.timedelta(hours=1),
                            not_after=now + dt.timedelta(days=1)),
    )  # fmt: skip
    async with world.app.state.sessionmaker() as db, db.begin():
        device = await db.get(Device, world.device_id)
        assert device is not None
        device.public_key = encode_public_key(state.device_public_key)
        document = entry.document
        db.add(PreAuthorisationRecord(
            id=uuid.UUID(document.id), organisation_id=world.org.id, device_id=world.device_id,
            document=entry.signed.model_dump(mode="json"), scope=["diagnostics"],
            automated_runs=True, not_before=document.window.not_before,
            not_after=document.window.not_after, window=document.window.model_dump(mode="json"),
            owner_name="Owner", signed_at=now, received_at=now,
        ))  # fmt: skip
    run = await scheduled(world, sections=["os", "memory"])
    [outgoing] = await send(world)
    answer = await handle_order(outgoing.message.order, state=state, access=access,
                                server_public_key=world.server_key.public_key(),
                                device_id=str(world.device_id))  # fmt: skip
    assert answer.run_id == run["id"]
    assert await record(world, answer.run_id, answer.result) is None
    row = await run_row(world, run["id"])
    assert row.state == "done" and row.result is not None and row.result["attachment_id"]
