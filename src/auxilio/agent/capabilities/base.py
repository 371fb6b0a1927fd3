"""What a capability handler on the device gets from its session (files, diagnostics, runbooks).

A handler never talks to the network or the person directly: it sends application messages
through ``send`` (end-to-end to the technician), asks the person through ``ask`` (one question at
a time, in the terminal and the session window; silence is a refusal), tells the person through
``feed``, keeps the device's own record in ``log`` and reports to the server through ``report``
(``session.activity``: the subject only sealed to the auditor key, never content).

``gate(capability)`` is the session's single check (grant AND receipt, live, not revoked,
session active); a handler calls it before acting on every message, and again before each
step of a long operation (a transfer stops when the person revokes files mid-way).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from auxilio.agent.feed import Feed, one_line
from auxilio.agent.state import ActivityLog
from auxilio.crypto.grants import Grant
from auxilio.protocol.app import AppMessage
from auxilio.protocol.frames import ActivityKind
from auxilio.protocol.types import Capability, ConsentDecision


@dataclass(frozen=True, slots=True)
class Question:
    """Something only the person can decide: entering a personal-data zone, sending a
    diagnostics report, running a runbook. The title, ``lines`` and labels are kept as
    ``feed.one_line`` shows them (the technician's stated reason and paths among them, so
    neither an escape sequence nor a newline can rewrite the question); the answer is
    GRANTED, REFUSED or TIMED_OUT (silence)."""

    kind: Literal["zone", "diagnostics", "runbook"]
    title: str
    lines: tuple[str, ...]
    timeout_seconds: int = 120
    allow_label: str = "Allow"
    refuse_label: str = "Refuse"

    def __post_init__(self) -> None:
        # Made printable here, once, for every handler: the question's text is what the
        # person answers, logged in their report as it was shown.
        for name in ("title", "allow_label", "refuse_label"):
            object.__setattr__(self, name, one_line(getattr(self, name)))
        object.__setattr__(self, "lines", tuple(one_line(line) for line in self.lines))


@dataclass(frozen=True, slots=True)
class Activity:
    """One ``session.activity`` for the server: ``subject`` (a path, a runbook's name and
    parameters) is sealed; the other fields travel in clear."""

    capability: Capability
    kind: ActivityKind
    subject: str = ""
    size: int | None = None
    sha256: str | None = None
    zone: str | None = None
    runbook_id: str | None = None
    exit_code: int | None = None


class Ask(Protocol):
    def __call__(self, question: Question) -> Awaitable[ConsentDecision]: ...


@dataclass(slots=True)
class SessionServices:
    grant: Callable[[], Grant]
    gate: Callable[[Capability], bool]
    send: Callable[[AppMessage], Awaitable[None]]
    ask: Ask
    feed: Feed
    log: ActivityLog
    report: Callable[[Activity], Awaitable[None]]
    clock: Callable[[], datetime]
    # The first use of a capability in the session (counted in the one report).
    mark_used: Callable[[Capability], Awaitable[None]]
    # Another capability's running handler (remote control asks for the screen view's).
    handler: Callable[[Capability], object | None] = lambda _capability: None
    # The person revoked a capability from inside a handler (remote control's take-back keys):
    # the session revokes it as if they had typed "r", so the server and both reports know.
    # None where no session stands behind the handler (unit tests of one handler).
    revoke_by_person: Callable[[Capability], None] | None = None
