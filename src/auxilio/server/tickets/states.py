"""The ticket state machine: one enum, one transition table, one function that moves.

```
new      -> open | pending | resolved
open     -> pending | resolved
pending  -> open | resolved
resolved -> closed | open   (reopen)
closed   -> open            (reopen)
```

Decisions, kept here so there is one place to read them:

* ``new -> resolved`` is allowed: a technician who fixes the problem on first contact must not
  have to pass through ``open`` just to satisfy the machine; the first-contact-resolution KPI
  counts exactly these tickets.
* ``new -> pending`` is allowed: the first reply may be a question to the requester.
* ``closed`` is reachable only from ``resolved``: every closed ticket has a resolution time.
* A reopen is any move to ``open`` from ``resolved`` or ``closed``; it increments
  ``reopen_count``. Nothing moves back to ``new``.
"""

from __future__ import annotations

from enum import StrEnum

from auxilio.server.errors import IllegalTransition


class TicketStatus(StrEnum):
    NEW = "new"
    OPEN = "open"
    PENDING = "pending"
    RESOLVED = "resolved"
    CLOSED = "closed"


_S = TicketStatus

TRANSITIONS: dict[TicketStatus, frozenset[TicketStatus]] = {
    _S.NEW: frozenset({_S.OPEN, _S.PENDING, _S.RESOLVED}),
    _S.OPEN: frozenset({_S.PENDING, _S.RESOLVED}),
    _S.PENDING: frozenset({_S.OPEN, _S.RESOLVED}),
    _S.RESOLVED: frozenset({_S.OPEN, _S.CLOSED}),
    _S.CLOSED: frozenset({_S.OPEN}),
}

# Tickets a technician still has to work on: what "load" means for routing.
ACTIVE_STATUSES: frozenset[TicketStatus] = frozenset({_S.NEW, _S.OPEN, _S.PENDING})
REOPENABLE: frozenset[TicketStatus] = frozenset({_S.RESOLVED, _S.CLOSED})


def allowed_from(current: TicketStatus) -> list[str]:
    return sorted(str(s) for s in TRANSITIONS[current])


def check_transition(current: TicketStatus, target: TicketStatus) -> None:
    """Raise ``IllegalTransition`` (details: from, to, allowed) unless the move is in the table."""
    if target not in TRANSITIONS[current]:
        raise IllegalTransition(
            f"A ticket cannot move from {current} to {target}.",
            **{"from": str(current), "to": str(target), "allowed": allowed_from(current)},
        )


def is_reopen(current: TicketStatus, target: TicketStatus) -> bool:
    return target is _S.OPEN and current in REOPENABLE
