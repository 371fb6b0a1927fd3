"""SessionServices for the capability handler tests: a real grant, feed and activity log, and
recordings of what the handler sent, asked and reported (no session, no network)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from rich.console import Console

from auxilio.agent.capabilities.base import Activity, Question, SessionServices
from auxilio.agent.feed import Feed
from auxilio.agent.state import ActivityLog
from auxilio.crypto.grants import Grant
from auxilio.protocol.app import AppMessage
from auxilio.protocol.types import Capability, CapabilityGrant, CapabilityLimits, ConsentDecision

from .factories import make_grant, now

# A generous bound for what should take milliseconds (a slow CI machine is not a failure).
WAIT_SECONDS = 30.0


@dataclass
class Recorder:
    grant: Grant
    log: ActivityLog
    allowed: set[Capability]
    answers: list[ConsentDecision] = field(default_factory=list)
    questions: list[Question] = field(default_factory=list)
    activities: list[Activity] = field(default_factory=list)
    used: list[Capability] = field(default_factory=list)
    sent: asyncio.Queue[AppMessage] = field(default_factory=asyncio.Queue)
    console_file: io.StringIO = field(default_factory=io.StringIO)
    # Set to hold the person's answer until the test releases it.
    answer_gate: asyncio.Event | None = None
    asked: asyncio.Event = field(default_factory=asyncio.Event)

    def services(self) -> SessionServices:
        console = Console(file=self.console_file, width=300, color_system=None)
        return SessionServices(
            grant=lambda: self.grant,
            gate=lambda capability: capability in self.allowed,
            send=self._send,
            ask=self._ask,
            feed=Feed(console),
            log=self.log,
            report=self._report,
            clock=now,
            mark_used=self._mark_used,
        )

    async def _send(self, message: AppMessage) -> None:
        await self.sent.put(message)

    async def _ask(self, question: Question) -> ConsentDecision:
        self.questions.append(question)
        self.asked.set()
        if self.answer_gate is not None:
            await self.answer_gate.wait()
        return self.answers.pop(0) if self.answers else ConsentDecision.GRANTED

    async def _report(self, activity: Activity) -> None:
        self.activities.append(activity)

    async def _mark_used(self, capability: Capability) -> None:
        self.used.append(capability)

    async def next_sent(self) -> AppMessage:
        return await asyncio.wait_for(self.sent.get(), WAIT_SECONDS)

    async def question_asked(self) -> Question:
        await asyncio.wait_for(self.asked.wait(), WAIT_SECONDS)
        return self.questions[-1]

    def feed_text(self) -> str:
        return self.console_file.getvalue()

    def events(self) -> list[str]:
        return [entry["event"] for entry in self.log.events()]


def make_recorder(
    tmp_path: Path,
    server_key: Ed25519PrivateKey,
    technician_key: X25519PrivateKey,
    *,
    capabilities: Iterable[Capability],
    limits: dict[Capability, CapabilityLimits] | None = None,
) -> Recorder:
    names = tuple(capabilities)
    _, grant = make_grant(
        server_key, Ed25519PrivateKey.generate().public_key(), technician_key, capabilities=names
    )
    items = tuple(
        CapabilityGrant(
            capability=item.capability,
            limits=(limits or {}).get(item.capability, item.limits),
            expires_at=item.expires_at,
        )
        for item in grant.capabilities
    )
    grant = grant.model_copy(update={"capabilities": items})
    return Recorder(grant=grant, log=ActivityLog(tmp_path / "activity.jsonl"), allowed=set(names))
