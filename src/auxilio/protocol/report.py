"""The session report (R3, R13): one model, built once by the server from the audited facts,
and shown the same by the agent, the technician's CLI and the API.

The agent also keeps its own log; it compares the two and tells the person where they differ,
so a report that does not match what happened on the device never passes unnoticed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from auxilio.protocol.types import Capability, Identifier, ShortText, UtcDatetime, WireModel

LongText = Annotated[str, StringConstraints(max_length=16 * 1024)]


class CapabilityUse(WireModel):
    capability: Capability
    granted: bool  # the person allowed it at consent
    used: bool  # the agent reported using it
    revoked_at: UtcDatetime | None = None
    revoked_by: ShortText | None = None


class SessionReport(WireModel):
    support_session_id: Identifier
    ticket_ref: ShortText | None = None
    technician_name: ShortText
    organisation_name: ShortText
    state: ShortText
    started_at: UtcDatetime | None = None  # None: the session never became active
    ended_at: UtcDatetime | None = None
    duration_seconds: float | None = Field(default=None, ge=0)
    capabilities: tuple[CapabilityUse, ...] = Field(default=(), max_length=16)
    commands_run: int = Field(default=0, ge=0)
    recorded: bool = False
    ended_by: ShortText | None = None
    end_reason: ShortText | None = None
    end_detail: LongText = ""
    # The technician's summary: "pending" until written, "not_required" where the policy does not
    # ask for it or the session never started.
    summary_state: Literal["written", "pending", "not_required"] = "pending"
    summary: LongText | None = None
    summary_at: UtcDatetime | None = None

    def granted(self) -> list[str]:
        return [str(c.capability) for c in self.capabilities if c.granted]

    def used(self) -> list[str]:
        return [str(c.capability) for c in self.capabilities if c.used]

    def revoked(self) -> list[str]:
        return [str(c.capability) for c in self.capabilities if c.revoked_at is not None]


def render_lines(
    report: SessionReport, *, clock: Callable[[datetime], str] | None = None
) -> list[str]:
    """The report as readable lines, the same on every side (stable for tests):

        Support session: <id>
        Technician: <name> (<organisation>)
        Ticket: <ref>
        Started: <time> | never started
        Ended: <time>
        Duration: <h:mm:ss>
        Capabilities granted: <list, "(revoked)" marked>
        Capabilities used: <list>
        Commands run: <n>
        Recorded: yes|no
        End reason: <reason> (by <party>)
        Summary: <text> | (not written yet) | (not required)
    """
    def when(moment: datetime | None) -> str:
        if moment is None:
            return "-"
        return clock(moment) if clock is not None else moment.isoformat()

    seconds = int(report.duration_seconds or 0)
    granted = [
        f"{c.capability} (revoked)" if c.revoked_at is not None else str(c.capability)
        for c in report.capabilities if c.granted
    ]  # fmt: skip
    summary = {
        "written": report.summary or "",
        "pending": "(not written yet)",
        "not_required": "(not required)",
    }[report.summary_state]
    return [
        f"Support session: {report.support_session_id}",
        f"Technician: {report.technician_name} ({report.organisation_name})",
        f"Ticket: {report.ticket_ref or '-'}",
        f"Started: {when(report.started_at) if report.started_at else 'never started'}",
        f"Ended: {when(report.ended_at)}",
        f"Duration: {seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}",
        f"Capabilities granted: {', '.join(granted) or 'none'}",
        f"Capabilities used: {', '.join(report.used()) or 'none'}",
        f"Commands run: {report.commands_run}",
        f"Recorded: {'yes' if report.recorded else 'no'}",
        f"End reason: {report.end_reason or '-'} (by {report.ended_by or '-'})"
        + (f": {report.end_detail}" if report.end_detail else ""),
        f"Summary: {summary}",
    ]
