"""The support session loop, after consent: E2E, capabilities, time limit, end.

One asyncio task consumes one queue of events (messages from the server, lines from the person,
terminal output, the clock), so no two handlers ever race on the session's state. Files,
diagnostics and runbooks work in their handlers' own tasks (``dispatch``), so that this loop stays
free to take the person's answers to the questions they ask (``questions``, one at a time).

The agent enforces the session itself (docs/support-sessions.md §3): a capability is used only
while it is granted by BOTH the verified grant (and still live there) and the person's own receipt,
is not revoked, and the session is active. Nothing the server or the technician sends changes
that set, except a newly signed grant that can only extend time, and revocations that shrink it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import ValidationError

from auxilio.agent.capabilities import chat
from auxilio.agent.capabilities.terminal import TerminalHost
from auxilio.agent.channel import E2EChannel
from auxilio.agent.connection import ConnectionLost, Link, new_id
from auxilio.agent.consent import Clock, clock_text, utc_now
from auxilio.agent.dispatch import (
    HIGH_WATER,
    LOW_WATER,
    AppDispatcher,
    HandlerFactory,
    PausableHandler,
    default_handlers,
)
from auxilio.agent.errors import AgentError
from auxilio.agent.feed import Feed
from auxilio.agent.questions import Extensions, Questions
from auxilio.agent.report import build_report, differences, mismatch_message
from auxilio.agent.sealing import recording_key_message
from auxilio.agent.state import ActivityLog
from auxilio.agent.survey import read_invite, show_invite
from auxilio.agent.userinput import Line, LineInput, Signal
from auxilio.crypto.errors import E2EError, SignatureInvalid
from auxilio.crypto.grants import Grant
from auxilio.crypto.receipts import ConsentReceipt
from auxilio.crypto.signing import DocumentKind, verify_document
from auxilio.protocol.app import CHANNEL_OF, TerminalOutput
from auxilio.protocol.errors import ProtocolError, ProtocolErrorCode
from auxilio.protocol.frames import (
    CapabilityRevoke,
    ControlMessage,
    E2EAccept,
    EndReason,
    ErrorMessage,
    Party,
    SessionEnd,
    SessionExtendDecision,
    SessionReportMessage,
    SessionStateMessage,
    SessionSurveyMessage,
    SessionWarning,
)
from auxilio.protocol.report import SessionReport
from auxilio.protocol.states import SupportSessionState
from auxilio.protocol.survey import SurveyInvite
from auxilio.protocol.types import Capability, ConsentDecision

TICK_SECONDS = 1.0
STATUS_EVERY_SECONDS = 60.0
# All refused: the server ends the session; if it does not say so, stop waiting after this.
NOTHING_GRANTED_WAIT_SECONDS = 10.0
MAX_TERMINALS = 4
# A little longer than the server keeps the connection open for the summary (120 s).
REPORT_WAIT_SECONDS = 150.0
FIRST_REPORT_SECONDS = 10.0
_FINAL_STATES = {
    SupportSessionState.ENDED, SupportSessionState.REJECTED, SupportSessionState.EXPIRED,
    SupportSessionState.DENIED,
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Ended:
    ended_by: str
    reason: str
    detail: str


class SupportSessionRunner:
    def __init__(
        self,
        *,
        link: Link,
        feed: Feed,
        lines: LineInput,
        log: ActivityLog,
        device_key: Ed25519PrivateKey,
        server_key: Ed25519PublicKey,
        grant: Grant,
        receipt: ConsentReceipt,
        clock: Clock = utc_now,
        first_report_seconds: float = FIRST_REPORT_SECONDS,
        report_wait_seconds: float = REPORT_WAIT_SECONDS,
        server_url: str | None = None,
        handlers: Mapping[Capability, HandlerFactory] | None = None,
    ) -> None:
        """``server_url``: where diagnostics check the way to the server. ``handlers``: the
        files, diagnostics and runbooks handlers (the real ones when None)."""
        self._link = link
        self._feed = feed
        self._lines = lines
        self._log = log
        self._device_key = device_key
        self._server_key = server_key
        self.server_url = server_url
        self.grant = grant
        self._consented = receipt.granted()
        self._all_timed_out = all(
            item.decision is ConsentDecision.TIMED_OUT for item in receipt.decisions
        )
        self._clock = clock
        self._revoked: set[Capability] = set()
        self.active = False
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        # Messages read from the connection and not yet taken by the loop (flow control).
        self._unread = 0
        self._room = asyncio.Event()
        self._room.set()
        self._channel = E2EChannel(link, device_key=device_key)
        self.terminals = TerminalHost(
            on_output=lambda tid, data: self._queue.put_nowait(("output", (tid, data))),
            on_exit=lambda tid, exited: self._queue.put_nowait(("exit", (tid, exited))),
            on_command=lambda command: self._queue.put_nowait(("command", command)),
            max_terminals=MAX_TERMINALS,
        )
        self.questions = Questions(feed=feed, log=log)
        self._extensions = Extensions(
            questions=self.questions, feed=feed, log=log, device_key=device_key,
            server_key=server_key, clock=clock, send=self._send_control,
            answered=lambda new, decision: self._queue.put_nowait(("extension", (new, decision))),
        )  # fmt: skip
        if handlers is None:
            handlers = default_handlers(server_key=server_key, server_url=server_url)
        self._apps = AppDispatcher(
            gate=self.allowed,
            grant=lambda: self.grant,
            channel=self._channel,
            link=link,
            terminals=self.terminals,
            feed=feed,
            log=log,
            clock=clock,
            ask=self.questions.ask,
            handlers=handlers,
            revoke_by_person=lambda capability: self._queue.put_nowait(
                ("window", ("revoke", capability))
            ),
        )
        self.ended: Ended | None = None
        # The server's one report of the session, once it arrives after the end.
        self.server_report: SessionReport | None = None
        self.survey: SurveyInvite | None = None
        self._disputed: list[str] = []  # the differences last told to the server
        self._first_report_seconds = first_report_seconds
        self._report_wait_seconds = report_wait_seconds
        self._warned = False
        self._last_status = 0.0
        self._started = clock()

    # -- the granted set ------------------------------------------------------------------------

    def allowed(self, capability: Capability) -> bool:
        """Granted in the verified grant (and live now) AND in the person's receipt, not revoked,
        in an active session. The only gate every capability passes through."""
        return (
            self.active
            and self.ended is None
            and capability in self._consented
            and capability not in self._revoked
            and self.grant.capability(capability, now=self._clock()) is not None
        )

    def granted_now(self) -> list[str]:
        return [
            str(item.capability)
            for item in self.grant.capabilities
            if self.allowed(item.capability)
        ]

    # -- the loop -------------------------------------------------------------------------------

    async def run(self) -> Ended:
        pumps = [asyncio.create_task(self._pump_link()), asyncio.create_task(self._pump_lines())]
        if not self._consented:
            self._feed.info("You allowed nothing; waiting for the server to close the request.")
        try:
            while self.ended is None:
                try:
                    kind, value = await self._take(TICK_SECONDS)
                except TimeoutError:
                    kind, value = "tick", None
                await self._handle(kind, value)
                if kind == "lost":
                    pumps[0] = asyncio.create_task(self._pump_link())
            await self._apps.close_all()
            if self.active and self.ended.reason != EndReason.CONNECTION_LOST:
                await self._await_report()
        finally:
            for pump in pumps:
                pump.cancel()
            self.questions.close()
            await self._apps.close_all()
            await self.terminals.stop_all()
            await self._link.close()
        return self.ended

    async def _await_report(self) -> None:
        """After the end the server sends the one session report, and again once the technician
        has written the summary; wait for that (bounded; any line typed stops the wait)."""
        loop = asyncio.get_running_loop()
        # The first report follows the end at once; only a summary still to come is waited for.
        deadline = loop.time() + self._first_report_seconds
        told = False
        while (left := deadline - loop.time()) > 0:
            try:
                kind, value = await self._take(left)
            except TimeoutError:
                return
            if kind in ("line", "lost"):
                return
            if kind == "net" and isinstance(value, SessionSurveyMessage):
                invite = read_invite(self._server_key, value, log=self._log,
                                     support_session_id=self.grant.support_session_id)
                if invite is not None:
                    self.survey = invite
                    show_invite(self._feed, invite, self.server_url)
                continue
            if kind != "net" or not isinstance(value, SessionReportMessage):
                continue
            if value.support_session_id != self.grant.support_session_id:
                continue
            try:
                payload = verify_document(self._server_key, value.report,
                                          kind=DocumentKind.SESSION_REPORT)  # fmt: skip
                report = SessionReport.model_validate(payload)
            except (SignatureInvalid, ValidationError):
                # Not the server's word: never shown; the device's own log is.
                self._log.append("report_refused", reason="not signed by the pinned server key")
                continue
            if report.support_session_id != self.grant.support_session_id:
                continue
            self.server_report = report
            await self._dispute_report()
            if report.summary_state != "pending":
                return
            if not told:
                told = True
                deadline = loop.time() + self._report_wait_seconds
                self._feed.info(
                    "Waiting for the technician's summary for your report "
                    f"(up to {int(REPORT_WAIT_SECONDS // 60)} minutes; press Enter to stop)."
                )

    async def _dispute_report(self) -> None:
        """Tell the server where its report disagrees with this device's own log (audited as
        support_session:report:mismatch); the person is told in any case (agent/report.py)."""
        if self.server_report is None:
            return
        found = differences(build_report(self._log.events()), self.server_report)
        if found and found != self._disputed:
            self._disputed = found
            self._log.append("report_disputed", differences=found)
            with contextlib.suppress(ConnectionLost):
                await self._link.send(mismatch_message(self.grant.support_session_id, found))

    async def _take(self, seconds: float) -> tuple[str, Any]:
        """The next event, within ``seconds`` (``TimeoutError``); counts what was read."""
        kind, value = await asyncio.wait_for(self._queue.get(), seconds)
        if kind == "net":
            self._unread -= 1
            if self._unread <= LOW_WATER:
                self._room.set()
        return kind, value

    async def _pump_link(self) -> None:
        while True:
            # Read no further while the loop, or a handler (a disk slower than the network),
            # is behind: the socket then slows the sender, not the device's memory.
            await self._room.wait()
            await self._apps.flowing.wait()
            try:
                item = await self._link.receive()
            except ProtocolError as exc:
                await self._queue.put(("bad", exc))
                continue
            except ConnectionLost as exc:
                await self._queue.put(("lost", exc))
                return
            self._unread += 1
            if self._unread >= HIGH_WATER:
                self._room.clear()
            await self._queue.put(("net", item))

    async def _pump_lines(self) -> None:
        while True:
            line = await self._lines.get()
            await self._queue.put(("line", line))
            if line is Signal.EOF:
                return

    async def _handle(self, kind: str, value: Any) -> None:
        if kind == "net":
            if isinstance(value, bytes):
                await self._on_frame(value)
            else:
                await self._on_control(value)
        elif kind == "line":
            await self._on_line(value)
        elif kind == "output":
            terminal_id, data = value
            await self._channel.send(TerminalOutput(terminal_id=terminal_id, data=data))
        elif kind == "exit":
            await self._apps.terminal_exited(*value)
        elif kind == "command":
            await self._apps.command_observed(value)
        elif kind == "bad":
            if value.code is ProtocolErrorCode.UNKNOWN_TYPE:
                self._log.append("ignored", what=value.message)  # a newer server; not fatal
            else:
                await self._fail(value.code, f"the server sent an invalid message: {value}")
        elif kind == "lost":
            await self._on_lost()
        elif kind == "window":
            await self._on_window(*value)
        elif kind == "extension":
            new, decision = value
            if await self._extensions.answer(new, decision, self.grant):
                self.grant, self._warned = new, False
        await self._on_tick()

    # -- control messages -----------------------------------------------------------------------

    async def _on_control(self, message: ControlMessage) -> None:
        if isinstance(message, SessionEnd):
            self._finish(message.ended_by, message.reason, message.detail)
        elif isinstance(message, SessionStateMessage):
            await self._on_state(message)
        elif isinstance(message, E2EAccept):
            await self._on_accept(message)
        elif isinstance(message, SessionWarning):
            self._feed.warning(
                self._feed.texts.feed_ends_in.format(
                    minutes=message.remaining_seconds // 60,
                    seconds=message.remaining_seconds % 60,
                    end=clock_text(message.ends_at),
                )
            )
            self._warned = True
        elif isinstance(message, SessionExtendDecision):
            self._extensions.received(message, self.grant)
        elif isinstance(message, CapabilityRevoke):
            if message.support_session_id == self.grant.support_session_id:
                await self._revoke(message.capability, by=str(message.revoked_by), tell=False)
        elif isinstance(message, ErrorMessage):
            self._feed.alert(f"Server error {message.code}: {message.message}")
            self._log.append("server_error", code=message.code, message=message.message)

    async def _on_state(self, message: SessionStateMessage) -> None:
        if message.support_session_id != self.grant.support_session_id:
            return
        if message.state in _FINAL_STATES:
            self._finish(Party.SERVER, message.reason or str(message.state), "")
            return
        if message.state is not SupportSessionState.ACTIVE:
            return
        if not self.active:
            self.active = True
            granted = self.granted_now()
            self._log.append("activated", granted=granted)
            allowed = ", ".join(granted) or self._feed.texts.nothing
            self._feed.activity(self._feed.texts.feed_active.format(allowed=allowed))
            self._feed.info(self._feed.texts.help)
            self._status(force=True)
        if message.reason == "technician_lost":
            self._on_technician_lost(message.wait_seconds)
            await self._stop_screen_for_nobody()
        elif message.reason == "technician_back":
            self._log.append("technician_back")
            self._feed.activity(
                self._feed.texts.feed_technician_back.format(technician=self.grant.technician_name)
            )
        if message.reason == "technician_ready":
            await self._start_handshake()

    def _on_technician_lost(self, wait_seconds: int | None) -> None:
        # Said at once: what the person writes now reaches nobody, and they may not want to
        # wait. The server ends the session (technician_lost) if nobody comes back in time.
        self._log.append("technician_lost", wait_seconds=wait_seconds)
        texts = self._feed.texts
        wait = (
            texts.feed_wait_unknown
            if wait_seconds is None
            else texts.feed_wait_seconds.format(seconds=wait_seconds)
        )
        self._feed.warning(texts.feed_technician_lost.format(wait=wait))

    async def _stop_screen_for_nobody(self) -> None:
        """No frames to a technician who is gone: they would reach a console coming back before
        its new handshake (capabilities.screen)."""
        handler = self._apps.handler(Capability.SCREEN)
        if isinstance(handler, PausableHandler):
            await handler.viewer_gone()

    async def _start_handshake(self) -> None:
        # A technician (re)attached: new ephemeral keys; terminals and the screen stream of the
        # old channel are closed because nobody can read them any more.
        await self.terminals.stop_all()
        await self._stop_screen_for_nobody()
        await self._channel.start(self.grant)

    async def _on_accept(self, message: E2EAccept) -> None:
        try:
            done = await self._channel.accept(message)
        except E2EError as exc:
            await self._fail(exc.code, f"the encrypted channel could not be set up: {exc}")
            return
        if not done:
            self._log.append("ignored", what="e2e.accept without e2e.hello")
            return
        await self._send_recording_key()
        self._feed.activity(
            self._feed.texts.feed_channel_open.format(
                technician=self.grant.technician_name, key=self.grant.technician_key_fingerprint
            )
        )

    async def _send_recording_key(self) -> None:
        """A recorded session: this epoch's keys, sealed to the grant's auditor key, so the
        auditor (and only the auditor) can open the relay's recording of it."""
        keys = self._channel.keys
        message = recording_key_message(self.grant, keys) if keys is not None else None
        if message is not None:
            await self._send_control(message)
            self._log.append("recording_key_sent", epoch=message.epoch)

    # -- E2E frames ----------------------------------------------------------------------------

    async def _on_frame(self, frame: bytes) -> None:
        try:
            opened = self._channel.open(frame)
        except E2EError as exc:
            await self._fail(exc.code, f"an encrypted frame was rejected ({exc})")
            return
        except ProtocolError as exc:
            await self._fail(exc.code, f"the technician sent an invalid message ({exc})")
            return
        if opened is None:
            self._log.append("ignored", what="binary frame before the encrypted channel")
            return
        channel, message = opened
        if CHANNEL_OF[type(message)] is not channel:
            self._log.append("ignored", what=f"{message.type} on channel {channel.name}")
            return
        await self._apps.handle(message)

    # -- the person -----------------------------------------------------------------------------

    def post(self, kind: str, value: Any) -> None:
        """An event from the session window (``end``, ``revoke``, ``question``, ``screen_pause``),
        or ``stop`` with ``(Party, EndReason, detail)`` from the unattended service (the owner
        revoked the pre-authorisation the session runs on; the service is stopping).
        Not thread-safe by itself: the window's thread reaches it through
        ``loop.call_soon_threadsafe``."""
        self._queue.put_nowait(("window", (kind, value)))

    async def _on_window(self, kind: str, value: Any) -> None:
        # The same checks as the typed commands: the window decides nothing itself.
        if kind == "end":
            await self._end(Party.END_USER, EndReason.USER_ENDED, "")
        elif kind == "revoke" and isinstance(value, Capability):
            await self._revoke(value, by=str(Party.END_USER), tell=True)
        elif kind == "screen_pause":
            await self._toggle_screen_pause()
        elif kind == "stop" and isinstance(value, tuple) and len(value) == 3:
            ended_by, reason, detail = value
            if isinstance(ended_by, Party) and isinstance(reason, EndReason):
                await self._end(ended_by, reason, str(detail))
        elif kind == "question" and isinstance(value, tuple) and len(value) == 2:
            number, decision = value
            if decision in {ConsentDecision.GRANTED, ConsentDecision.REFUSED}:
                self.questions.answer(number, decision)
        else:
            self._log.append("ignored", what=f"window event {kind}")

    async def _on_line(self, line: Line) -> None:
        if line is Signal.EOF:
            return
        if line is Signal.INTERRUPT or line.strip().lower() in {"q", "quit"}:
            await self._end(Party.END_USER, EndReason.USER_ENDED, "")
            return
        words = line.split()
        if not words:
            return
        if self.questions.answer_typed(line):
            return
        if words[0].lower() == "r" and len(words) == 2:
            try:
                capability = Capability(words[1].lower())
            except ValueError:
                self._feed.info(f"Unknown capability {words[1]!r}.")
                return
            await self._revoke(capability, by=str(Party.END_USER), tell=True)
        elif words[0].lower() in {"s", "status"} and len(words) == 1:
            self._status(force=True)
        elif words[0].lower() in {"p", "pause"} and len(words) == 1 and self._screen_shown():
            await self._toggle_screen_pause()
        elif words[0] in {"h", "?", "help"} and len(words) == 1:
            self._feed.info(self._feed.texts.help)
        elif self.allowed(Capability.CHAT) and self._channel.ready:
            # The first use is reported before the message it counts: on the one connection
            # the server has it before the technician can read "thanks" and end the session.
            await self._apps.mark_used(Capability.CHAT)
            for message in chat.outgoing(line, now=self._clock()):
                await self._channel.send(message)
            self._feed.chat("You", line)
        else:
            self._feed.info("Chat is not available now. " + self._feed.texts.help)

    def _screen_shown(self) -> bool:
        return self._apps.handler(Capability.SCREEN) is not None

    async def _toggle_screen_pause(self) -> None:
        """The person's 'p': pause the screen view, or resume it (capabilities.screen)."""
        handler = self._apps.handler(Capability.SCREEN)
        if isinstance(handler, PausableHandler):
            await handler.set_paused(not handler.paused)

    async def _revoke(self, capability: Capability, *, by: str, tell: bool) -> None:
        if capability in self._revoked:
            return
        was_allowed = self.allowed(capability)
        self._revoked.add(capability)
        if capability is Capability.TERMINAL:
            await self.terminals.stop_all()
        await self._apps.close_capability(capability)
        if capability is Capability.SCREEN:  # control acts only on a screen being viewed
            await self._apps.close_capability(Capability.INPUT)
        self._log.append("revoked", capability=str(capability), by=by)
        self._feed.warning(self._feed.texts.feed_revoked.format(capability=capability, by=by))
        if tell and was_allowed:
            await self._send_control(
                CapabilityRevoke(
                    id=new_id(),
                    support_session_id=self.grant.support_session_id,
                    capability=capability,
                    revoked_by=Party.END_USER,
                    reason="revoked by the person on the device",
                )
            )

    # -- time, connection, end ------------------------------------------------------------------

    async def _on_tick(self) -> None:
        if self.ended is not None:
            return
        now = self._clock()
        if now >= self.grant.not_after:
            self._feed.warning(self._feed.texts.feed_time_over)
            await self._end(Party.AGENT, EndReason.TIME_LIMIT, "grant_not_after")
            return
        if (
            not self._consented
            and (now - self._started).total_seconds() > NOTHING_GRANTED_WAIT_SECONDS
        ):
            reason = (
                EndReason.CONSENT_TIMED_OUT if self._all_timed_out else EndReason.CONSENT_REFUSED
            )
            self._finish(Party.END_USER, reason, "")
            return
        if self.terminals and not self.allowed(Capability.TERMINAL):
            await self.terminals.stop_all()  # the terminal capability expired inside the grant
        await self._apps.close_unless_allowed()  # so did files, diagnostics or runbooks
        self._status()

    def _status(self, *, force: bool = False) -> None:
        if not self.active:
            return
        order = [item.capability for item in self.grant.capabilities]
        self._feed.show_state(
            technician=self.grant.technician_name,
            organisation=self.grant.organisation_name,
            consented=[name for name in order if name in self._consented],
            allowed=[name for name in order if self.allowed(name)],
            ends_at=self.grant.not_after,
        )
        loop_time = asyncio.get_running_loop().time()
        left = (self.grant.not_after - self._clock()).total_seconds()
        if force or loop_time - self._last_status >= STATUS_EVERY_SECONDS:
            self._last_status = loop_time
            self._feed.status(
                technician=self.grant.technician_name,
                granted=self.granted_now(),
                seconds_left=left,
            )

    async def _on_lost(self) -> None:
        # The technician's keys and terminals do not survive a new connection.
        await self.terminals.stop_all()
        self._channel.reset()
        try:
            await self._link.reconnect()
        except AgentError as exc:
            self._feed.alert(f"The connection to the server is lost: {exc.message}")
            self._finish(Party.AGENT, EndReason.CONNECTION_LOST, exc.code)

    async def _fail(self, code: str, message: str) -> None:
        self._feed.alert(f"Security check failed, ending the session: {message}")
        await self._end(Party.AGENT, EndReason.PROTOCOL_ERROR, code)

    async def _end(self, ended_by: Party, reason: EndReason, detail: str) -> None:
        await self._send_control(
            SessionEnd(
                id=new_id(),
                support_session_id=self.grant.support_session_id,
                ended_by=ended_by,
                reason=reason,
                detail=detail,
            )
        )
        self._finish(ended_by, reason, detail)

    async def _send_control(self, message: ControlMessage) -> None:
        try:
            await self._link.send(message)
        except ConnectionLost:
            self._log.append("dropped", what=message.type)

    def _finish(self, ended_by: str, reason: str, detail: str) -> None:
        if self.ended is None:
            self.ended = Ended(str(ended_by), str(reason), detail)
            self.questions.close()  # what is still asked answers TIMED_OUT now
            self._log.append("ended", ended_by=str(ended_by), reason=str(reason), detail=detail)
            texts = self._feed.texts
            self._feed.warning(texts.feed_ended_emergency if reason == EndReason.EMERGENCY
                               else texts.feed_ended.format(reason=reason, by=ended_by))
