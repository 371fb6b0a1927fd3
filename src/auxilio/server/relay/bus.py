"""The message bus between relay connections: topics, publish, subscribe.

One node runs the in-memory bus. Several nodes behind a load balancer need a shared one (Redis
pub/sub) so that an agent on one node and its technician on another are joined; that
implementation only has to satisfy ``Bus``. Messages are opaque to the bus: text control
frames, binary E2E frames, or a request to close the connection behind a topic.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

log = logging.getLogger("auxilio.relay.bus")


class MessageKind(StrEnum):
    TEXT = "text"
    BINARY = "binary"
    CLOSE = "close"  # close the subscriber's connection after what it already queued


@dataclass(frozen=True, slots=True)
class BusMessage:
    kind: MessageKind
    data: str | bytes = ""
    code: int = 1000

    @classmethod
    def text(cls, data: str) -> BusMessage:
        return cls(MessageKind.TEXT, data)

    @classmethod
    def binary(cls, data: bytes) -> BusMessage:
        return cls(MessageKind.BINARY, data)

    @classmethod
    def close(cls, code: int = 1000, reason: str = "") -> BusMessage:
        return cls(MessageKind.CLOSE, reason, code)


Handler = Callable[[BusMessage], Awaitable[None]]


class Subscription(Protocol):
    async def cancel(self) -> None: ...


class Bus(Protocol):
    async def publish(self, topic: str, message: BusMessage) -> int:
        """Deliver to every subscriber of ``topic``; return how many took it. Awaiting a slow
        subscriber is intended: it is how backpressure reaches the publisher."""
        ...

    async def subscribe(self, topic: str, handler: Handler) -> Subscription: ...

    async def subscribers(self, topic: str) -> int: ...

    async def close(self) -> None: ...


class _MemorySubscription:
    def __init__(self, bus: MemoryBus, topic: str, handler: Handler) -> None:
        self._bus = bus
        self._topic = topic
        self._handler = handler

    async def cancel(self) -> None:
        self._bus._remove(self._topic, self._handler)


class MemoryBus:
    """Single-process bus: a publish calls the subscribers' handlers directly."""

    def __init__(self) -> None:
        self._topics: dict[str, list[Handler]] = {}

    async def publish(self, topic: str, message: BusMessage) -> int:
        delivered = 0
        # A copy: a handler may unsubscribe (its connection closes) while we iterate.
        for handler in list(self._topics.get(topic, ())):
            try:
                await handler(message)
                delivered += 1
            except Exception as exc:  # one broken subscriber must not stop the others
                log.info("subscriber of %s refused a message: %s", topic, type(exc).__name__)
        return delivered

    async def subscribe(self, topic: str, handler: Handler) -> Subscription:
        self._topics.setdefault(topic, []).append(handler)
        return _MemorySubscription(self, topic, handler)

    async def subscribers(self, topic: str) -> int:
        return len(self._topics.get(topic, ()))

    def _remove(self, topic: str, handler: Handler) -> None:
        handlers = self._topics.get(topic)
        if handlers is None:
            return
        if handler in handlers:
            handlers.remove(handler)
        if not handlers:
            del self._topics[topic]

    async def close(self) -> None:
        self._topics.clear()


def create_bus(kind: str) -> Bus:
    if kind == "memory":
        return MemoryBus()
    # Settings accept "redis" for multi-node deployments; refusing loudly beats silently
    # running a single-node bus that would never join peers on different nodes.
    raise RuntimeError(f"the {kind!r} relay bus is not available in this version; use 'memory'")
