"""Policy documents are parsed off the event loop, one at a time per source, within a time limit.

``/policies/validate`` and ``/policies/explain`` accept a document from any authenticated user.
The parse itself is bounded (``auxilio.policy.yamlsource``: 64 KiB, no aliases, 16 levels), so
its cost is a fraction of a second at worst; running it in a worker thread keeps even that off
the event loop that serves every other request and WebSocket. Documents from requests queue for
one parser thread: a flood of them takes at most that thread (and its share of the GIL), never
every worker thread, and a caller who cannot get the parser in time is told to retry (503)
instead of queueing without end. Stored versions (the active policy, loaded once and cached)
have a parser of their own, so that such a flood cannot stop support sessions from starting.
A thread cannot be killed, which is why the bound lives in the parser and the time limit here
only decides how long a caller waits.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import TypeVar

import anyio
from anyio.lowlevel import RunVar

from auxilio.server.errors import DomainError

T = TypeVar("T")

# How long a request's document waits for the one request parser (the parse itself is bounded by
# the document's limits): a flood is told to retry after this, never queued without end. Five
# seconds was too short for a machine under load (a CI run's policy uploads failed).
PARSE_TIMEOUT_SECONDS = 15.0
# A stored version queues only behind other stored versions (each parsed once, then cached), and
# nobody but a policy manager can add one; a caller who gives up on it loses a session start. On a
# loaded machine (a CI run: two cores, a browser, the test servers) the parse alone once took over
# five seconds, so a stored version is waited for far longer than a request's document.
STORED_PARSE_TIMEOUT_SECONDS = 60.0


class Source(StrEnum):
    REQUEST = "request"  # a document in a request body: anyone's
    STORED = "stored"  # a stored version: validated when uploaded by a policy manager


# One limiter per source and event loop (tests run one loop per test; a server runs one).
_limiters: dict[Source, RunVar[anyio.CapacityLimiter]] = {
    source: RunVar(f"auxilio_policy_parser_{source}") for source in Source
}


class PolicyParserBusy(DomainError):
    code = "policy_parser_busy"
    status = 503
    default_message = "Too many policy documents are being checked; try again shortly."


def _parser(source: Source) -> anyio.CapacityLimiter:
    var = _limiters[source]
    try:
        return var.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(1)
        var.set(limiter)
        return limiter


async def off_loop(
    work: Callable[[], T], *, source: Source, wait_seconds: float | None = None
) -> T:
    """Run ``work`` (parsing and compiling a document) in ``source``'s parser thread."""
    if wait_seconds is None:
        wait_seconds = (
            STORED_PARSE_TIMEOUT_SECONDS if source is Source.STORED else PARSE_TIMEOUT_SECONDS
        )
    try:
        with anyio.fail_after(wait_seconds):
            return await anyio.to_thread.run_sync(
                work, limiter=_parser(source), abandon_on_cancel=True
            )
    except TimeoutError:
        raise PolicyParserBusy(retry_after_seconds=1) from None
