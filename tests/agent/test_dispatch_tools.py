"""Files, diagnostics and runbooks on the session: routed to their handlers behind the gate, in
order, each handler closed when its capability is revoked or the session ends, and what they
report reaching the server with the subject sealed and the rest in clear."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from rich.console import Console

from auxilio.agent.capabilities.base import Activity, SessionServices
from auxilio.agent.capabilities.terminal import TerminalHost
from auxilio.agent.channel import E2EChannel
from auxilio.agent.dispatch import HIGH_WATER, AppDispatcher, CapabilityHandler
from auxilio.agent.feed import Feed
from auxilio.agent.questions import Questions
from auxilio.agent.state import AgentState
from auxilio.crypto.keys import b64url_decode
from auxilio.crypto.sealed import open_activity_details
from auxilio.protocol.app import (
    AppMessage,
    DiagnosticsError,
    DiagnosticsRequest,
    FileChunk,
    FilesCancel,
    FilesDownload,
    FilesError,
    FilesList,
    FilesListing,
    RunbookError,
    RunbookRun,
)
from auxilio.protocol.binary import ChannelId
from auxilio.protocol.frames import (
    ActivityKind,
    CapabilityRevoke,
    SessionActivity,
    SessionEnd,
)
from auxilio.protocol.types import Capability, ConsentDecision, SignedDocument

from .factories import make_grant
from .sessionkit import FakeLink, Harness

GRANTED, REFUSED = ConsentDecision.GRANTED, ConsentDecision.REFUSED
TOOLS = (Capability.FILES, Capability.DIAGNOSTICS, Capability.RUNBOOKS)
SOME_RUNBOOK = SignedDocument(body="AAAA", signature="A" * 86)  # the fake handler reads nothing


class FakeHandler:
    """Records what it was given; ``fail_on`` makes ``handle`` raise for one message type."""

    def __init__(self, capability: Capability, services: SessionServices) -> None:
        self.capability = capability
        self.services = services
        self.seen: list[AppMessage] = []
        self.closed = False
        self.fail_on: str | None = None

    async def handle(self, message: AppMessage) -> None:
        if message.type == self.fail_on:
            raise RuntimeError("a bug in the handler")
        self.seen.append(message)

    async def close(self) -> None:
        self.closed = True


class Tools:
    """A session with chat and the three tools, their handlers fakes that are kept here."""

    def __init__(
        self,
        state: AgentState,
        server_key: Ed25519PrivateKey,
        technician_key: X25519PrivateKey,
        *,
        consent: dict[Capability, ConsentDecision] | None = None,
        **grant_args: Any,
    ) -> None:
        self.made: dict[Capability, list[FakeHandler]] = {c: [] for c in TOOLS}
        capabilities = (Capability.CHAT, *TOOLS)
        _, grant = make_grant(server_key, state.device_public_key, technician_key,
                              capabilities=capabilities, **grant_args)  # fmt: skip
        decisions = dict.fromkeys(capabilities, GRANTED) | (consent or {})
        self.h = Harness(state, grant, technician_key, decisions, server_key.public_key(),
                         handlers={c: self._factory(c) for c in TOOLS})  # fmt: skip
        self.granted = tuple(str(c) for c, d in decisions.items() if d is GRANTED)

    def _factory(self, capability: Capability) -> Any:
        def make(services: SessionServices) -> CapabilityHandler:
            self.made[capability].append(FakeHandler(capability, services))
            return self.made[capability][-1]

        return make

    def handler(self, capability: Capability) -> FakeHandler:
        assert len(self.made[capability]) == 1, self.made[capability]
        return self.made[capability][0]

    async def start(self) -> Harness:
        self.h.start()
        await self.h.activate(granted=self.granted)
        return self.h


async def test_each_message_reaches_its_handler_in_order(
    state: AgentState, server_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> None:
    t = Tools(state, server_key, technician_key)
    h = await t.start()
    sent: list[tuple[ChannelId, AppMessage]] = [
        (ChannelId.FILES, FilesList(request_id=1, path="/tmp")),
        (ChannelId.FILES, FilesDownload(transfer_id=2, path="/tmp/a")),
        (ChannelId.FILES, FileChunk(transfer_id=3, offset=0, data=b"x" * 10)),
        (ChannelId.FILES, FilesCancel(transfer_id=2)),
        (ChannelId.DIAGNOSTICS, DiagnosticsRequest(request_id=4, reason="slow")),
        (ChannelId.RUNBOOKS, RunbookRun(run_id=5, runbook=SOME_RUNBOOK)),
    ]
    for channel, message in sent:
        await h.send_app(channel, message)
    await h.eventually(lambda: all(t.made[c] and t.made[c][0].seen for c in TOOLS))
    await h.eventually(lambda: len(t.handler(Capability.FILES).seen) == 4)
    assert t.handler(Capability.FILES).seen == [m for c, m in sent if c is ChannelId.FILES]
    assert t.handler(Capability.DIAGNOSTICS).seen == [sent[4][1]]
    assert t.handler(Capability.RUNBOOKS).seen == [sent[5][1]]
    # One set of services for the session: every handler got the same one.
    services = {id(t.handler(c).services) for c in TOOLS}
    assert len(services) == 1
    await h.lines.queue.put("q")
    await h.finished()
    assert all(t.handler(c).closed for c in TOOLS)  # the end closes every handler


async def test_messages_only_the_device_sends_are_logged_and_ignored(
    state: AgentState, server_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> None:
    t = Tools(state, server_key, technician_key)
    h = await t.start()
    await h.send_app(ChannelId.FILES, FilesListing(request_id=1, path="/etc"))
    await h.send_app(ChannelId.FILES, FilesError(ref=1, code="files.not_found"))
    await h.send_app(ChannelId.DIAGNOSTICS, DiagnosticsError(ref=2, code="diagnostics.withheld"))
    await h.eventually(lambda: sum(e["event"] == "ignored" for e in h.log.events()) == 3)
    ignored = [e["what"] for e in h.log.events() if e["event"] == "ignored"]
    assert ignored == [
        "files.listing from the technician", "files.error from the technician",
        "diagnostics.error from the technician",
    ]  # fmt: skip
    assert t.made == {c: [] for c in TOOLS}  # no handler was even made
    await h.lines.queue.put("q")
    await h.finished()


async def test_a_capability_the_person_refused_is_answered_not_allowed(
    state: AgentState, server_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> None:
    t = Tools(state, server_key, technician_key, consent=dict.fromkeys(TOOLS, REFUSED))
    h = await t.start()
    await h.send_app(ChannelId.FILES, FilesList(request_id=7, path="/home"))
    assert await h.next_app() == FilesError(ref=7, code="files.not_allowed")
    for offset in (0, 10, 20):  # a refused upload's chunks: answered once, not a flood
        await h.send_app(ChannelId.FILES, FileChunk(transfer_id=8, offset=offset, data=b"y"))
    assert await h.next_app() == FilesError(ref=8, code="files.not_allowed")
    await h.send_app(ChannelId.DIAGNOSTICS, DiagnosticsRequest(request_id=9))
    assert await h.next_app() == DiagnosticsError(ref=9, code="diagnostics.not_allowed")
    await h.send_app(ChannelId.RUNBOOKS, RunbookRun(run_id=10, runbook=SOME_RUNBOOK))
    assert await h.next_app() == RunbookError(ref=10, code="runbook.not_allowed")
    assert t.made == {c: [] for c in TOOLS}
    text = h.console.export_text()
    assert "Refused: the technician tried to list a folder; files is not allowed." in text
    assert "tried to run a repair script; runbooks is not allowed" in text
    refused = [e["capability"] for e in h.log.events() if e["event"] == "refused_request"]
    assert refused == ["files", "diagnostics", "runbooks"]
    await h.lines.queue.put("q")
    await h.finished()


async def test_revoking_closes_the_handler_and_later_requests_are_refused(
    state: AgentState, server_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> None:
    t = Tools(state, server_key, technician_key)
    h = await t.start()
    await h.send_app(ChannelId.FILES, FilesList(request_id=1, path="/tmp"))
    await h.send_app(ChannelId.DIAGNOSTICS, DiagnosticsRequest(request_id=2))
    await h.send_app(ChannelId.RUNBOOKS, RunbookRun(run_id=3, runbook=SOME_RUNBOOK))
    await h.eventually(lambda: all(t.made[c] and t.made[c][0].seen for c in TOOLS))
    # The person types it, the server says it, the window's button posts it.
    await h.lines.queue.put("r files")
    await h.eventually(lambda: t.handler(Capability.FILES).closed)
    revoke = await h.next_sent(CapabilityRevoke)
    assert revoke.capability is Capability.FILES
    await h.link.incoming.put(CapabilityRevoke(
        id="rv-1", support_session_id="ss-1001", capability=Capability.DIAGNOSTICS,
        revoked_by="technician", reason="done"))  # fmt: skip
    await h.eventually(lambda: t.handler(Capability.DIAGNOSTICS).closed)
    h.runner.post("revoke", Capability.RUNBOOKS)
    await h.eventually(lambda: t.handler(Capability.RUNBOOKS).closed)
    await h.send_app(ChannelId.FILES, FilesList(request_id=4, path="/tmp"))
    assert await h.next_app() == FilesError(ref=4, code="files.not_allowed")
    assert len(t.made[Capability.FILES]) == 1  # no new handler after the revocation
    closed = [e["capability"] for e in h.log.events() if e["event"] == "handler_closed"]
    assert closed == ["files", "diagnostics", "runbooks"]
    await h.lines.queue.put("q")
    await h.finished()


async def test_a_failing_handler_answers_failed_and_takes_the_next_message(
    state: AgentState, server_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> None:
    t = Tools(state, server_key, technician_key)
    h = await t.start()
    await h.send_app(ChannelId.FILES, FilesList(request_id=1, path="/tmp"))
    await h.eventually(lambda: bool(t.made[Capability.FILES]))
    t.handler(Capability.FILES).fail_on = "files.download"
    await h.send_app(ChannelId.FILES, FilesDownload(transfer_id=2, path="/tmp/a"))
    assert await h.next_app() == FilesError(ref=2, code="files.failed")
    await h.send_app(ChannelId.FILES, FilesList(request_id=3, path="/var"))
    await h.eventually(lambda: len(t.handler(Capability.FILES).seen) == 2)
    assert "files: an internal error stopped files.download." in h.console.export_text()
    assert any(e["event"] == "handler_failed" for e in h.log.events())
    await h.lines.queue.put("q")
    await h.finished()


async def test_the_report_seals_the_subject_and_carries_the_rest_in_clear(
    state: AgentState, server_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> None:
    auditor = X25519PrivateKey.generate()
    t = Tools(state, server_key, technician_key, auditor_public_key=auditor.public_key())
    h = await t.start()
    await h.send_app(ChannelId.FILES, FilesList(request_id=1, path="/tmp"))
    await h.send_app(ChannelId.RUNBOOKS, RunbookRun(run_id=2, runbook=SOME_RUNBOOK))
    await h.eventually(lambda: all(t.made[c] for c in (Capability.FILES, Capability.RUNBOOKS)))
    services = t.handler(Capability.FILES).services
    path = "/home/ana/Documents/taxes.txt"
    await services.report(Activity(Capability.FILES, ActivityKind.FILE_READ, subject=path,
                                   size=12, sha256="ab" * 32, zone="documents"))  # fmt: skip
    await services.report(Activity(Capability.RUNBOOKS, ActivityKind.RUNBOOK_RUN,
                                   subject="flush-dns (interface=eth0)",
                                   runbook_id="flush-dns", exit_code=3))  # fmt: skip
    await services.mark_used(Capability.FILES)
    await services.mark_used(Capability.FILES)  # counted once
    read = await h.next_sent(SessionActivity)
    assert (read.capability, read.kind, read.size, read.sha256, read.zone) == (
        Capability.FILES, ActivityKind.FILE_READ, 12, "ab" * 32, "documents",
    )  # fmt: skip
    assert (read.runbook_id, read.exit_code) == (None, None)
    assert path not in read.model_dump_json()  # the path only sealed
    assert read.sealed_details is not None
    assert open_activity_details(auditor, "ss-1001", b64url_decode(read.sealed_details)) == path
    run = await h.next_sent(SessionActivity)
    assert (run.kind, run.runbook_id, run.exit_code) == (ActivityKind.RUNBOOK_RUN, "flush-dns", 3)
    assert "eth0" not in run.model_dump_json()
    used = await h.next_sent(SessionActivity)
    assert (used.kind, used.capability, used.sealed_details) == (
        ActivityKind.CAPABILITY_USED, Capability.FILES, None,
    )  # fmt: skip
    await h.lines.queue.put("q")
    await h.next_sent(SessionEnd)
    await h.finished()
    used_logged = [e["capability"] for e in h.log.events() if e["event"] == "capability_used"]
    assert used_logged == ["files"]


async def test_the_gate_in_the_services_is_the_sessions_own(
    state: AgentState, server_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> None:
    t = Tools(state, server_key, technician_key, consent={Capability.RUNBOOKS: REFUSED})
    h = await t.start()
    await h.send_app(ChannelId.FILES, FilesList(request_id=1, path="/tmp"))
    await h.eventually(lambda: bool(t.made[Capability.FILES]))
    services = t.handler(Capability.FILES).services
    assert services.gate(Capability.FILES) and not services.gate(Capability.RUNBOOKS)
    assert services.grant() is h.runner.grant
    await h.lines.queue.put("r files")
    await h.eventually(lambda: not services.gate(Capability.FILES))  # a long transfer stops
    await h.lines.queue.put("q")
    await h.finished()


# -- the real handlers, wired ------------------------------------------------------------------


async def test_the_real_handlers_answer_through_the_session(
    state: AgentState, server_key: Ed25519PrivateKey, technician_key: X25519PrivateKey,
    tmp_path: Path,
) -> None:  # fmt: skip
    capabilities = (Capability.CHAT, *TOOLS)
    _, grant = make_grant(server_key, state.device_public_key, technician_key,
                          capabilities=capabilities)  # fmt: skip
    h = Harness(state, grant, technician_key, dict.fromkeys(capabilities, GRANTED),
                server_key.public_key())  # fmt: skip
    h.start()
    await h.activate(granted=tuple(str(c) for c in capabilities))
    (tmp_path / "notes.txt").write_text("hello")
    await h.send_app(ChannelId.FILES, FilesList(request_id=1, path=str(tmp_path)))
    listing = await h.next_app(60)
    assert isinstance(listing, FilesListing)
    assert "notes.txt" in [entry.name for entry in listing.entries]
    # Not pinned in the grant: refused before anything runs.
    await h.send_app(ChannelId.RUNBOOKS, RunbookRun(run_id=2, runbook=SOME_RUNBOOK))
    refused = await h.next_app(60)
    assert isinstance(refused, RunbookError) and refused.ref == 2
    # Diagnostics: collected, shown, and withheld when the person says no.
    await h.send_app(ChannelId.DIAGNOSTICS, DiagnosticsRequest(request_id=3, reason="slow"))
    await h.eventually(lambda: h.runner.questions.pending == 1, 60)
    await h.lines.queue.put("n")
    withheld = await h.next_app(60)
    assert isinstance(withheld, DiagnosticsError)
    assert (withheld.ref, withheld.code) == (3, "diagnostics.withheld")
    await h.lines.queue.put("q")
    await asyncio.wait_for(h.finished(), 60)


# -- the dispatcher alone: a capability that runs out inside the grant -------------------------


async def test_a_capability_that_expires_closes_its_handler_and_refuses_what_waited(
    state: AgentState, server_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> None:
    _, grant = make_grant(server_key, state.device_public_key, technician_key,
                          capabilities=(Capability.FILES,))  # fmt: skip
    allowed = {Capability.FILES}
    link = FakeLink()
    made: list[BlockingHandler] = []

    def factory(services: SessionServices) -> CapabilityHandler:
        made.append(BlockingHandler())
        return made[-1]

    apps = AppDispatcher(
        gate=lambda c: c in allowed, grant=lambda: grant, link=link,
        channel=E2EChannel(link, device_key=state.device_key),
        terminals=TerminalHost(on_output=lambda *_: None, on_exit=lambda *_: None,
                               on_command=lambda _: None),
        feed=Feed(Console(record=True)), log=state.session_log("ss-1001"),
        clock=lambda: datetime.now(UTC), ask=Questions(
            feed=Feed(Console(record=True)), log=state.session_log("ss-1001")).ask,
        handlers={Capability.FILES: factory},
    )  # fmt: skip
    await apps.handle(FilesList(request_id=1, path="/tmp"))
    await apps.handle(FilesList(request_id=2, path="/var"))  # queued behind the busy one
    await asyncio.wait_for(made[0].busy.wait(), 10)
    await apps.close_unless_allowed()
    assert not made[0].closed  # still allowed: nothing happens
    allowed.clear()  # the capability's own time ran out
    await apps.close_unless_allowed()
    assert made[0].closed and made[0].cancelled  # the busy step was stopped, then close()
    assert made[0].seen == [1]
    events = state.session_log("ss-1001").events()
    last = events[-1]
    assert (last["event"], last["capability"], last["not_taken"]) == ("handler_closed", "files", 1)
    # The request that waited is answered files.not_allowed (no channel here: logged as lost).
    assert {"event": "dropped", "what": "files.error"} in [
        {"event": e["event"], "what": e.get("what")} for e in events
    ]


class BlockingHandler:
    """Takes a request and never finishes it (a slow disk, a question not yet answered)."""

    def __init__(self) -> None:
        self.busy = asyncio.Event()
        self.seen: list[int] = []
        self.closed = self.cancelled = False

    async def handle(self, message: AppMessage) -> None:
        assert isinstance(message, FilesList)
        self.seen.append(message.request_id)
        self.busy.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise

    async def close(self) -> None:
        self.closed = True


async def test_a_handler_behind_stops_the_reading_and_the_person_can_still_revoke(
    state: AgentState, server_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> None:
    t = Tools(state, server_key, technician_key)
    h = await t.start()
    await h.send_app(ChannelId.FILES, FilesList(request_id=1, path="/tmp"))
    await h.eventually(lambda: bool(t.made[Capability.FILES]))
    handler = t.handler(Capability.FILES)
    stuck = asyncio.Event()

    async def slow_disk(message: AppMessage) -> None:
        handler.seen.append(message)
        await stuck.wait()  # never set: this disk takes nothing more

    handler.handle = slow_disk  # type: ignore[method-assign]
    sent = 3 * HIGH_WATER + 10
    for offset in range(sent):
        await h.send_app(ChannelId.FILES, FileChunk(transfer_id=5, offset=offset, data=b"z"))
    await h.eventually(lambda: len(handler.seen) == 2)  # the list, then the first chunk
    await asyncio.sleep(0.2)  # let the session read all it is going to read
    # At most a full queue for the handler and a full one for the loop were read.
    assert h.link.incoming.qsize() >= sent - 2 * HIGH_WATER - 2
    await h.lines.queue.put("r files")  # the person's lines are read apart from the connection
    await h.eventually(lambda: handler.closed)
    await h.eventually(lambda: h.link.incoming.empty())  # reading again
    assert await h.next_app() == FilesError(ref=5, code="files.not_allowed")  # once
    await h.lines.queue.put("q")
    await h.finished()
    assert len(t.made[Capability.FILES]) == 1
