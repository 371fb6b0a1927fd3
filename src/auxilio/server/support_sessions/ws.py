"""The ``/ws/agent`` and ``/ws/technician`` endpoints and what both peers share.

Each connection has an authentication phase (at most ``ws_auth_timeout_seconds``) and then a
command phase. Text frames are parsed with ``parse_message``; binary frames are relayed blind
(``relay.bridge``). A frame too large for the protocol ends the support session with
``protocol_error``; any other bad frame is answered with an ``error`` and the connection goes on.
A connection from an address (or to a node) over its rate of unauthenticated connections is
answered with ``error`` ``rate_limited`` and closed before it may authenticate.
"""

from __future__ import annotations

import math
import uuid
from typing import Any

from fastapi import FastAPI, WebSocket

from auxilio.protocol.errors import ProtocolError, ProtocolErrorCode
from auxilio.protocol.frames import ControlMessage, EndReason, Party, parse_message
from auxilio.server.context import Actor
from auxilio.server.identity.ratelimit import Limited, rate_limits
from auxilio.server.relay.bridge import relay_binary, relay_text
from auxilio.server.relay.connection import CLOSE_POLICY, Connection, QueueLimits
from auxilio.server.relay.hub import Attachment, Peer
from auxilio.server.support_sessions.runtime import SupportSessionRuntime, error_text

TOO_LARGE = str(ProtocolErrorCode.TOO_LARGE)
# The WebSocket error code of each limited kind (codes are dotted on the wire).
RATE_LIMITED = {
    Limited.JOIN: "join_code.rate_limited",
    Limited.WS_UNAUTHENTICATED: "auth.rate_limited",
}


class WireRefusal(Exception):
    """Answer the peer with an ``error`` of this code (and maybe close)."""

    def __init__(self, code: str, message: str, *, ref: str | None = None, close: bool = False):
        super().__init__(message)
        self.code = code
        self.message = message
        self.ref = ref
        self.close = close


class PeerHandler:
    """The reader of one connection; subclasses handle their peer's messages."""

    peer: Peer

    def __init__(self, runtime: SupportSessionRuntime, conn: Connection) -> None:
        self.runtime = runtime
        self.conn = conn
        self.attachment: Attachment | None = None
        self.support_session_id: uuid.UUID | None = None
        # Frames are relayed only once the session is active; the flag saves a database read
        # per frame (an end closes the connection, so it never needs to go back to False).
        self.active = False

    @property
    def sid(self) -> str:
        return str(self.support_session_id)

    async def send(self, text: str) -> None:
        await self.conn.send_text(text)

    async def refuse(self, refusal: WireRefusal) -> None:
        self.conn.log.info("refused: %s %s", refusal.code, refusal.message)
        await self.send(error_text(refusal.code, refusal.message, refusal.ref))
        if refusal.close:
            await self.conn.close(CLOSE_POLICY, refusal.code)

    async def expect(self, kind: type[Any]) -> Any:
        """The next message during authentication; it must be of ``kind``."""
        frame = await self.conn.receive()
        if frame is None:
            return None
        if isinstance(frame, bytes):
            raise WireRefusal(
                "protocol.malformed", "authenticate before sending binary frames", close=True
            )
        message = parse_message(frame)
        if not isinstance(message, kind):
            expected = kind.model_fields["type"].default
            raise WireRefusal(
                "protocol.unexpected_message",
                f"expected {expected}, got {message.type}",
                ref=message.id,
                close=True,
            )
        return message

    @property
    def client_addr(self) -> str | None:
        client = self.conn.websocket.client
        return client.host if client else None

    async def limit(self, kind: Limited, *, ref: str | None = None) -> None:
        """Refuse (and close) when this address, or the node as a whole, is over ``kind``'s
        rate: guessing join codes or tokens by opening connection after connection."""
        wait = await rate_limits(self.conn.websocket.app.state).check(kind, self.client_addr)
        if wait:
            raise WireRefusal(
                RATE_LIMITED[kind],
                f"too many attempts; retry in {math.ceil(wait)} seconds",
                ref=ref,
                close=True,
            )

    async def run(self, conn: Connection) -> None:
        try:
            try:
                await self.limit(Limited.WS_UNAUTHENTICATED)
                if not await self.authenticate():
                    return
            except WireRefusal as refusal:
                refusal.close = True
                await self.refuse(refusal)
                return
            except ProtocolError as exc:
                await self.refuse(WireRefusal(str(exc.code), exc.message, close=True))
                return
            while self.conn.is_open:
                frame = await self.conn.receive()
                if frame is None:
                    return
                try:
                    if isinstance(frame, bytes):
                        await self.on_binary(frame)
                    else:
                        await self.on_text(frame)
                except WireRefusal as refusal:
                    await self.refuse(refusal)
        finally:
            await self.detach()

    async def authenticate(self) -> bool:
        raise NotImplementedError

    async def handle(self, message: ControlMessage, raw: str) -> None:
        raise NotImplementedError

    async def detach(self) -> None:
        raise NotImplementedError

    async def refresh_active(self) -> bool:
        """Re-read the state when the flag says not active yet (activation happened elsewhere)."""
        return self.active

    async def on_text(self, raw: str) -> None:
        try:
            message = parse_message(raw)
        except ProtocolError as exc:
            if exc.code is ProtocolErrorCode.TOO_LARGE and self.support_session_id is not None:
                await self.end_for_protocol_error(TOO_LARGE)
                return
            raise WireRefusal(str(exc.code), exc.message) from exc
        await self.handle(message, raw)

    async def on_binary(self, frame: bytes) -> None:
        if self.support_session_id is None or not await self.refresh_active():
            raise WireRefusal(
                "session.not_active", "binary frames flow only in an active support session"
            )
        try:
            await relay_binary(self.runtime.hub, self.sid, self.peer, frame)
        except ProtocolError as exc:
            if exc.code is ProtocolErrorCode.TOO_LARGE:
                await self.end_for_protocol_error(TOO_LARGE)
                return
            raise WireRefusal(str(exc.code), exc.message) from exc

    async def relay_unchanged(self, raw: str, support_session_id: str, ref: str) -> None:
        """Forward an E2E handshake or revocation message exactly as received."""
        if support_session_id != self.sid or not await self.refresh_active():
            raise WireRefusal(
                "session.not_active",
                "this message needs an active support session on this connection",
                ref=ref,
            )
        await relay_text(self.runtime.hub, self.sid, self.peer, raw)

    async def end_for_protocol_error(self, detail: str) -> None:
        assert self.support_session_id is not None  # noqa: S101 -- callers check it
        ended_by = Party.AGENT if self.peer is Peer.AGENT else Party.TECHNICIAN
        self.conn.log.warning("ending support session %s: %s", self.sid, detail)
        ended = await self.runtime.end(
            self.support_session_id,
            ended_by=ended_by,
            reason=EndReason.PROTOCOL_ERROR,
            detail=detail,
            actor=self.actor(),
        )
        if ended is None:
            await self.conn.close(CLOSE_POLICY, detail)

    def actor(self) -> Actor | None:
        return None


def _limits(settings: Any) -> QueueLimits:
    return QueueLimits(
        frames=settings.relay_queue_frames,
        bytes=settings.relay_queue_bytes,
        stuck_seconds=settings.relay_stuck_seconds,
    )


def install_websockets(app: FastAPI) -> None:
    """Mount ``/ws/agent`` and ``/ws/technician`` on ``app`` (runtime set by the lifespan)."""
    from auxilio.server.support_sessions.agent_ws import AgentHandler
    from auxilio.server.support_sessions.technician_ws import TechnicianHandler

    @app.websocket("/ws/agent")
    async def agent_socket(websocket: WebSocket) -> None:
        runtime: SupportSessionRuntime = websocket.app.state.support_sessions
        conn = Connection(websocket, kind="agent", limits=_limits(runtime.settings))
        await conn.run(AgentHandler(runtime, conn).run)

    @app.websocket("/ws/technician")
    async def technician_socket(websocket: WebSocket) -> None:
        runtime: SupportSessionRuntime = websocket.app.state.support_sessions
        conn = Connection(websocket, kind="technician", limits=_limits(runtime.settings))
        await conn.run(TechnicianHandler(runtime, conn).run)
