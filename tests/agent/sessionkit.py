"""A scripted server link and a real technician E2E peer, to drive ``SupportSessionRunner``.

The agent's code under test is real (grant, receipt, E2E, PTY); only the WebSocket is replaced
by two queues, so each test can act as the broker and the technician at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from rich.console import Console

from auxilio.agent.connection import ConnectionLost, Incoming
from auxilio.agent.consent import ConsentResult, sign_consent
from auxilio.agent.dispatch import HandlerFactory
from auxilio.agent.errors import ConnectionFailed
from auxilio.agent.feed import Feed
from auxilio.agent.session import SupportSessionRunner
from auxilio.agent.state import AgentState
from auxilio.agent.userinput import Line
from auxilio.crypto.e2e import E2ESession
from auxilio.crypto.grants import Grant
from auxilio.crypto.handshake import Handshake
from auxilio.protocol.app import AppMessage, decode_app_message, encode_app_message
from auxilio.protocol.binary import ChannelId
from auxilio.protocol.frames import ControlMessage, E2EConfirm, E2EHello, SessionStateMessage
from auxilio.protocol.types import Capability, ConsentDecision


@dataclass
class FakeLink:
    incoming: asyncio.Queue[Incoming | None] = field(default_factory=asyncio.Queue)
    sent: asyncio.Queue[ControlMessage | bytes] = field(default_factory=asyncio.Queue)
    closed: bool = False

    async def send(self, message: ControlMessage) -> None:
        await self.sent.put(message)

    async def send_binary(self, frame: bytes) -> None:
        await self.sent.put(frame)

    async def receive(self) -> Incoming:
        item = await self.incoming.get()
        if item is None:
            raise ConnectionLost("closed by the test")
        return item

    async def reconnect(self) -> None:
        raise ConnectionFailed("server.unreachable", "the test server is gone")

    async def close(self) -> None:
        self.closed = True


class FakeLines:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Line] = asyncio.Queue()

    async def get(self) -> Line:
        return await self.queue.get()


class Harness:
    def __init__(
        self,
        state: AgentState,
        grant: Grant,
        technician_key: X25519PrivateKey,
        consent: dict[Capability, ConsentDecision],
        server_public: Any,
        feed: Feed | None = None,
        handlers: Mapping[Capability, HandlerFactory] | None = None,
    ) -> None:
        self.grant = grant
        self.link = FakeLink()
        self.lines = FakeLines()
        self.technician_key = technician_key
        self.tech: E2ESession | None = None
        self.log = state.session_log(grant.support_session_id)
        result = ConsentResult("prompt", consent, datetime.now(UTC), 60)
        _, receipt = sign_consent(state.device_key, grant, result)
        self.console = Console(record=True, width=200, force_terminal=False)
        self.runner = SupportSessionRunner(
            link=self.link,
            feed=feed or Feed(self.console),
            lines=self.lines,  # type: ignore[arg-type]
            log=self.log,
            device_key=state.device_key,
            server_key=server_public,
            grant=grant,
            receipt=receipt,
            # No server here sends the report after the end: do not wait for it long.
            first_report_seconds=0.2,
            handlers=handlers,
        )
        self.task: asyncio.Task[Any] | None = None
        self.backlog: list[Any] = []

    def start(self) -> None:
        self.task = asyncio.create_task(self.runner.run())

    async def next_sent(self, kind: type[Any] | None = None, seconds: float = 10) -> Any:
        """The next message the agent sent of ``kind``; others stay queued, in order, for later
        calls (a technician must open every frame, in order)."""
        for index, item in enumerate(self.backlog):
            if kind is None or isinstance(item, kind):
                return self.backlog.pop(index)
        async with asyncio.timeout(seconds):
            while True:
                item = await self.link.sent.get()
                if kind is None or isinstance(item, kind):
                    return item
                self.backlog.append(item)

    async def activate(self, *, granted: tuple[str, ...] = ("chat", "terminal")) -> None:
        """The broker says active + technician ready; the technician completes the handshake."""
        await self.link.incoming.put(
            SessionStateMessage(
                id="st-1", support_session_id=self.grant.support_session_id, state="active",
                changed_at=datetime.now(UTC), granted=tuple(Capability(g) for g in granted),
                reason="technician_ready",
            )
        )  # fmt: skip
        hello = await self.next_sent(E2EHello)
        pending = Handshake.technician_accept(
            hello, technician_key=self.technician_key, grant=self.grant
        )
        await self.link.incoming.put(pending.accept)
        confirm = await self.next_sent(E2EConfirm)
        self.tech = pending.complete(confirm)

    async def send_app(self, channel: ChannelId, message: AppMessage) -> bytes:
        assert self.tech is not None
        frame = self.tech.seal(channel, encode_app_message(message))
        await self.link.incoming.put(frame)
        return frame

    async def next_app(self, seconds: float = 10) -> AppMessage:
        assert self.tech is not None
        frame = await self.next_sent(bytes, seconds)
        _, plaintext = self.tech.open(frame)
        return decode_app_message(plaintext)

    async def eventually(self, condition: Callable[[], bool], seconds: float = 5) -> None:
        for _ in range(int(seconds / 0.02)):
            if condition():
                return
            await asyncio.sleep(0.02)
        raise AssertionError("condition not met in time")

    async def finished(self, seconds: float = 10) -> Any:
        assert self.task is not None
        return await asyncio.wait_for(self.task, seconds)
