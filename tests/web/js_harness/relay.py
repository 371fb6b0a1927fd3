"""A stand-in for the server's ``/ws/technician`` with the agent behind it, for live-session.js.

It speaks the real protocol with the real Python crypto: on ``tech.attach`` it sends the states a
server sends, then the agent's ``e2e.hello`` (``Handshake.agent_offer``), completes the handshake
on ``e2e.accept`` and opens every frame the page sends with the agent's ``E2ESession``. What it
received is recorded (control messages as dicts, application messages decoded); what the agent
or the server says next is sent by the test (``send_app``, ``send_control``). It runs its own
event loop in a thread, on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from auxilio.crypto.e2e import E2ESession
from auxilio.crypto.grants import Grant
from auxilio.crypto.handshake import AgentOffer, Handshake
from auxilio.protocol.app import CHANNEL_OF, AppMessage, decode_app_message, encode_app_message
from auxilio.protocol.frames import E2EAccept


class FakeRelay:
    def __init__(self, *, grant: Grant, device_key: Ed25519PrivateKey, granted: list[str]) -> None:
        self.grant = grant
        self.device_key = device_key
        self.granted = granted
        self.url = ""
        self.control: list[dict[str, Any]] = []  # control messages from the page
        self.app: list[AppMessage] = []  # application messages from the page, opened
        self.agent: E2ESession | None = None
        self.sent_frames: list[bytes] = []  # sealed frames sent to the page, for replays
        self._ws: ServerConnection | None = None
        self._offer: AgentOffer | None = None
        self._loop = asyncio.new_event_loop()
        self._lock = threading.Lock()

    # -- driving from the test thread ----------------------------------------------------

    def _call(self, make: Callable[[], Any]) -> Any:
        async def run() -> Any:
            return await make()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=10)

    def send_app(self, message: AppMessage) -> None:
        self._call(lambda: self._send_app(message))

    def send_frame(self, frame: bytes) -> None:
        self._call(lambda: self._raw(frame))

    def drop(self) -> None:
        """Close the page's connection, as a relay restart or a network cut would."""
        self._call(lambda: self._close())

    async def _close(self) -> None:
        assert self._ws is not None
        await self._ws.close()

    def send_control(self, message: dict[str, Any]) -> None:
        self._call(lambda: self._raw(json.dumps({"id": "relay-1", **message})))

    def wait_app(self, kind: str, *, timeout: float = 10.0, count: int = 1) -> list[Any]:
        return self._wait(lambda: [m for m in self.app if m.type == kind], timeout, count, kind)

    def wait_control(self, kind: str, *, timeout: float = 10.0, count: int = 1) -> dict[str, Any]:
        """The ``count``-th control message of ``kind`` from the page."""
        found = self._wait(
            lambda: [m for m in self.control if m["type"] == kind], timeout, count, kind
        )
        result: dict[str, Any] = found[count - 1]
        return result

    def _wait(self, pick: Callable[[], list[Any]], timeout: float, count: int, kind: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                found = pick()
            if len(found) >= count:
                return found
            time.sleep(0.02)
        raise AssertionError(f"the page sent no {kind} (got {[m.type for m in self.app]})")

    # -- the relay's side ----------------------------------------------------------------

    async def _raw(self, data: str | bytes) -> None:
        assert self._ws is not None
        await self._ws.send(data)

    async def _send_app(self, message: AppMessage) -> None:
        assert self.agent is not None
        frame = self.agent.seal(CHANNEL_OF[type(message)], encode_app_message(message))
        self.sent_frames.append(frame)
        await self._raw(frame)

    def _state(self, state: str, reason: str = "") -> str:
        return json.dumps({
            "id": f"state-{state}", "type": "session.state",
            "support_session_id": self.grant.support_session_id, "state": state,
            "changed_at": datetime.now(UTC).isoformat(), "reason": reason,
            "not_after": self.grant.not_after.isoformat(),
            "granted": self.granted if state == "active" else [],
        })  # fmt: skip

    async def _handle(self, ws: ServerConnection) -> None:
        self._ws = ws
        try:
            async for data in ws:
                if isinstance(data, bytes):
                    self._on_frame(data)
                else:
                    await self._on_text(json.loads(data))
        except ConnectionClosed:
            pass

    def _on_frame(self, frame: bytes) -> None:
        assert self.agent is not None
        channel, plaintext = self.agent.open(frame)
        message = decode_app_message(plaintext)
        assert CHANNEL_OF[type(message)] == channel
        with self._lock:
            self.app.append(message)

    async def _on_text(self, message: dict[str, Any]) -> None:
        with self._lock:
            self.control.append(message)
        sid = self.grant.support_session_id
        if message["type"] == "tech.attach":
            await self._raw(self._state("requested", "attached"))
            await self._raw(self._state("awaiting_consent"))
            await self._raw(self._state("active"))
            self._offer = Handshake.agent_offer(device_key=self.device_key, grant=self.grant)
            await self._raw(self._offer.hello.model_dump_json())
        elif message["type"] == "e2e.accept":
            assert self._offer is not None
            self.agent, confirm = self._offer.complete(E2EAccept.model_validate(message))
            await self._raw(confirm.model_dump_json())
        elif message["type"] == "session.end":
            end = {**message, "id": "end-1", "ended_by": "technician"}
            end.setdefault("support_session_id", sid)
            await self._raw(json.dumps(end))
            await self._raw(self._state("ended"))

    @contextmanager
    def running(self) -> Iterator[FakeRelay]:
        started = threading.Event()
        stop = asyncio.Event()

        async def main() -> None:
            async with serve(self._handle, "127.0.0.1", 0, compression=None) as server:
                port = next(iter(server.sockets)).getsockname()[1]
                self.url = f"ws://127.0.0.1:{port}/ws/technician"
                started.set()
                await stop.wait()

        thread = threading.Thread(target=self._loop.run_until_complete, args=(main(),))
        thread.start()
        started.wait(timeout=10)
        try:
            yield self
        finally:
            self._loop.call_soon_threadsafe(stop.set)
            thread.join(timeout=10)
            self._loop.close()
