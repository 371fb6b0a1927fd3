"""Issue 13 (unattended access) reviewed as an attacker, on the device: a compromised server
signing an unattended grant that may be extended past the owner's window, a proxy forging the
server's (unsigned) acknowledgement of a revocation, and a proxy flooding the service with
automation orders that do not verify.

Each finding is a test marked ``xfail(strict=True)`` with the hole as its reason: it fails
while the hole is open and turns the suite red once it is fixed (then drop the marker). The
other tests are defences that held, kept because each can fail.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import tests.agent.test_daemon as daemon_tests
import tests.agent.test_unattended as unattended_tests
from auxilio.agent.access import AccessStore
from auxilio.agent.automation import handle_order
from auxilio.agent.errors import AgentError
from auxilio.agent.grants import check_extension
from auxilio.agent.local_log import LocalLog
from auxilio.agent.state import AgentState
from auxilio.agent.unattended import UnattendedRefused
from auxilio.crypto.automation import AutomationOrder, sign_order, verify_outcome
from auxilio.crypto.keys import b64url_encode, encode_public_key, fingerprint
from auxilio.crypto.preauth import AccessWindow, verify_revocation
from auxilio.crypto.receipts import verify_receipt
from auxilio.protocol.frames import (
    AutomationResult,
    AutomationRun,
    ConsentDecisionMessage,
    ErrorMessage,
    PreAuthAck,
    PreAuthRevoke,
    SessionEnd,
)
from auxilio.protocol.types import Capability, ConsentDecision, ExtensionTerms, SignedDocument

from .factories import make_extension

UTC = dt.UTC

# The two worlds of the tests they extend, under their own names (each module calls its own
# ``world``): the unattended check alone, and the service against a small protocol server.
check_world = unattended_tests.world
service_world = daemon_tests.world
until = daemon_tests.until


# -- a compromised server: extensions of an unattended grant -------------------------------


def test_an_unattended_grant_that_allows_extensions_is_refused(
    check_world: unattended_tests.World,
) -> None:
    w = check_world
    # The owner's window closes in 40 minutes; the server's grant ends in 30, inside it.
    entry = w.pre(window=AccessWindow(not_before=w.now - dt.timedelta(hours=1),
                                      not_after=w.now + dt.timedelta(minutes=40)))  # fmt: skip
    terms = ExtensionTerms(max_count=5, max_total_seconds=24 * 3600)
    grant = w.grant(entry.id, extensions=terms)
    try:
        w.check(grant)
    except UnattendedRefused:
        return  # refused at the offer: fixed there
    # Taken: then an extension six hours past the grant (5 h 50 past the window) must be.
    signed, _ = make_extension(w.server_key, grant, minutes=360)
    with pytest.raises(AgentError):
        check_extension(grant, signed, server_key=w.server_key.public_key(),
                        device_key=w.state.device_public_key, now=w.now)  # fmt: skip


def test_an_unattended_grant_without_extensions_is_taken_and_cannot_be_extended(
    check_world: unattended_tests.World,
) -> None:
    """Held: the grant the real server signs (no extensions) is taken, and no extension of it
    is ever accepted (max_count 0)."""
    w = check_world
    entry = w.pre()
    grant = w.grant(entry.id, extensions=ExtensionTerms())
    assert grant.extensions.max_count == 0 and w.check(grant) == entry
    signed, _ = make_extension(w.server_key, grant, minutes=10)
    with pytest.raises(AgentError) as caught:
        check_extension(grant, signed, server_key=w.server_key.public_key(),
                        device_key=w.state.device_public_key, now=w.now)  # fmt: skip
    assert caught.value.code == "extension.beyond_limit"


# -- a proxy: the server's acknowledgement is not signed ------------------------------------


async def test_a_forged_revocation_ack_does_not_stop_the_revocation_reaching_the_server(
    service_world: daemon_tests.World,
) -> None:
    w = service_world
    entry = w.pre()
    w.access.mark_published(entry.id, "stored")
    w.server.ready_ids = (entry.id,)
    w.start(backoff_base=0.05, backoff_cap=0.1)
    await asyncio.wait_for(w.server.connected.wait(), 5)
    AccessStore(w.state.root).revoke(entry.id, "no more unattended access")
    dropped = await w.server.expect(PreAuthRevoke, 3)
    assert verify_revocation(w.state.device_public_key,
                             dropped.document).pre_authorisation_id == entry.id  # fmt: skip
    await w.server.send(PreAuthAck(id="forged", pre_authorisation_id=entry.id, state="revoked"))
    await until(lambda: w.access.get(entry.id).revocation_published)  # type: ignore[union-attr]
    # The server never heard of it: at the next connection it still lists it as live.
    w.server.connected.clear()
    assert w.server.socket is not None
    await w.server.socket.close()
    await asyncio.wait_for(w.server.connected.wait(), 5)
    again = await w.server.expect(PreAuthRevoke, 3)
    assert verify_revocation(w.state.device_public_key,
                             again.document).pre_authorisation_id == entry.id  # fmt: skip
    assert await w.stop() == 0


async def test_a_forged_stored_ack_never_makes_a_revoked_pre_authorisation_usable(
    service_world: daemon_tests.World,
) -> None:
    """Held: whatever unsigned ack a proxy sends, the device's own revoked copy refuses the
    server's next unattended offer on it (signed refused, pre_authorisation.revoked)."""
    w = service_world
    entry = w.pre()
    w.access.revoke(entry.id, "gone")
    w.start()
    await asyncio.wait_for(w.server.connected.wait(), 5)
    await w.server.send(PreAuthAck(id="forged", pre_authorisation_id=entry.id, state="stored"))
    await asyncio.sleep(0.3)
    await w.server.send(w.offer(entry.id))
    decision = await w.server.expect(ConsentDecisionMessage)
    receipt = verify_receipt(w.state.device_public_key, decision.receipt)
    assert {d.decision for d in receipt.decisions} == {ConsentDecision.REFUSED}
    assert (await w.server.expect(ErrorMessage)).code == "pre_authorisation.revoked"
    assert await w.stop() == 0


# -- a proxy: orders that do not verify ------------------------------------------------------


async def test_orders_that_do_not_verify_leave_no_trace_per_message(
    service_world: daemon_tests.World,
) -> None:
    w = service_world
    w.start()
    await asyncio.wait_for(w.server.connected.wait(), 5)
    garbage = SignedDocument(body="AAAA", signature="B" * 86)
    for number in range(20):
        await w.server.send(AutomationRun(id=f"junk-{number}", order=garbage))
    for _ in range(20):
        answer = await w.server.expect(AutomationResult, 5)
        assert answer.run_id == "unknown"  # each answered with a signed refusal: held
    sessions = w.state.root / "sessions"
    files = list(sessions.iterdir()) if sessions.exists() else []
    automated = [e for e in LocalLog(w.state).entries() if e.mode == "automated"]
    assert await w.stop() == 0
    assert len(files) <= 1 and len(automated) <= 1, (len(files), len(automated))


# -- a proxy: device.revoked is an unsigned error ---------------------------------------------


async def test_a_forged_device_revoked_does_not_disable_the_service_for_good(
    service_world: daemon_tests.World,
) -> None:
    w = service_world
    w.start(backoff_base=0.05)
    await asyncio.wait_for(w.server.connected.wait(), 5)
    await w.server.send(ErrorMessage(id="forged", code="device.revoked", message="by a proxy"))
    assert w.task is not None
    async with asyncio.timeout(10):
        await w.task
    # The real server never revoked it: started again, the service asks the server again.
    w.server.connected.clear()
    w.start(backoff_base=0.05)
    async with asyncio.timeout(5):
        await w.server.connected.wait()
    assert w.server.connections == 2
    assert await w.stop() == 0


# -- a server other than the one the owner signed for ------------------------------------------


async def test_an_order_never_runs_under_a_pre_authorisation_signed_for_another_server(
    state: AgentState, server_key: Ed25519PrivateKey,
) -> None:
    access = AccessStore(state)
    now = dt.datetime.now(UTC).replace(microsecond=0)
    other_server = Ed25519PrivateKey.generate()
    entry = access.grant(
        device_id="dev-1", organisation_id="org-1",
        server_fingerprint=fingerprint(other_server.public_key()), owner_name="Ana",
        scope=(Capability.DIAGNOSTICS,), automated_runs=True,
        window=AccessWindow(not_before=now - dt.timedelta(days=1),
                            not_after=now + dt.timedelta(days=6)),
    )  # fmt: skip
    order = AutomationOrder(
        run_id="run-1", organisation_id="org-1", device_id="dev-1",
        device_public_key=encode_public_key(state.device_public_key),
        pre_authorisation_id=entry.id, kind="diagnostics", sections=("os",), issued_at=now,
        not_after=now + dt.timedelta(minutes=5), nonce=b64url_encode(secrets.token_bytes(16)),
    )  # fmt: skip
    message = await handle_order(sign_order(server_key, order), state=state, access=access,
                                 server_public_key=server_key.public_key(),
                                 device_id="dev-1")  # fmt: skip
    outcome = verify_outcome(state.device_public_key, message.result)
    assert outcome.status == "refused", "the order ran"
    assert outcome.code is not None and outcome.code.startswith("pre_authorisation.")


async def test_a_replayed_unattended_offer_is_never_answered_twice(
    service_world: daemon_tests.World,
) -> None:
    """Held: a proxy replaying an unattended offer the service already answered gets a
    session.end offer.replayed, never a second signed receipt."""
    w = service_world
    entry = w.pre(scope=(Capability.CHAT,))  # the offer asks for the terminal too: refused
    w.start()
    await asyncio.wait_for(w.server.connected.wait(), 5)
    offer = w.offer(entry.id)
    await w.server.send(offer)
    await w.server.expect(ConsentDecisionMessage)
    await w.server.send(offer)
    end = await w.server.expect(SessionEnd)
    assert (end.support_session_id, end.detail) == (offer.support_session_id, "offer.replayed")
    await asyncio.sleep(0.3)
    extra = []
    while not w.server.inbox.empty():
        extra.append(w.server.inbox.get_nowait())
    assert not [m for m in extra if isinstance(m, ConsentDecisionMessage)]
    assert await w.stop() == 0


# -- a compromised server: how many automated runs at once ------------------------------------


async def test_automated_runs_on_the_device_are_run_one_at_a_time(
    service_world: daemon_tests.World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from auxilio.agent import automation

    w = service_world
    running, most = 0, 0

    async def slow(order: SignedDocument, **kwargs: object) -> AutomationResult:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.3)
        running -= 1
        return AutomationResult(id="r", run_id="run-1", result=order)

    monkeypatch.setattr(automation, "handle_order", slow)
    w.start()
    await asyncio.wait_for(w.server.connected.wait(), 5)
    for number in range(8):
        await w.server.send(AutomationRun(id=f"o{number}",
                                          order=SignedDocument(body="AAAA", signature="B" * 86)))
    await asyncio.sleep(1.0)
    assert await w.stop() == 0
    assert most <= 1, f"{most} automated runs at once"
