"""The technician's side of an attached support session (``/ws/technician``).

``TechnicianSession`` attaches with ``tech.attach``, follows the session's state, and when the
agent starts the E2E handshake (``e2e.hello``) it verifies the grant against the pinned server key
before its own key is used at all, answers ``e2e.accept`` and checks ``e2e.confirm``. From then on
chat and terminal travel as sealed binary frames that the server relays without reading.

Any E2E failure (or a grant that does not verify) ends the support session with
``protocol_error`` and the error's code: a channel that has seen one bad frame is not trusted.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from auxilio.client.api import ApiClient, ApiError, websocket_url
from auxilio.client.files import FileTransfers
from auxilio.client.output import SessionOutput
from auxilio.client.tools import ToolError, ToolRequests
from auxilio.crypto.e2e import E2ESession
from auxilio.crypto.errors import CryptoError, GrantError
from auxilio.crypto.grants import Grant, read_grant
from auxilio.crypto.handshake import Handshake, TechnicianPending
from auxilio.crypto.keys import b64url_encode, encode_public_key
from auxilio.protocol.app import (
    CHANNEL_OF,
    AppMessage,
    ChatMessage,
    TerminalExit,
    TerminalInput,
    TerminalOpen,
    TerminalOutput,
    TerminalResize,
    decode_app_message,
    encode_app_message,
)
from auxilio.protocol.binary import MAX_BINARY_FRAME_BYTES, ChannelId
from auxilio.protocol.errors import ProtocolError
from auxilio.protocol.frames import (
    CapabilityRevoke,
    E2EConfirm,
    E2EHello,
    EndReason,
    ErrorMessage,
    Party,
    SessionEnd,
    SessionExtendDecision,
    SessionExtendRequest,
    SessionStateMessage,
    SessionWarning,
    TechAttach,
    encode_message,
    parse_message,
)
from auxilio.protocol.types import SignedDocument

TERMINAL_ID = 1
EXIT_OK, EXIT_FAILED, EXIT_REFUSED, EXIT_PROTOCOL = 0, 1, 3, 4
# Errors after which the attach cannot succeed: the server closes the socket right after them.
_FATAL_ERRORS = {"auth.invalid_token", "session.not_yours", "session.not_found"}
_REFUSED_STATES = {"denied", "rejected", "expired"}
# Time the server gets to confirm our own ``session.end`` before we stop waiting for it.
END_CONFIRM_SECONDS = 10.0
RECEIVED_TAIL = 1_000_000
_TOOL_CHANNELS = {ChannelId.FILES, ChannelId.DIAGNOSTICS, ChannelId.RUNBOOKS}


def _message_id() -> str:
    return b64url_encode(os.urandom(9))


@dataclass(frozen=True, slots=True)
class Outcome:
    exit_code: int
    ended_by: str = ""
    reason: str = ""
    detail: str = ""


class SessionFailed(Exception):
    """The technician side must stop; ``code`` goes into ``session.end`` as the detail."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def verify_session_grant(
    server_key: Ed25519PublicKey,
    signed: SignedDocument,
    *,
    support_session_id: str,
    technician_key: X25519PrivateKey,
) -> Grant:
    """The technician's check of a grant: signed by the pinned server key, for this support
    session, naming our own ephemeral key. Only then may the grant's device key be trusted."""
    grant = read_grant(server_key, signed)
    if grant.support_session_id != support_session_id:
        raise SessionFailed("grant.malformed", "the grant is for another support session")
    if grant.technician_e2e_key != encode_public_key(technician_key.public_key()):
        raise SessionFailed("grant.malformed", "the grant names another technician key")
    return grant


class TechnicianSession:
    def __init__(
        self,
        *,
        api: ApiClient,
        token: str,
        support_session_id: str,
        technician_key: X25519PrivateKey,
        server_key: Ed25519PublicKey,
        output: SessionOutput,
        on_attached: Callable[[], None] | None = None,
    ) -> None:
        self.api = api
        self.support_session_id = support_session_id
        self.output = output
        self._token = token
        self._technician_key = technician_key
        self._server_key = server_key
        self._ws: ClientConnection | None = None
        self._pending: TechnicianPending | None = None
        self._e2e: E2ESession | None = None
        self._send_lock = asyncio.Lock()
        self.ready = asyncio.Event()
        self.ended = asyncio.Event()
        self.outcome: Outcome | None = None
        self.granted: tuple[str, ...] = ()
        # capability -> (who revoked it, when): so /term can say so instead of "not granted".
        self.revoked: dict[str, tuple[str, datetime]] = {}
        self.terminal_open = False
        # Called once the server confirms the attach: the join code is shown only then, since
        # the server refuses a join while the technician is not attached.
        self._on_attached = on_attached
        # Active at some point: only such a session has anything to summarise.
        self.was_active = False
        # Everything received as text, for ``expect``; trimmed so it cannot grow without bound.
        self.received_text = ""
        self.received_total = 0  # characters ever received; received_text holds the tail
        self.received = asyncio.Event()
        self.last_terminal_output = 0.0
        self.grant: Grant | None = None
        # Files, diagnostics and runbooks (client/steps.py). Ids start at random: a late answer
        # to an earlier attach's request is then not taken for one of this attach's.
        self._request_ids = itertools.count(secrets.randbelow(2**31) + 1)
        self.stated_reason = ""  # for the next files/diagnostics/runbook request, used once
        self.files = FileTransfers(send=self.send_app_message, new_id=self._new_request_id)
        self.tools = ToolRequests(
            send=self.send_app_message, new_id=self._new_request_id, api=api,
            server_key=server_key, support_session_id=support_session_id, grant=lambda: self.grant,
        )  # fmt: skip

    # -- sending ----------------------------------------------------------------------------

    async def _send_text(self, message: Any) -> None:
        assert self._ws is not None  # noqa: S101 -- only called while attached
        await self._ws.send(encode_message(message))

    async def _send_app(self, channel: ChannelId, payload: bytes) -> None:
        if self._e2e is None or self._ws is None:
            raise SessionFailed("session.not_ready", "the end-to-end channel is not open yet")
        # Seal and send under one lock: counters must reach the wire in the order they were used.
        async with self._send_lock:
            await self._ws.send(self._e2e.seal(channel, payload))

    def _new_request_id(self) -> int:
        return next(self._request_ids) % 2**32

    async def send_app_message(self, message: AppMessage) -> None:
        """Seal one files/diagnostics/runbook message on its own channel; a channel that is not
        open is that request's failure (``ToolError``), not the session's."""
        try:
            await self._send_app(CHANNEL_OF[type(message)], encode_app_message(message))
        except SessionFailed as exc:
            raise ToolError(exc.code, str(exc)) from exc

    async def send_chat(self, text: str) -> None:
        message = ChatMessage(text=text, sent_at=datetime.now(UTC))
        await self._send_app(ChannelId.CHAT, encode_app_message(message))

    async def open_terminal(self, cols: int, rows: int) -> None:
        if "terminal" not in self.granted:
            raise SessionFailed("capability.not_granted", "the terminal was not granted")
        message = TerminalOpen(terminal_id=TERMINAL_ID, cols=cols, rows=rows)
        await self._send_app(ChannelId.TERMINAL, encode_app_message(message))
        self.terminal_open = True

    async def resize_terminal(self, cols: int, rows: int) -> None:
        if self.terminal_open:
            message = TerminalResize(terminal_id=TERMINAL_ID, cols=cols, rows=rows)
            await self._send_app(ChannelId.TERMINAL, encode_app_message(message))

    async def terminal_input(self, data: bytes) -> None:
        message = TerminalInput(terminal_id=TERMINAL_ID, data=data)
        await self._send_app(ChannelId.TERMINAL, encode_app_message(message))

    async def request_extension(self, minutes: int, reason: str) -> None:
        """Ask for a longer session; the policy, an approver where it says so, and then the
        person on the device decide (each step is printed as a ``state<`` line)."""
        await self._send_text(
            SessionExtendRequest(
                id=_message_id(),
                support_session_id=self.support_session_id,
                requested_seconds=minutes * 60,
                reason=reason,
            )
        )

    async def end(
        self, reason: EndReason = EndReason.TECHNICIAN_ENDED, detail: str = "", *, wait: bool = True
    ) -> None:
        """Ask the server to end the session; with ``wait``, for its confirmation (bounded).

        The read loop calls this with ``wait=False``: it is the one that would read the
        confirmation, and after a protocol error there is nothing more to learn from the peer.
        """
        if self.ended.is_set() or self._ws is None:
            return
        end = SessionEnd(
            id=_message_id(),
            support_session_id=self.support_session_id,
            ended_by=Party.TECHNICIAN,
            reason=reason,
            detail=detail,
        )
        with contextlib.suppress(ConnectionClosed):
            await self._send_text(end)
        if wait:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.ended.wait(), END_CONFIRM_SECONDS)
        if not self.ended.is_set():
            code = EXIT_PROTOCOL if reason is EndReason.PROTOCOL_ERROR else EXIT_OK
            self._finish(Outcome(code, Party.TECHNICIAN.value, reason.value, detail))

    # -- receiving --------------------------------------------------------------------------

    async def run(self, driver: Any) -> Outcome:
        """Attach, then run ``driver(self)`` once the E2E channel is up; return how it ended.

        ``driver`` is a coroutine function: the scripted runner or the interactive loop.
        """
        url = websocket_url(self.api.server, "/ws/technician")
        # No permessage-deflate: E2E ciphertext does not compress, and a relay that negotiated it
        # would inflate and deflate every frame (see docs/adr/0003-relay-websocket-stack.md).
        async with connect(
            url, max_size=MAX_BINARY_FRAME_BYTES, open_timeout=10, compression=None
        ) as ws:
            self._ws = ws
            await self._send_text(
                TechAttach(
                    id=_message_id(), support_session_id=self.support_session_id, token=self._token
                )
            )
            reader = asyncio.create_task(self._read_loop())
            driving: asyncio.Task[None] | None = None
            try:
                ready = asyncio.create_task(self.ready.wait())
                await asyncio.wait({ready, reader}, return_when=asyncio.FIRST_COMPLETED)
                ready.cancel()
                if self.ready.is_set() and not reader.done():
                    driving = asyncio.create_task(driver(self))
                    await asyncio.wait({driving, reader}, return_when=asyncio.FIRST_COMPLETED)
                    if driving.done() and not reader.done():
                        driving.result()  # re-raise a driver failure here
                        # The script is done: stay until the session ends, from either side.
                        ended = asyncio.create_task(self.ended.wait())
                        await asyncio.wait({ended, reader}, return_when=asyncio.FIRST_COMPLETED)
                        ended.cancel()
                else:
                    await reader
            except SessionFailed as exc:
                await self._fail(exc)
            finally:
                for task in (driving, reader):
                    if task is not None and not task.done():
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await task
        return self.outcome or Outcome(EXIT_FAILED, reason="connection_lost")

    async def _fail(self, exc: SessionFailed) -> None:
        self.output.error(f"{exc.code}: {exc}")
        await self.end(EndReason.PROTOCOL_ERROR, exc.code, wait=False)
        self._finish(Outcome(EXIT_PROTOCOL, Party.TECHNICIAN.value, "protocol_error", exc.code))

    def mark_failed(self, reason: str) -> None:
        """The driver could not do its job (a script's ``expect`` failed): exit non-zero."""
        self.outcome = None
        self._finish(Outcome(EXIT_FAILED, Party.TECHNICIAN.value, reason))

    def _finish(self, outcome: Outcome) -> None:
        if self.outcome is None or self.outcome.exit_code == EXIT_OK:
            self.outcome = outcome
        self.ended.set()
        for requests in (self.files, self.tools):
            requests.abort("session.ended", "the session ended before the device answered")

    async def _read_loop(self) -> None:
        assert self._ws is not None  # noqa: S101 -- set by run()
        try:
            async for data in self._ws:
                try:
                    if isinstance(data, bytes):
                        self._on_frame(data)
                    else:
                        await self._on_text(data)
                except SessionFailed as exc:
                    await self._fail(exc)
                if self.ended.is_set():
                    return
        except ConnectionClosed:
            pass
        if not self.ended.is_set():
            self.output.error(
                "the connection to the server was lost; attach again with: "
                f"auxilio connect {self.support_session_id}"
            )
            self._finish(Outcome(EXIT_FAILED, reason="connection_lost"))

    async def _on_text(self, data: str) -> None:
        try:
            message = parse_message(data)
        except ProtocolError as exc:
            self.output.error(f"{exc.code}: {exc.message}")
            return
        match message:
            case SessionStateMessage():
                self._on_state(message)
            case E2EHello():
                await self._on_hello(message)
            case E2EConfirm():
                self._on_confirm(message)
            case SessionEnd():
                self.output.flush_term()
                detail = f" detail={message.detail}" if message.detail else ""
                self.output.state(
                    f"ended ended_by={message.ended_by} reason={message.reason}{detail}"
                )
                refused = message.reason in (EndReason.CONSENT_REFUSED, EndReason.CONSENT_TIMED_OUT)
                protocol = message.reason is EndReason.PROTOCOL_ERROR
                code = EXIT_REFUSED if refused else EXIT_PROTOCOL if protocol else EXIT_OK
                self._finish(Outcome(code, message.ended_by, message.reason, message.detail))
            case SessionWarning():
                self.output.state(f"warning remaining_seconds={message.remaining_seconds}")
            case CapabilityRevoke():
                self.granted = tuple(c for c in self.granted if c != message.capability)
                self.revoked[str(message.capability)] = (str(message.revoked_by), datetime.now(UTC))
                self.output.state(f"revoked {message.capability} by={message.revoked_by}")
            case SessionExtendDecision():
                verdict = "approved" if message.approved else "refused"
                until = f" not_after={message.new_not_after}" if message.new_not_after else ""
                by = f" by={message.decided_by}"
                self.output.state(f"extension {verdict}{by}{until} {message.reason}".rstrip())
            case ErrorMessage():
                self.output.error(f"{message.code}: {message.message}")
                if message.code in _FATAL_ERRORS:
                    self._finish(Outcome(EXIT_FAILED, reason=message.code))
            case _:
                self.output.error(f"unexpected {message.type} on the technician socket")

    def _on_state(self, message: SessionStateMessage) -> None:
        if message.reason == "attached" and self._on_attached is not None:
            announce, self._on_attached = self._on_attached, None
            announce()
        if message.state == "active":
            self.was_active = True
        self.granted = tuple(str(c) for c in message.granted)
        parts = [str(message.state)]
        if message.granted:
            parts.append("granted=" + ",".join(self.granted))
        if message.not_after:
            parts.append(f"not_after={message.not_after.isoformat()}")
        if message.reason:
            parts.append(f"reason={message.reason}")
        self.output.state(" ".join(parts))
        if message.state in _REFUSED_STATES:
            self._finish(Outcome(EXIT_REFUSED, "end_user", message.reason or message.state))

    async def _fetch_grant(self) -> SignedDocument:
        try:
            details = await self.api.get_support_session(self.support_session_id)
        except ApiError as exc:
            raise SessionFailed("grant.unavailable", f"cannot fetch the grant: {exc}") from exc
        raw = details.get("grant") if isinstance(details, dict) else None
        if raw is None:
            raise SessionFailed("grant.unavailable", "the server gave no grant for this session")
        try:
            return SignedDocument.model_validate(raw)
        except ValidationError as exc:
            raise SessionFailed("grant.malformed", "the grant is not a signed document") from exc

    async def _on_hello(self, hello: E2EHello) -> None:
        signed = await self._fetch_grant()
        try:
            # The grant is checked before our key touches the agent's: a grant from anyone but
            # the pinned server could name a device key that is not the person's.
            grant = verify_session_grant(
                self._server_key,
                signed,
                support_session_id=self.support_session_id,
                technician_key=self._technician_key,
            )
            pending = Handshake.technician_accept(
                hello, technician_key=self._technician_key, grant=grant
            )
        except (GrantError, CryptoError) as exc:
            raise SessionFailed(exc.code, str(exc)) from exc
        self._pending = pending
        self._e2e = None
        self.ready.clear()
        self.grant = grant
        for requests in (self.files, self.tools):
            # A new handshake is a new agent connection: what it was doing is gone.
            requests.abort("session.reconnected", "the device reconnected; run the step again")
        self.output.state(f"handshake device={grant.device_id}")
        await self._send_text(pending.accept)

    def _on_confirm(self, confirm: E2EConfirm) -> None:
        if self._pending is None:
            raise SessionFailed("e2e.handshake_failed", "e2e.confirm without a handshake")
        try:
            self._e2e = self._pending.complete(confirm)
        except CryptoError as exc:
            raise SessionFailed(exc.code, str(exc)) from exc
        self._pending = None
        self.output.state("secure end-to-end channel established")
        self.ready.set()

    def _on_frame(self, frame: bytes) -> None:
        if self._e2e is None:
            raise SessionFailed("e2e.handshake_failed", "a binary frame before the handshake")
        try:
            channel, plaintext = self._e2e.open(frame)
            message = decode_app_message(plaintext)
        except CryptoError as exc:
            raise SessionFailed(exc.code, str(exc)) from exc
        except ProtocolError as exc:
            raise SessionFailed(str(exc.code), exc.message) from exc
        if CHANNEL_OF[type(message)] in _TOOL_CHANNELS:
            self._on_tool_message(channel, message)
            return
        match message:
            case ChatMessage():
                self._note_received(message.text)
                self.output.chat(message.text)
            case TerminalOutput():
                self.last_terminal_output = asyncio.get_running_loop().time()
                self._note_received(message.data.decode("utf-8", errors="replace"))
                self.output.term(message.data)
            case TerminalExit():
                self.terminal_open = False
                self.output.flush_term()
                self.output.state(f"terminal exited code={message.exit_code}")
            case _:
                self.output.error(f"unexpected {message.type} from the agent")

    def _on_tool_message(self, channel: ChannelId, message: AppMessage) -> None:
        """Files, diagnostics and runbook answers go to the request waiting for them."""
        if channel != CHANNEL_OF[type(message)]:
            self.output.error(f"{message.type} on the wrong channel ({channel.name}); ignored")
        elif not (self.files.receive(message) or self.tools.receive(message)):
            code = getattr(message, "code", "")
            what = f"{code}: {getattr(message, 'message', '')}" if code else message.type
            self.output.error(f"{what} (no request of ours is waiting for it)")

    def _note_received(self, text: str) -> None:
        self.received_total += len(text)
        self.received_text = (self.received_text + text)[-RECEIVED_TAIL:]
        self.received.set()
