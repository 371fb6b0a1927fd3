"""``auxilio agent run``: the service of an enrolled device (docs/unattended.md).

It holds one connection to ``/ws/agent``: ``agent.hello`` with the enrolment's ``device_id``,
the usual key check and ``agent.auth`` (agent/connection.py), then ``device.ready`` (or an error:
``device.revoked`` / ``device.unknown`` / ``device.key_mismatch`` stop the service with exit code
5). Errors are not signed, so ``device.revoked`` is not taken for good from one message: it
stops this run only, and the next start asks the server again; only a server refusing the device
at auth time on ``REVOKED_AFTER_REFUSALS`` starts in a row (no device.ready in between) writes it
into enrolment.json, so that later starts stop at once without knocking at the server. Then, on
that one connection:

- the owner's pre-authorisations (agent/access.py) are kept in step with the server: every live
  one the server does not list is published (``preauth.publish``), every revocation it has not
  acknowledged is sent (``preauth.revoke``), and sent again on every connection whose
  ``device.ready`` still lists it as live (an ack is not signed: a hint, never the last word);
  the access directory is polled every second, so a ``auxilio agent access grant|revoke`` made
  while the service runs reaches the server within about a second;
- ``session.offer``: the grant is checked (agent/grants.py, as a join checks it) and then against
  the device's own pre-authorisation (agent/unattended.py); nobody is asked. A covered offer runs
  as any support session (agent/session.py) with the session window as the indicator where there
  is a display ("Unattended session: ...", a "Revoke access" button) and a console line where
  there is none (the journal, for the systemd unit). A revocation of its pre-authorisation,
  from the window or from ``auxilio agent access revoke``, ends it at once
  (``pre_authorisation_revoked``). Afterwards the connection is idle again;
- ``automation.run``: ``agent.automation.handle_order`` and its ``automation.result``, one run
  at a time, from a bounded queue (agent/automation_queue.py);
- every unattended session and every automated run whose order verified goes into the owner's
  log (agent/local_log.py); an order that does not verify is answered with a signed refusal and
  leaves no trace per message (a line in the journal at most once a minute).

A dropped connection ends a live unattended session (``connection_lost``: nobody on the device
expects it to come back) and is retried for ever, with capped exponential backoff and jitter
(``delay_for``), reset once a connection has stayed up ``STABLE_SECONDS``. Exit codes: 0 stopped
(SIGTERM, SIGINT), 1 an error before connecting (not enrolled...), 3 the server key changed,
5 the device is revoked or unknown to the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from auxilio.agent.access import AccessStore
from auxilio.agent.automation_queue import AutomationQueue
from auxilio.agent.connection import (
    HELLO_TIMEOUT_SECONDS,
    AgentConnection,
    ConnectionLost,
    Incoming,
    new_id,
    server_address,
)
from auxilio.agent.consent import utc_now
from auxilio.agent.consent_window import window_available
from auxilio.agent.enroll import (
    Enrolment,
    clear_refusals,
    note_refusal_at_auth,
    require_enrolment,
)
from auxilio.agent.errors import AgentError, ConnectionFailed, ServerKeyChanged
from auxilio.agent.feed import Feed, WindowFeed
from auxilio.agent.i18n import texts_for
from auxilio.agent.join import log_offer, show_report, verify_offer
from auxilio.agent.local_log import LocalLog
from auxilio.agent.service_unit import EXIT_DEVICE_REVOKED, EXIT_KEY_CHANGED
from auxilio.agent.session import SupportSessionRunner
from auxilio.agent.session_window import SessionWindow, into_loop
from auxilio.agent.state import AgentState, PinnedServer
from auxilio.agent.unattended import UnattendedRefused, check_unattended, sign_answer
from auxilio.agent.userinput import LineInput
from auxilio.protocol.errors import ProtocolError, ProtocolErrorCode
from auxilio.protocol.frames import (
    AutomationRun,
    ConsentDecisionMessage,
    ControlMessage,
    DeviceReady,
    EndReason,
    ErrorMessage,
    Party,
    PreAuthAck,
    PreAuthPublish,
    PreAuthRevoke,
    SessionEnd,
    SessionOffer,
)

POLL_SECONDS = 1.0
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 60.0
STABLE_SECONDS = 60.0
# Short waits for the server's report after an unattended session: nobody reads it live, the
# owner reads it in `auxilio agent log` (the device's own log is the report there).
FIRST_REPORT_SECONDS = 5.0
REPORT_WAIT_SECONDS = 10.0
FATAL_CODES = frozenset({"device.revoked", "device.unknown", "device.key_mismatch"})


class DeviceGone(AgentError):
    """The server refuses this device: revoked, unknown, another key. ``at_auth``: it said so
    in answer to ``agent.auth`` (where a real server refuses a revoked device)."""

    exit_code = EXIT_DEVICE_REVOKED

    def __init__(self, code: str, message: str, *, at_auth: bool = False) -> None:
        super().__init__(code, message)
        self.at_auth = at_auth


def delay_for(attempt: int, *, base: float = BACKOFF_BASE_SECONDS,
              cap: float = BACKOFF_CAP_SECONDS) -> float:  # fmt: skip
    """``base * 2**attempt`` capped at ``cap``, less up to half of it at random: many devices
    dropped by one server restart do not all come back in the same second."""
    delay = min(cap, base * 2 ** min(attempt, 32))
    return random.uniform(delay / 2, delay)  # noqa: S311 - jitter, not a secret


@dataclass
class _Live:
    support_session_id: str
    pre_authorisation_id: str
    runner: SupportSessionRunner
    stopping: bool = False


class _SessionLink:
    """What the session runner sees of the service's connection: the same socket, but messages
    that are the service's own (acks, automation, device.ready, another offer) are handled on
    the way, a lost connection ends the session instead of reconnecting it, and closing it at
    the session's end leaves the connection open for the next one."""

    def __init__(self, daemon: Daemon, connection: AgentConnection) -> None:
        self._daemon = daemon
        self._connection = connection

    async def send(self, message: ControlMessage) -> None:
        await self._connection.send(message)

    async def send_binary(self, frame: bytes) -> None:
        await self._connection.send_binary(frame)

    async def receive(self) -> Incoming:
        daemon = self._daemon
        while True:
            kind, value = await daemon.inbox.get()
            item: Incoming = value
            if kind == "lost":
                daemon.lost = True
                raise ConnectionLost("the connection to the server dropped")
            if kind == "bad":
                raise value
            if kind == "stop":  # the service stops: the session is ended through its runner
                continue
            if await daemon.side_message(value):
                continue
            if daemon.fatal is not None:
                daemon.lost = True
                raise ConnectionLost(daemon.fatal.code)
            live = daemon.live
            if isinstance(value, SessionOffer) and (
                live is None or value.support_session_id != live.support_session_id
            ):
                if live is not None and live.runner.ended is not None:
                    # The session is over and only waits for the technician's summary: the
                    # new offer cuts that wait short and is taken next (the server already
                    # counts this connection idle, so a refusal would end the new session).
                    daemon.inbox.put_nowait(("net", value))
                    raise ConnectionLost("a new unattended session is offered")
                await daemon.refuse_busy(value)
                continue
            return item

    async def reconnect(self) -> None:
        raise ConnectionFailed(
            "server.connection_lost",
            "the connection dropped; the unattended session ends and the service connects again",
        )

    async def close(self) -> None:
        return None


class Daemon:
    def __init__(
        self,
        state_dir: Path,
        *,
        console: Console,
        ca_file: str | None = None,
        window: bool = True,
        lang: str | None = None,
        poll_seconds: float = POLL_SECONDS,
        backoff_base: float = BACKOFF_BASE_SECONDS,
        backoff_cap: float = BACKOFF_CAP_SECONDS,
        stable_seconds: float = STABLE_SECONDS,
        first_report_seconds: float = FIRST_REPORT_SECONDS,
        report_wait_seconds: float = REPORT_WAIT_SECONDS,
    ) -> None:
        self.state = AgentState(state_dir)
        self.access = AccessStore(self.state)
        self.local_log = LocalLog(self.state)
        self.console = console
        self.texts = texts_for(lang)
        self.ca_file = ca_file
        self.window = window
        self.poll_seconds = poll_seconds
        self.backoff_base, self.backoff_cap = backoff_base, backoff_cap
        self.stable_seconds = stable_seconds
        self.first_report_seconds = first_report_seconds
        self.report_wait_seconds = report_wait_seconds
        self.inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.live: _Live | None = None
        self.lost = False
        self.fatal: AgentError | None = None
        self.connects = 0  # connections opened (tests read it)
        self.delays: list[float] = []  # backoff delays waited (tests read them)
        self.ready: DeviceReady | None = None
        self._stop = asyncio.Event()
        self._connection: AgentConnection | None = None
        self._pinned: PinnedServer | None = None
        self._enrolment: Enrolment | None = None
        self._server_ids: set[str] = set()
        self._sent: dict[str, str] = {}  # pre-authorisation id -> "publish" | "revoke" sent
        self._tasks: set[asyncio.Task[Any]] = set()
        self.automation = AutomationQueue(self)
        self._lines: LineInput | None = None
        self._devnull: int | None = None
        self.session_window: SessionWindow | None = None  # the indicator last shown

    def say(self, text: str) -> None:
        stamp = datetime.now(UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")
        self.console.print(f"{stamp} {text}", markup=False, highlight=False, soft_wrap=True)

    # -- lifecycle ------------------------------------------------------------------------------

    def stop(self) -> None:
        """SIGTERM / SIGINT: end a live session (the owner's service stops), then exit 0."""
        self._stop.set()
        if self.live is not None and not self.live.stopping:
            self.live.stopping = True
            self.live.runner.post("stop", (Party.END_USER, EndReason.USER_ENDED,
                                           "agent.service_stopped"))  # fmt: skip
        else:
            self.inbox.put_nowait(("stop", None))

    async def run(self) -> int:
        """Until stopped or refused for good; the exit code."""
        enrolment = require_enrolment(self.state, code="agent.not_enrolled")
        if enrolment.revoked_at is not None:
            self.say(f"Error device.revoked: this device was revoked by its organisation at "
                     f"{enrolment.revoked_at} ({enrolment.revoked_reason or 'no reason given'}); "
                     "the service does not connect any more. Enrol again to use it.")  # fmt: skip
            return EXIT_DEVICE_REVOKED
        self._enrolment = enrolment
        try:
            return await self._run(server_address(enrolment.server))
        finally:
            for task in list(self._tasks):
                task.cancel()
            if self._devnull is not None:
                os.close(self._devnull)
                self._devnull = None

    async def _run(self, address: Any) -> int:
        enrolment = self._enrolment
        assert enrolment is not None  # noqa: S101 - set by run()
        loop = asyncio.get_running_loop()
        attempt = 0
        while not self._stop.is_set():
            started = loop.time()
            try:
                await self._serve(address)
                why = "the server closed the connection"
            except DeviceGone as exc:
                noted = ""
                if exc.code == "device.revoked" and exc.at_auth:
                    marked = note_refusal_at_auth(self.state, at=utc_now().isoformat(),
                                                  reason=exc.message)  # fmt: skip
                    noted = (" It will not connect again (refused at "
                             f"{marked.refusals_at_auth} starts in a row)."
                             if marked.revoked_at is not None else
                             f" Refused at {marked.refusals_at_auth} start(s) in a row; the "
                             "next start asks the server again.")  # fmt: skip
                self.say(f"Error {exc.code}: {exc.message}. The service stops.{noted}")
                return EXIT_DEVICE_REVOKED
            except ServerKeyChanged as exc:
                self.say(f"Error {exc.code}: {exc.message}")
                return EXIT_KEY_CHANGED
            except (AgentError, ConnectionLost, OSError) as exc:
                why = f"{getattr(exc, 'code', type(exc).__name__)}: {exc}"
            if self._stop.is_set():
                break
            if loop.time() - started >= self.stable_seconds:
                attempt = 0
            delay = delay_for(attempt, base=self.backoff_base, cap=self.backoff_cap)
            attempt += 1
            self.delays.append(delay)
            self.say(f"Not connected ({why}); trying again in {delay:.1f} s.")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
        self.say("Stopped.")
        return 0

    async def _serve(self, address: Any) -> None:
        assert self._enrolment is not None  # noqa: S101 - set by run()
        connection = AgentConnection(address, self.state, notify=self.say, ca_file=self.ca_file,
                                     device_id=self._enrolment.device_id)  # fmt: skip
        self._connection = connection
        self.inbox = asyncio.Queue()
        if self._stop.is_set():
            return
        self.lost, self.fatal, self._sent = False, None, {}
        self.connects += 1
        reader: asyncio.Task[None] | None = None
        poller: asyncio.Task[None] | None = None
        try:
            self._pinned = await connection.open()
            self.ready = await self._expect_ready(connection)
            clear_refusals(self.state)
            self._server_ids = set(self.ready.pre_authorisations)
            self.say(f"Connected to {address.origin} as device {self.ready.device_id}; waiting "
                     "for unattended sessions within the owner's pre-authorisations.")  # fmt: skip
            if self.ready.emergency_active:
                self.say("The organisation has declared an emergency: no unattended access now.")
            reader = asyncio.create_task(self._read(connection))
            await self.sync()
            poller = asyncio.create_task(self._poll())
            await self._idle()
        finally:
            for task in (reader, poller):
                if task is not None:
                    task.cancel()
            await connection.close()
            self._connection = None

    async def _expect_ready(self, connection: AgentConnection) -> DeviceReady:
        assert self._enrolment is not None  # noqa: S101 - set by run()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + HELLO_TIMEOUT_SECONDS
        while True:
            try:
                message = await asyncio.wait_for(connection.receive(), deadline - loop.time())
            except TimeoutError as exc:
                raise ConnectionFailed("server.no_ready", "no device.ready came") from exc
            except ProtocolError:
                continue
            if isinstance(message, ErrorMessage):
                if message.code in FATAL_CODES:
                    raise DeviceGone(message.code, message.message, at_auth=True)
                raise AgentError(message.code, message.message)
            if isinstance(message, DeviceReady):
                if message.device_id != self._enrolment.device_id:
                    known = f"{message.device_id}, not {self._enrolment.device_id}"
                    raise DeviceGone("device.unknown", f"the server knows this key as {known}")
                return message

    async def _read(self, connection: AgentConnection) -> None:
        while True:
            try:
                item = await connection.receive()
            except ProtocolError as exc:
                await self.inbox.put(("bad", exc))
                continue
            except ConnectionLost:
                await self.inbox.put(("lost", None))
                return
            await self.inbox.put(("net", item))

    async def _idle(self) -> None:
        while not self.lost:
            kind, value = await self.inbox.get()
            if kind in ("lost", "stop"):
                return
            if kind == "bad":
                if value.code is not ProtocolErrorCode.UNKNOWN_TYPE:
                    self.say(f"The server sent an invalid message ({value.code}); ignored.")
                continue
            if await self.side_message(value):
                continue
            if self.fatal is not None:
                raise self.fatal
            if isinstance(value, SessionOffer):
                await self._session(value)
                if self._stop.is_set():
                    return
        if self.fatal is not None:  # said while a session ran: it ended, and so does this run
            raise self.fatal

    # -- messages that are the service's own ----------------------------------------------------

    async def side_message(self, message: Incoming) -> bool:
        """True when ``message`` was handled here (so no session sees it)."""
        if isinstance(message, PreAuthAck):
            self.access.mark_published(message.pre_authorisation_id, message.state)
            self._sent.pop(message.pre_authorisation_id, None)
            if message.state == "stored":
                self._server_ids.add(message.pre_authorisation_id)
            else:
                self._server_ids.discard(message.pre_authorisation_id)
            return True
        if isinstance(message, AutomationRun):
            await self.automation.queue(message)
            return True
        if isinstance(message, DeviceReady):
            return True
        if isinstance(message, ErrorMessage):
            if message.code in FATAL_CODES:
                self.fatal = DeviceGone(message.code, message.message)
                return False
            if self.live is None:
                self.say(f"Server error {message.code}: {message.message}")
                return True
        return False

    async def refuse_busy(self, offer: SessionOffer) -> None:
        with contextlib.suppress(ConnectionLost):
            await self._send(SessionEnd(id=new_id(), support_session_id=offer.support_session_id,
                                        ended_by=Party.AGENT, reason=EndReason.PROTOCOL_ERROR,
                                        detail="device.busy"))  # fmt: skip

    async def _send(self, message: ControlMessage) -> None:
        if self._connection is None:
            raise ConnectionLost("not connected")
        await self._connection.send(message)

    # -- pre-authorisations in step with the server ---------------------------------------------

    async def sync(self) -> None:
        """Publish what the server lacks, send the revocations it has not acknowledged, and end
        the live session if its pre-authorisation is revoked."""
        now = utc_now()
        for entry in self.access.all():
            if entry.revoked:
                if self.live is not None and self.live.pre_authorisation_id == entry.id:
                    self._end_live(entry.id)
                known = entry.published or entry.id in self._server_ids or entry.id in self._sent
                # The ack is unsigned: the server listing it live (device.ready) means it does
                # not hold the revocation, whatever an ack said.
                pending = not entry.revocation_published or entry.id in self._server_ids
                if (entry.revocation_signed is not None and pending and known
                        and self._sent.get(entry.id) != "revoke"):  # fmt: skip
                    await self._send(PreAuthRevoke(id=new_id(), document=entry.revocation_signed))
                    self._sent[entry.id] = "revoke"
                    self.say(f"Sent the revocation of the pre-authorisation {entry.id}.")
            elif (entry.is_live(now) and entry.id not in self._server_ids
                  and entry.id not in self._sent):  # fmt: skip
                await self._send(PreAuthPublish(id=new_id(), document=entry.signed))
                self._sent[entry.id] = "publish"
                self.say(f"Published the pre-authorisation {entry.id} "
                         f"({', '.join(entry.document.scope)}).")  # fmt: skip

    def _end_live(self, pre_authorisation_id: str) -> None:
        live = self.live
        if live is None or live.stopping:
            return
        live.stopping = True
        self.say(f"The pre-authorisation {pre_authorisation_id} was revoked: ending the session.")
        live.runner.post("stop", (Party.END_USER, EndReason.PRE_AUTHORISATION_REVOKED,
                                  pre_authorisation_id))  # fmt: skip

    async def _poll(self) -> None:
        seen = self.access.fingerprint()
        while True:
            await asyncio.sleep(self.poll_seconds)
            now_seen = self.access.fingerprint()
            if now_seen == seen:
                continue
            seen = now_seen
            try:
                await self.sync()
            except ConnectionLost:
                return

    async def revoke_live(self) -> None:
        """The session window's "Revoke access": the owner revokes the pre-authorisation the
        session runs on (signed here, sent at once), which ends the session."""
        live = self.live
        if live is None:
            return
        entry = self.access.revoke(live.pre_authorisation_id, "revoked from the session window")
        self.say(f"The owner revoked the pre-authorisation {entry.id} from the session window.")
        with contextlib.suppress(ConnectionLost):
            await self.sync()
        self._end_live(entry.id)

    # -- an unattended session ------------------------------------------------------------------

    async def _session(self, offer: SessionOffer) -> None:
        assert self._pinned is not None and self._enrolment is not None  # noqa: S101
        assert self._connection is not None  # noqa: S101
        connection, pinned, enrolment = self._connection, self._pinned, self._enrolment
        try:
            grant = await verify_offer(connection, offer, state=self.state,
                                       server_key=pinned.public_key,
                                       device_id=enrolment.device_id)  # fmt: skip
        except AgentError as exc:
            self.say(f"Refused an offer whose grant does not verify: {exc.code}: {exc.message}")
            self.local_log.started(offer.support_session_id, mode="refused")
            self.local_log.ended(offer.support_session_id, reason=exc.code, ended_by="agent")
            return
        now = utc_now()
        refusal: UnattendedRefused | None = None
        entry = None
        try:
            entry = check_unattended(grant, self.access, device_id=enrolment.device_id,
                                     organisation_id=enrolment.organisation_id,
                                     server_fingerprint=pinned.fingerprint, now=now)  # fmt: skip
        except UnattendedRefused as exc:
            refusal = exc
        answer = sign_answer(self.state.device_key, grant, entry=entry, refusal=refusal, now=now)
        self.state.save_receipt(answer.signed, answer.receipt,
                                technician_name=grant.technician_name,
                                organisation_name=grant.organisation_name,
                                server=pinned.origin)  # fmt: skip
        pre_id = grant.terms.pre_authorisation_id or ""
        log = log_offer(self.state, grant, server=pinned.origin, mode=grant.terms.mode,
                        pre_authorisation_id=pre_id)  # fmt: skip
        capabilities = [str(item.capability) for item in grant.capabilities]
        decisions = {str(d.capability): str(d.decision) for d in answer.receipt.decisions}
        log.append("consent", decisions=decisions, unattended=True)
        self.local_log.started(grant.support_session_id, mode="unattended" if refusal is None
                               else "refused", technician=grant.technician_name,
                               organisation=grant.organisation_name, capabilities=capabilities,
                               pre_authorisation_id=pre_id)  # fmt: skip
        try:
            session_id = grant.support_session_id
            await self._send(ConsentDecisionMessage(id=new_id(), receipt=answer.signed,
                                                    support_session_id=session_id))  # fmt: skip
            if refusal is not None:
                await self._send(ErrorMessage(id=new_id(), code=refusal.code, ref=offer.id,
                                              message=refusal.message[:2000]))  # fmt: skip
        except ConnectionLost:
            self.lost = True
        if refusal is not None:
            self.say(f"Refused the unattended session of {grant.technician_name} "
                     f"({grant.organisation_name}): {refusal.code}: {refusal.message}")  # fmt: skip
            log.append("ended", ended_by="agent", reason="consent_refused", detail=refusal.code)
            self.local_log.ended(grant.support_session_id, reason="consent_refused",
                                 ended_by="agent", detail=refusal.code)  # fmt: skip
            return
        assert entry is not None  # noqa: S101 - no refusal means an entry
        self.say(f"Unattended session: {grant.technician_name} ({grant.organisation_name}), "
                 f"{', '.join(capabilities)}, under the pre-authorisation {entry.id} of "
                 f"{entry.document.owner_name}. Revoke it with: auxilio agent access revoke "
                 f"{entry.id}")  # fmt: skip
        await self._run_session(grant, answer.receipt, entry.id, log)

    async def _run_session(self, grant: Any, receipt: Any, entry_id: str, log: Any) -> None:
        assert self._pinned is not None and self._connection is not None  # noqa: S101
        loop = asyncio.get_running_loop()
        if self._lines is None:
            self._devnull = os.open(os.devnull, os.O_RDONLY)
            self._lines = LineInput(fd=self._devnull)  # nobody types here
        feed: Feed = Feed(self.console, self.texts)
        session_window: SessionWindow | None = None
        runner: SupportSessionRunner | None = None

        def route(kind: str, value: Any) -> None:
            if kind == "revoke_access":
                task = asyncio.create_task(self.revoke_live())
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            elif runner is not None:
                runner.post(kind, value)

        if self.window and window_available():
            session_window = SessionWindow(on_event=into_loop(loop, lambda: route),
                                           texts=self.texts, unattended=True)  # fmt: skip
            feed = WindowFeed(self.console, session_window)
        self.session_window = session_window
        runner = SupportSessionRunner(
            link=_SessionLink(self, self._connection), feed=feed, lines=self._lines, log=log,
            device_key=self.state.device_key, server_key=self._pinned.public_key, grant=grant,
            receipt=receipt, server_url=self._pinned.origin,
            first_report_seconds=self.first_report_seconds,
            report_wait_seconds=self.report_wait_seconds,
        )  # fmt: skip
        self.live = _Live(grant.support_session_id, entry_id, runner)
        if self._stop.is_set():
            self.stop()
        # A revocation signed between the check and now still ends it.
        current = self.access.get(entry_id)
        if current is None or current.revoked:
            self._end_live(entry_id)
        if session_window is not None:
            session_window.start()
        try:
            ended = await runner.run()
        finally:
            self.live = None
            if session_window is not None:
                await asyncio.to_thread(session_window.close)
        self.local_log.ended(grant.support_session_id, reason=ended.reason,
                             ended_by=ended.ended_by, detail=ended.detail)  # fmt: skip
        show_report(self.console, runner, log)
        self.say("Session over; waiting for unattended sessions again.")
