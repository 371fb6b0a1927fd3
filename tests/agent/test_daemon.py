"""``auxilio agent run``, the service, against a small server speaking the real protocol
(websockets, real keys): device.ready, pre-authorisations kept in step, reconnection with
backoff, device.revoked, unattended sessions (refused and covered), a revocation ending a live
session, automation orders, the owner's log."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from rich.console import Console
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from auxilio.agent.access import AccessStore
from auxilio.agent.daemon import Daemon, delay_for
from auxilio.agent.enroll import (
    REVOKED_AFTER_REFUSALS,
    Enrolment,
    load_enrolment,
    save_enrolment,
)
from auxilio.agent.local_log import LocalLog
from auxilio.agent.state import AgentState
from auxilio.crypto.automation import AutomationOrder
from auxilio.crypto.keys import (
    b64url_encode,
    decode_ed25519_public_key,
    encode_public_key,
    fingerprint,
)
from auxilio.crypto.preauth import AccessWindow, verify_revocation
from auxilio.crypto.receipts import verify_receipt
from auxilio.crypto.signing import verify_agent_challenge
from auxilio.protocol.frames import (
    AgentAuth,
    AgentHello,
    AutomationResult,
    AutomationRun,
    ConsentDecisionMessage,
    DeviceReady,
    ErrorMessage,
    PreAuthAck,
    PreAuthPublish,
    PreAuthRevoke,
    ServerHello,
    SessionEnd,
    SessionOffer,
    SessionStateMessage,
    encode_message,
    parse_message,
)
from auxilio.protocol.types import (
    Capability,
    ConsentDecision,
    ConsentTerms,
    ExtensionTerms,
    SignedDocument,
)

from .factories import LEGAL_TEXT, make_grant, make_offer

UTC = dt.UTC
DEVICE = "dev-9"


class FakeDeviceServer:
    """``modes``: what each next connection gets after agent.auth: ``ready`` (device.ready,
    then it stays), ``close`` (closed at once), ``revoked`` (error device.revoked)."""

    def __init__(self, server_key: Ed25519PrivateKey) -> None:
        self.server_key = server_key
        self.modes: list[str] = []
        self.ready_ids: tuple[str, ...] = ()
        self.connections = 0
        self.hellos: list[AgentHello] = []
        self.inbox: asyncio.Queue[Any] = asyncio.Queue()
        self.socket: ServerConnection | None = None
        self.port = 0
        self.connected = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handler(self, ws: ServerConnection) -> None:
        self.connections += 1
        hello = parse_message(await ws.recv())
        assert isinstance(hello, AgentHello)
        self.hellos.append(hello)
        challenge = b64url_encode(os.urandom(24))
        server_fp = fingerprint(self.server_key.public_key())
        await ws.send(encode_message(ServerHello(
            id="h1", protocol_version=1, server_fingerprint=server_fp, challenge=challenge,
            server_time=dt.datetime.now(UTC))))  # fmt: skip
        auth = parse_message(await ws.recv())
        assert isinstance(auth, AgentAuth)
        verify_agent_challenge(decode_ed25519_public_key(hello.device_public_key),
                               auth.signature, challenge=challenge,
                               server_fingerprint=server_fp)  # fmt: skip
        mode = self.modes.pop(0) if self.modes else "ready"
        if mode == "close":
            await ws.close()
            return
        if mode == "revoked":
            refusal = ErrorMessage(id="e1", code="device.revoked", message="by the supervisor")
            await ws.send(encode_message(refusal))
            await ws.close()
            return
        await ws.send(encode_message(DeviceReady(id="r1", device_id=DEVICE,
                                                 pre_authorisations=self.ready_ids,
                                                 server_time=dt.datetime.now(UTC))))  # fmt: skip
        self.socket = ws
        self.connected.set()
        try:
            async for data in ws:
                if isinstance(data, bytes):
                    continue
                message = parse_message(data)
                if message.type != "agent.heartbeat":
                    await self.inbox.put(message)
        except ConnectionClosed:
            pass

    async def send(self, message: Any) -> None:
        assert self.socket is not None
        await self.socket.send(encode_message(message))

    async def expect(self, kind: type, seconds: float = 5.0) -> Any:
        """The next message of ``kind`` (others before it are dropped)."""
        async with asyncio.timeout(seconds):
            while True:
                message = await self.inbox.get()
                if isinstance(message, kind):
                    return message


class World:
    def __init__(self, state: AgentState, server: FakeDeviceServer,
                 technician_key: X25519PrivateKey) -> None:  # fmt: skip
        self.state = state
        self.server = server
        self.technician_key = technician_key
        self.access = AccessStore(state)
        self.daemon: Daemon | None = None
        self.task: asyncio.Task[int] | None = None

    def enrol(self) -> None:
        origin = self.server.url
        self.state.pin(origin, self.server.server_key.public_key())
        self.state.remember_device_id(origin, DEVICE)
        save_enrolment(self.state, Enrolment(server=origin, device_id=DEVICE,
                                             organisation_id="org-7", organisation_name="Escuela",
                                             device_group="aula", owner_name="Rosa",
                                             enrolled_at="2026-12-01T10:00:00Z"))  # fmt: skip

    def pre(self, scope: tuple[Capability, ...] = (Capability.CHAT, Capability.TERMINAL)) -> Any:
        now = dt.datetime.now(UTC)
        return self.access.grant(
            device_id=DEVICE, organisation_id="org-7",
            server_fingerprint=fingerprint(self.server.server_key.public_key()),
            owner_name="Rosa", scope=scope, now=now - dt.timedelta(minutes=5),
            window=AccessWindow(not_before=now - dt.timedelta(minutes=5),
                                not_after=now + dt.timedelta(days=1)),
        )  # fmt: skip

    def offer(self, pre_id: str, session_id: str = "ss-1001", **overrides: Any) -> SessionOffer:
        issued = dt.datetime.now(UTC)
        terms = ConsentTerms(mode="unattended", pre_authorisation_id=pre_id,
                             legal_text=LEGAL_TEXT, timeout_seconds=60,
                             answer_by=issued + dt.timedelta(minutes=2))  # fmt: skip
        overrides.setdefault("extensions", ExtensionTerms())  # as the server signs: none
        signed, grant = make_grant(self.server.server_key, self.state.device_public_key,
                                   self.technician_key, issued_at=issued, terms=terms,
                                   support_session_id=session_id, **overrides)  # fmt: skip
        return make_offer(signed, grant)

    def start(self, **options: Any) -> Daemon:
        fields: dict[str, Any] = {"console": Console(file=io.StringIO()), "window": False,
                                  "poll_seconds": 0.2, "first_report_seconds": 0.3,
                                  "report_wait_seconds": 0.3}  # fmt: skip
        fields.update(options)
        self.daemon = Daemon(self.state.root, **fields)
        self.task = asyncio.create_task(self.daemon.run())
        return self.daemon

    async def stop(self) -> int:
        assert self.daemon is not None and self.task is not None
        self.daemon.stop()
        async with asyncio.timeout(10):
            return await self.task


@pytest.fixture
async def world(state: AgentState, server_key: Ed25519PrivateKey,
                technician_key: X25519PrivateKey) -> AsyncIterator[World]:  # fmt: skip
    server = FakeDeviceServer(server_key)
    async with serve(server.handler, "127.0.0.1", 0) as running:
        server.port = running.sockets[0].getsockname()[1]
        made = World(state, server, technician_key)
        made.enrol()
        yield made
        if made.task is not None and not made.task.done():
            await made.stop()


async def until(check: Any, seconds: float = 5.0) -> None:
    async with asyncio.timeout(seconds):
        while not check():  # noqa: ASYNC110 - polling the service's state from outside
            await asyncio.sleep(0.05)


def test_delay_for_is_capped_exponential_with_jitter() -> None:
    for attempt in range(12):
        nominal = min(60.0, 2.0**attempt)
        for _ in range(20):
            assert nominal / 2 <= delay_for(attempt) <= nominal
    assert delay_for(10**6) <= 60.0


async def test_ready_publishes_what_the_server_lacks_and_keeps_it_in_step(world: World) -> None:
    missing = world.pre()
    listed_but_revoked = world.pre()
    world.access.mark_published(listed_but_revoked.id, "stored")
    world.access.revoke(listed_but_revoked.id, "no more")
    world.server.ready_ids = (listed_but_revoked.id,)
    world.start()
    published = await world.server.expect(PreAuthPublish)
    assert published.document == missing.signed
    revoked = await world.server.expect(PreAuthRevoke)
    revocation = verify_revocation(world.state.device_public_key, revoked.document)
    assert revocation.pre_authorisation_id == listed_but_revoked.id
    assert world.server.hellos[0].device_id == DEVICE  # the enrolled device says who it is
    await world.server.send(PreAuthAck(id="a1", pre_authorisation_id=missing.id, state="stored"))
    await world.server.send(PreAuthAck(id="a2", pre_authorisation_id=listed_but_revoked.id,
                                       state="revoked"))  # fmt: skip
    await until(lambda: world.access.get(missing.id).published)  # type: ignore[union-attr]
    await until(lambda: world.access.get(listed_but_revoked.id).revocation_published)  # type: ignore[union-attr]

    # Made with `agent access` while the service runs: reaches the server within ~2 s.
    loop = asyncio.get_running_loop()
    started = loop.time()
    fresh = AccessStore(world.state.root).grant(
        device_id=DEVICE, organisation_id="org-7",
        server_fingerprint=fingerprint(world.server.server_key.public_key()), owner_name="Rosa",
        scope=(Capability.CHAT,), window=missing.document.window,
    )  # fmt: skip
    assert (await world.server.expect(PreAuthPublish, 2.5)).document == fresh.signed
    AccessStore(world.state.root).revoke(missing.id, "done")
    sent = await world.server.expect(PreAuthRevoke, 2.5)
    assert verify_revocation(world.state.device_public_key,
                             sent.document).pre_authorisation_id == missing.id  # fmt: skip
    assert loop.time() - started < 5
    assert await world.stop() == 0
    assert world.server.connections == 1


async def test_reconnects_with_growing_backoff(world: World) -> None:
    world.server.modes = ["close", "close", "close", "ready"]
    daemon = world.start(backoff_base=0.05, backoff_cap=0.15)
    await asyncio.wait_for(world.server.connected.wait(), 10)
    assert world.server.connections == 4 and daemon.connects == 4
    assert len(daemon.delays) == 3
    for attempt, delay in enumerate(daemon.delays):
        nominal = min(0.15, 0.05 * 2**attempt)
        assert nominal / 2 <= delay <= nominal
    assert await world.stop() == 0


async def test_device_revoked_stops_for_good(world: World) -> None:
    """Refused at auth on REVOKED_AFTER_REFUSALS starts in a row: each stops (5); after the
    last, later starts stop at once and never knock at the server again."""
    world.server.modes = ["revoked"] * REVOKED_AFTER_REFUSALS
    for number in range(1, REVOKED_AFTER_REFUSALS + 1):
        world.start(backoff_base=0.05)
        assert world.task is not None
        async with asyncio.timeout(10):
            assert await world.task == 5
        enrolment = load_enrolment(world.state)
        assert enrolment is not None and enrolment.refusals_at_auth == number
        assert (enrolment.revoked_at is not None) == (number == REVOKED_AFTER_REFUSALS)
    # Started again (systemd, by hand): stops at once, never knocks at the server.
    again = world.start()
    assert again is world.daemon and world.task is not None
    async with asyncio.timeout(5):
        assert await world.task == 5
    assert world.server.connections == REVOKED_AFTER_REFUSALS


async def test_a_start_the_server_takes_clears_earlier_refusals(world: World) -> None:
    """device.revoked is unsigned: refusals count only in a row; a device.ready clears them."""
    world.server.modes = ["revoked"] * (REVOKED_AFTER_REFUSALS - 1) + ["ready"]
    for _ in range(REVOKED_AFTER_REFUSALS - 1):
        world.start(backoff_base=0.05)
        assert world.task is not None
        async with asyncio.timeout(10):
            assert await world.task == 5
    world.start(backoff_base=0.05)
    await asyncio.wait_for(world.server.connected.wait(), 5)
    assert await world.stop() == 0
    enrolment = load_enrolment(world.state)
    assert enrolment is not None and enrolment.refusals_at_auth == 0
    assert enrolment.revoked_at is None
    world.server.modes = ["revoked"]
    world.start(backoff_base=0.05)
    assert world.task is not None
    async with asyncio.timeout(10):
        assert await world.task == 5
    enrolment = load_enrolment(world.state)
    assert enrolment is not None and enrolment.refusals_at_auth == 1
    assert enrolment.revoked_at is None


async def test_an_offer_outside_the_pre_authorisation_is_refused_signed(world: World) -> None:
    entry = world.pre(scope=(Capability.CHAT,))
    world.start()
    await world.server.expect(PreAuthPublish)
    for offer, code in ((world.offer("unknown-id"), "pre_authorisation.unknown"),
                        (world.offer(entry.id, "ss-1002"), "pre_authorisation.scope")):  # fmt: skip
        await world.server.send(offer)
        decision = await world.server.expect(ConsentDecisionMessage)
        receipt = verify_receipt(world.state.device_public_key, decision.receipt)
        assert {d.decision for d in receipt.decisions} == {ConsentDecision.REFUSED}
        error = await world.server.expect(ErrorMessage)
        assert error.code == code and error.ref == offer.id
    entries = {e.id: e for e in LocalLog(world.state).entries()}
    assert entries["ss-1002"].mode == "refused" and entries["ss-1002"].detail == (
        "pre_authorisation.scope")
    assert await world.stop() == 0


async def test_a_revocation_during_a_session_ends_it_and_the_service_goes_idle(
    world: World,
) -> None:
    entry = world.pre()
    world.start()
    await world.server.expect(PreAuthPublish)
    await world.server.send(PreAuthAck(id="a1", pre_authorisation_id=entry.id, state="stored"))
    offer = world.offer(entry.id)
    await world.server.send(offer)
    decision = await world.server.expect(ConsentDecisionMessage)
    receipt = verify_receipt(world.state.device_public_key, decision.receipt)
    assert receipt.granted() == {Capability.CHAT, Capability.TERMINAL}
    assert receipt.timeout_default == "granted" and receipt.prompt_text is not None
    assert receipt.prompt_text.startswith("Unattended access pre-authorised by Rosa")
    await world.server.send(SessionStateMessage(
        id="s1", support_session_id="ss-1001", state="active", changed_at=dt.datetime.now(UTC),
        granted=(Capability.CHAT, Capability.TERMINAL)))  # fmt: skip
    await until(lambda: world.daemon is not None and world.daemon.live is not None
                and world.daemon.live.runner.active)  # fmt: skip

    loop = asyncio.get_running_loop()
    started = loop.time()
    AccessStore(world.state.root).revoke(entry.id, "enough")  # `agent access revoke`
    revoke = await world.server.expect(PreAuthRevoke, 3)
    assert verify_revocation(world.state.device_public_key,
                             revoke.document).pre_authorisation_id == entry.id  # fmt: skip
    end = await world.server.expect(SessionEnd, 3)
    assert (end.support_session_id, end.reason) == ("ss-1001", "pre_authorisation_revoked")
    assert loop.time() - started < 2.5
    await until(lambda: world.daemon is not None and world.daemon.live is None)

    # Idle again on the same connection: the next offer is answered (refused: revoked).
    await world.server.send(world.offer(entry.id, "ss-1003"))
    await world.server.expect(ConsentDecisionMessage)
    assert (await world.server.expect(ErrorMessage)).code == "pre_authorisation.revoked"
    assert world.server.connections == 1

    # The owner's log: the session, who, what, why it ended; the same report as attended.
    logged = {e.id: e for e in LocalLog(world.state).entries()}
    session = logged["ss-1001"]
    assert session.mode == "unattended" and session.technician == "Ana López"
    assert session.reason == "pre_authorisation_revoked"
    assert session.pre_authorisation_id == entry.id
    assert session.duration_seconds is not None
    events = world.state.session_log("ss-1001").events()
    assert [e["event"] for e in events][:2] == ["offered", "consent"]
    assert events[0]["mode"] == "unattended" and events[0]["pre_authorisation_id"] == entry.id
    assert await world.stop() == 0

    from typer.testing import CliRunner

    from auxilio.agent.cli import app

    listed = CliRunner().invoke(app, ["log", "--state-dir", str(world.state.root)])
    assert listed.exit_code == 0 and "ss-1001" in listed.output and "unattended" in listed.output
    shown = CliRunner().invoke(app, ["log", "ss-1001", "--state-dir", str(world.state.root)])
    assert shown.exit_code == 0, shown.output
    assert "Technician: Ana López" in shown.output and "pre_authorisation_revoked" in shown.output
    missing = CliRunner().invoke(app, ["log", "nope", "--state-dir", str(world.state.root)])
    assert missing.exit_code == 1 and "Error log.unknown:" in missing.output


async def test_a_session_window_revoke_button_revokes_and_ends(world: World) -> None:
    entry = world.pre()
    daemon = world.start()
    await world.server.expect(PreAuthPublish)
    await world.server.send(world.offer(entry.id))
    await world.server.expect(ConsentDecisionMessage)
    await until(lambda: daemon.live is not None)
    await daemon.revoke_live()  # what the window's "Revoke access" button runs
    assert (await world.server.expect(SessionEnd, 3)).reason == "pre_authorisation_revoked"
    stored = world.access.get(entry.id)
    assert stored is not None and stored.revoked
    assert await world.stop() == 0


async def test_automation_orders_go_to_handle_order(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from auxilio.agent import automation

    seen: list[Any] = []
    result = AutomationResult(id="res-1", run_id="run-1",
                              result=SignedDocument(body="AAAA", signature="A" * 86))  # fmt: skip

    async def handled(order: SignedDocument, **kwargs: Any) -> AutomationResult:
        seen.append((order, kwargs))
        now = dt.datetime.now(UTC)
        kwargs["on_verified"](AutomationOrder(  # as handle_order does once the order verified
            run_id="run-1", organisation_id="org-7", device_id=DEVICE,
            device_public_key=encode_public_key(world.state.device_public_key),
            pre_authorisation_id="p-1", kind="diagnostics", sections=("os",), issued_at=now,
            not_after=now + dt.timedelta(minutes=5), nonce=b64url_encode(os.urandom(16))))
        return result

    monkeypatch.setattr(automation, "handle_order", handled)
    world.start()
    await asyncio.wait_for(world.server.connected.wait(), 5)
    order = SignedDocument(body="AAAA", signature="B" * 86)
    await world.server.send(AutomationRun(id="o1", order=order))
    assert await world.server.expect(AutomationResult) == result
    ((got, kwargs),) = seen
    assert got == order and kwargs["device_id"] == DEVICE
    assert isinstance(kwargs["access"], AccessStore)

    # Only the order handle_order said verified is in the owner's log.
    entries = LocalLog(world.state).entries()
    assert [(e.mode, e.id) for e in entries] == [("automated", "run-1")]
    assert await world.stop() == 0


async def test_orders_beyond_the_queue_are_refused_busy_signed(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One runs, AUTOMATION_QUEUE wait; each further order is answered at once with a signed
    refusal automation.busy naming it; the waiting ones still run, one at a time."""
    from auxilio.agent import automation
    from auxilio.agent.automation_queue import AUTOMATION_QUEUE
    from auxilio.crypto.automation import sign_order, verify_outcome

    release = asyncio.Event()
    ran: list[str] = []

    async def slow(order: SignedDocument, **kwargs: Any) -> AutomationResult:
        await release.wait()
        ran.append(order.body)
        return AutomationResult(id=f"r{len(ran)}", run_id=f"ran-{len(ran)}", result=order)

    monkeypatch.setattr(automation, "handle_order", slow)
    world.start()
    await asyncio.wait_for(world.server.connected.wait(), 5)
    now = dt.datetime.now(UTC)
    orders = [sign_order(world.server.server_key, AutomationOrder(
        run_id=f"run-{number}", organisation_id="org-7", device_id=DEVICE,
        device_public_key=encode_public_key(world.state.device_public_key),
        pre_authorisation_id="p-1", kind="diagnostics", sections=("os",), issued_at=now,
        not_after=now + dt.timedelta(minutes=5), nonce=b64url_encode(os.urandom(16)),
    )) for number in range(AUTOMATION_QUEUE + 3)]  # fmt: skip
    for number, order in enumerate(orders):
        await world.server.send(AutomationRun(id=f"o{number}", order=order))
        await asyncio.sleep(0.02)  # in order: the first is running before the queue fills
    busy = [await world.server.expect(AutomationResult) for _ in range(2)]
    assert [b.run_id for b in busy] == [f"run-{AUTOMATION_QUEUE + 1}",
                                        f"run-{AUTOMATION_QUEUE + 2}"]  # fmt: skip
    for answer in busy:
        outcome = verify_outcome(world.state.device_public_key, answer.result)
        assert (outcome.status, outcome.code) == ("refused", "automation.busy")
    release.set()
    done = [await world.server.expect(AutomationResult) for _ in range(AUTOMATION_QUEUE + 1)]
    assert [d.run_id for d in done] == [f"ran-{n}" for n in range(1, AUTOMATION_QUEUE + 2)]
    assert ran == [o.body for o in orders[:AUTOMATION_QUEUE + 1]]
    assert await world.stop() == 0


async def test_not_enrolled(state: AgentState) -> None:
    from auxilio.agent.errors import AgentError

    with pytest.raises(AgentError) as caught:
        await Daemon(state.root, console=Console(file=io.StringIO())).run()
    assert caught.value.code == "agent.not_enrolled"


async def test_the_indicator_window_and_its_revoke_access_button(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.agent.xserver import click, find_window, need_xdotool, xvfb

    need_xdotool()
    with xvfb() as display:
        monkeypatch.setenv("DISPLAY", display)
        entry = world.pre()
        daemon = world.start(window=True)
        await world.server.expect(PreAuthPublish)
        await world.server.send(world.offer(entry.id))
        await world.server.expect(ConsentDecisionMessage)
        await until(lambda: daemon.live is not None)
        assert daemon.session_window is not None and daemon.session_window.unattended
        await asyncio.to_thread(find_window, display, "auxilio-end-session")
        await asyncio.to_thread(click, display, "auxilio-revoke-access")
        # The revocation goes to the server first, then the session ends.
        assert (await world.server.expect(PreAuthRevoke, 10)) is not None
        assert (await world.server.expect(SessionEnd, 5)).reason == "pre_authorisation_revoked"
        stored = world.access.get(entry.id)
        assert stored is not None and stored.revoked
        await until(lambda: daemon.live is None, 10)
        assert await world.stop() == 0


async def test_stopping_the_service_ends_a_live_session_first(world: World) -> None:
    entry = world.pre()
    daemon = world.start()
    await world.server.expect(PreAuthPublish)
    await world.server.send(world.offer(entry.id))
    await world.server.expect(ConsentDecisionMessage)
    await until(lambda: daemon.live is not None)
    assert await world.stop() == 0  # SIGTERM from systemd
    end = await world.server.expect(SessionEnd)
    assert (end.reason, end.detail) == ("user_ended", "agent.service_stopped")
    (logged,) = LocalLog(world.state).entries()
    assert logged.reason == "user_ended" and logged.ended_at is not None


async def test_an_attended_join_never_says_the_enrolled_device_id(world: World) -> None:
    """Only the service speaks as the enrolled device: a join on the same device (same key, the
    device id remembered) must not be taken for the service's connection and replace it."""
    from auxilio.agent.connection import AgentConnection, server_address

    assert world.state.pinned(world.server.url).device_id == DEVICE  # type: ignore[union-attr]
    connection = AgentConnection(server_address(world.server.url), world.state,
                                 notify=lambda _: None)  # fmt: skip
    await connection.open()
    await connection.close()
    assert world.server.hellos[-1].device_id is None
