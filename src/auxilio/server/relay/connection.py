"""One WebSocket peer: an explicit state, a bounded send queue and a single writer task.

Everything sent to a peer goes through its queue, so exactly one task ever writes to the socket
and a burst from the other peer can never buffer without limit. The queue is bounded twice,
by frames and by bytes; a sender that finds it full waits (that wait is the relay's
backpressure: the sender's own reader stops reading, so TCP pushes back on the far end). A peer
that keeps its queue full for ``stuck_seconds`` is dropped instead of stalling its sender
forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

log = logging.getLogger("auxilio.relay")

# WebSocket close codes (RFC 6455 §7.4.1): policy violation, message too big, try again later.
CLOSE_NORMAL = 1000
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_TRY_LATER = 1013


class ConnectionState(StrEnum):
    CONNECTING = "connecting"  # HTTP upgrade received, not accepted yet
    AUTHENTICATING = "authenticating"  # accepted; only the authentication phase may run
    READY = "ready"  # authenticated; commands are handled
    CLOSING = "closing"  # a close is queued behind the frames already accepted
    CLOSED = "closed"


_S = ConnectionState
_TRANSITIONS: dict[ConnectionState, frozenset[ConnectionState]] = {
    _S.CONNECTING: frozenset({_S.AUTHENTICATING, _S.CLOSED}),
    _S.AUTHENTICATING: frozenset({_S.READY, _S.CLOSING, _S.CLOSED}),
    _S.READY: frozenset({_S.CLOSING, _S.CLOSED}),
    _S.CLOSING: frozenset({_S.CLOSED}),
    _S.CLOSED: frozenset(),
}


class IllegalConnectionTransition(RuntimeError):
    """A programming error: the code tried to move a connection where it cannot go."""


class ConnectionGone(Exception):
    """The peer is closed or closing; nothing more can be sent to it."""


class PeerStuck(ConnectionGone):
    """The peer kept its send queue full for too long and was dropped."""


@dataclass(frozen=True, slots=True)
class QueueLimits:
    frames: int
    bytes: int
    stuck_seconds: float


@dataclass(frozen=True, slots=True)
class _Close:
    code: int
    reason: str


_Item = str | bytes | _Close


class SendQueue:
    """FIFO bounded by frame count and total bytes. One item always fits in an empty queue, so
    a single frame larger than the byte bound (up to the protocol maximum) still goes through."""

    def __init__(self, *, max_frames: int, max_bytes: int) -> None:
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self._items: deque[tuple[_Item, int]] = deque()
        self._bytes = 0
        self._closed = False
        self._changed = asyncio.Condition()
        # High-water marks, read by tests and the benchmark to show the bound holds.
        self.peak_frames = 0
        self.peak_bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def queued_bytes(self) -> int:
        return self._bytes

    def _fits(self, size: int) -> bool:
        if not self._items:
            return True
        return len(self._items) < self.max_frames and self._bytes + size <= self.max_bytes

    async def put(self, item: _Item, size: int, *, wait_at_most: float) -> None:
        async with self._changed:
            if not self._closed and not self._fits(size):
                try:
                    async with asyncio.timeout(wait_at_most):
                        await self._changed.wait_for(lambda: self._closed or self._fits(size))
                except TimeoutError:
                    raise PeerStuck(f"send queue full for {wait_at_most:g}s") from None
            if self._closed:
                raise ConnectionGone("connection closed")
            self._items.append((item, size))
            self._bytes += size
            self.peak_frames = max(self.peak_frames, len(self._items))
            self.peak_bytes = max(self.peak_bytes, self._bytes)
            self._changed.notify_all()

    async def get(self) -> _Item:
        async with self._changed:
            await self._changed.wait_for(lambda: bool(self._items) or self._closed)
            if not self._items:
                raise ConnectionGone("connection closed")
            item, size = self._items.popleft()
            self._bytes -= size
            self._changed.notify_all()
            return item

    async def close(self) -> None:
        async with self._changed:
            self._closed = True
            self._items.clear()
            self._bytes = 0
            self._changed.notify_all()


class _Adapter(logging.LoggerAdapter):  # type: ignore[type-arg]
    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = self.extra or {}
        return f"[{extra.get('kind')} {extra.get('connection_id')}] {msg}", kwargs


class Connection:
    """A WebSocket peer of the relay. ``run`` drives its reader; ``send_*`` feed its writer."""

    def __init__(self, websocket: WebSocket, *, kind: str, limits: QueueLimits) -> None:
        self.websocket = websocket
        self.kind = kind
        self.id = secrets.token_hex(6)
        self.limits = limits
        self.state = ConnectionState.CONNECTING
        self.queue = SendQueue(max_frames=limits.frames, max_bytes=limits.bytes)
        self.log = _Adapter(log, {"kind": kind, "connection_id": self.id})
        self._writer: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None

    # -- state ----------------------------------------------------------------------------------

    def _move(self, new: ConnectionState) -> None:
        if new not in _TRANSITIONS[self.state]:
            raise IllegalConnectionTransition(f"connection {self.id}: {self.state} -> {new}")
        self.log.debug("state %s -> %s", self.state, new)
        self.state = new

    def authenticated(self) -> None:
        self._move(ConnectionState.READY)

    @property
    def is_open(self) -> bool:
        return self.state in (ConnectionState.AUTHENTICATING, ConnectionState.READY)

    # -- lifecycle ------------------------------------------------------------------------------

    async def run(self, handler: Callable[[Connection], Coroutine[Any, Any, None]]) -> None:
        """Accept, start the writer, run ``handler`` as the reader until it returns, the peer
        disconnects or the connection is dropped; then release everything."""
        await self.websocket.accept()
        self._move(ConnectionState.AUTHENTICATING)
        self.log.info("connected from %s", self.websocket.client)
        self._writer = asyncio.create_task(self._write_loop())
        self._reader = asyncio.create_task(handler(self))
        try:
            await self._reader
        except asyncio.CancelledError:
            # Our own reader cancelled by drop(); a cancellation of this task itself propagates.
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
        except WebSocketDisconnect:
            pass
        finally:
            await self._finish()

    async def _finish(self) -> None:
        if self.state is not ConnectionState.CLOSED:
            with contextlib.suppress(IllegalConnectionTransition):
                if self.state is not ConnectionState.CLOSING:
                    self._move(ConnectionState.CLOSING)
            await self._flush_close(CLOSE_NORMAL, "")
        self.log.info("disconnected")

    async def _flush_close(self, code: int, reason: str) -> None:
        # Let the writer send what was queued before the close, but not forever.
        writer = self._writer
        if writer is not None and not writer.done():
            with contextlib.suppress(ConnectionGone):
                await self.queue.put(_Close(code, reason), 0, wait_at_most=1.0)
            try:
                async with asyncio.timeout(2.0):
                    await asyncio.shield(writer)
            except (TimeoutError, Exception):
                writer.cancel()
        await self.queue.close()
        if self.state is not ConnectionState.CLOSED:
            self._move(ConnectionState.CLOSED)

    async def _write_loop(self) -> None:
        ws = self.websocket
        try:
            while True:
                item = await self.queue.get()
                if isinstance(item, _Close):
                    with contextlib.suppress(Exception):
                        await ws.close(code=item.code, reason=item.reason)
                    return
                if isinstance(item, str):
                    await ws.send_text(item)
                else:
                    await ws.send_bytes(item)
        except ConnectionGone:
            return
        except Exception as exc:  # the socket broke under us: the reader will see it too
            self.log.info("writer stopped: %s", type(exc).__name__)
            if self._reader is not None:
                self._reader.cancel()

    # -- sending --------------------------------------------------------------------------------

    async def send_text(self, text: str) -> None:
        await self._put(text, len(text))

    async def send_bytes(self, data: bytes) -> None:
        await self._put(data, len(data))

    async def _put(self, item: str | bytes, size: int) -> None:
        if not self.is_open:
            raise ConnectionGone(f"connection {self.id} is {self.state}")
        try:
            await self.queue.put(item, size, wait_at_most=self.limits.stuck_seconds)
        except PeerStuck:
            self.log.warning("dropped: send queue full for %gs", self.limits.stuck_seconds)
            await self.drop(CLOSE_TRY_LATER, "peer too slow")
            raise

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Close after the frames already queued have been sent."""
        if not self.is_open:
            return
        self._move(ConnectionState.CLOSING)
        # The reader keeps running: it ends when the peer answers the close (or the server's
        # close timeout fires), so work it is doing in a transaction is never cut in half.
        with contextlib.suppress(ConnectionGone):
            await self.queue.put(_Close(code, reason), 0, wait_at_most=self.limits.stuck_seconds)

    async def drop(self, code: int, reason: str) -> None:
        """Close now, discarding what is queued (a stuck or misbehaving peer)."""
        if self.state is ConnectionState.CLOSED:
            return
        if self.state is not ConnectionState.CLOSING:
            self._move(ConnectionState.CLOSING)
        await self.queue.close()
        if self._writer is not None:
            self._writer.cancel()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await self.websocket.close(code=code, reason=reason)
        if self._reader is not None and self._reader is not asyncio.current_task():
            self._reader.cancel()

    # -- receiving ------------------------------------------------------------------------------

    async def receive(self) -> str | bytes | None:
        """The next text or binary frame, or None once the peer has gone."""
        message = await self.websocket.receive()
        if message["type"] == "websocket.disconnect":
            return None
        text: str | None = message.get("text")
        if text is not None:
            return text
        data: bytes | None = message.get("bytes")
        return data if data is not None else b""
