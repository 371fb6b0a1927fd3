"""Policy documents are parsed off the event loop, a few at a time, within a time limit.

``/policies/validate`` and ``/policies/explain`` accept a document from any authenticated user.
The parse itself is bounded (``auxilio.policy.yamlsource``: 64 KiB, no aliases, 16 levels), so
its cost is a fraction of a second at worst; running it in a worker thread keeps even that off
the event loop that serves every other request and WebSocket. The limiter keeps a flood of
documents from taking every worker thread (the database driver and other blocking work share
that pool); a caller who cannot get a parser in time is told to retry (503) instead of queueing
without end. A thread cannot be killed, which is why the bound lives in the parser and the time
limit here only decides how long a caller waits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio
from anyio.lowlevel import RunVar

from auxilio.server.errors import DomainError

T = TypeVar("T")

MAX_CONCURRENT_PARSES = 2
PARSE_TIMEOUT_SECONDS = 5.0

# One limiter per event loop (tests run one loop per test; a server runs one).
_limiter: RunVar[anyio.CapacityLimiter] = RunVar("auxilio_policy_parse_limiter")


class PolicyParserBusy(DomainError):
    code = "policy_parser_busy"
    status = 503
    default_message = "Too many policy documents are being checked; try again shortly."


def _parse_limiter() -> anyio.CapacityLimiter:
    try:
        return _limiter.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(MAX_CONCURRENT_PARSES)
        _limiter.set(limiter)
        return limiter


async def off_loop(work: Callable[[], T], *, wait_seconds: float = PARSE_TIMEOUT_SECONDS) -> T:
    """Run ``work`` (parsing and compiling a document) in a worker thread, bounded in time."""
    try:
        with anyio.fail_after(wait_seconds):
            return await anyio.to_thread.run_sync(
                work, limiter=_parse_limiter(), abandon_on_cancel=True
            )
    except TimeoutError:
        raise PolicyParserBusy(retry_after_seconds=1) from None
