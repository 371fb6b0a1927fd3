"""Rate limits against guessing (issue 7 §8): token buckets per client address and per node.

Join codes, logins and WebSocket connections that have not authenticated yet are limited twice:
per client address (one guesser) and for the whole node (many addresses at once). A bucket
holds at most ``per_minute`` tokens and refills continuously at ``per_minute / 60`` a second, so
a person who mistypes a code a few times never notices and a script is held to that rate.

``RateLimiter`` is the seam: ``MemoryRateLimiter`` keeps the buckets in this process (each node
counts for itself, which is what one node needs); a Redis-backed implementation can take its
place for several nodes without touching the callers.
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from auxilio.server.settings import Settings

# Buckets kept per node; the least recently used go first. A full bucket and a forgotten one
# behave the same, so only someone cycling through more addresses than this gains anything,
# and the node-wide bucket still holds them.
MAX_BUCKETS = 65_536


class Limited(StrEnum):
    """What is limited; the value is the key prefix and the settings field's middle part."""

    JOIN = "join"
    LOGIN = "login"
    WS_UNAUTHENTICATED = "ws"


@dataclass(frozen=True, slots=True)
class Rate:
    per_minute: float

    @property
    def per_second(self) -> float:
        return self.per_minute / 60.0


class RateLimiter(Protocol):
    async def take(self, key: str, rate: Rate) -> float:
        """Spend one token of ``key``'s bucket: 0.0 if there was one, else the seconds until
        there will be (and nothing is spent)."""
        ...


class MemoryRateLimiter:
    def __init__(
        self, *, clock: Callable[[], float] = time.monotonic, max_buckets: int = MAX_BUCKETS
    ) -> None:
        self._clock = clock
        self._max = max_buckets
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, at

    async def take(self, key: str, rate: Rate) -> float:
        now = self._clock()
        tokens, at = self._buckets.pop(key, (rate.per_minute, now))
        tokens = min(rate.per_minute, tokens + (now - at) * rate.per_second)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            wait = 0.0
        else:
            self._buckets[key] = (tokens, now)
            wait = (1.0 - tokens) / rate.per_second
        while len(self._buckets) > self._max:
            self._buckets.popitem(last=False)
        return wait


def address_key(client_addr: str | None) -> str:
    """Whose bucket an address fills. An IPv6 client usually holds a whole /64 and could take a
    fresh address for every guess, so IPv6 counts per /64; IPv4 (also when mapped into IPv6)
    per address."""
    if not client_addr:
        return "unknown"
    try:
        ip = ipaddress.ip_address(client_addr)
    except ValueError:
        return client_addr[:64]  # not an IP (a unix socket, a test client): as given
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class RateLimits:
    """The configured limits, per address and node-wide, over one ``RateLimiter``."""

    def __init__(self, settings: Settings, limiter: RateLimiter | None = None) -> None:
        self.limiter = limiter or MemoryRateLimiter()
        self._rates = {
            kind: (
                Rate(getattr(settings, f"rate_{kind}_per_address_per_minute")),
                Rate(getattr(settings, f"rate_{kind}_global_per_minute")),
            )
            for kind in Limited
        }

    async def check(self, kind: Limited, client_addr: str | None) -> float:
        """0.0 when this attempt may go ahead, else how long to wait (seconds)."""
        per_address, node_wide = self._rates[kind]
        wait = await self.limiter.take(f"{kind}:addr:{address_key(client_addr)}", per_address)
        if wait:
            return wait
        # Only attempts an address was allowed count against everyone: one client hammering
        # away past its own limit does not use up the node-wide budget of the others.
        return await self.limiter.take(f"{kind}:global", node_wide)


def rate_limits(state: Any) -> RateLimits:
    """The app's limits (``app.state``), made on first use from its settings."""
    found: RateLimits | None = getattr(state, "rate_limits", None)
    if found is None:
        found = RateLimits(state.settings)
        state.rate_limits = found
    return found
