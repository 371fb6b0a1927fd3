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


class RunbookRunNote(WireModel):
    runbook_id: Identifier
    exit_code: int | None = None  # None: stopped at its time limit


class FileFacts(WireModel):
    """Files the technician read from the device and wrote to it (counts and bytes; the names
    stay sealed on the server, the person's own report on the device lists them)."""

    read: int = Field(default=0, ge=0)
    read_bytes: int = Field(default=0, ge=0)
    written: int = Field(default=0, ge=0)
    written_bytes: int = Field(default=0, ge=0)


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
    files: FileFacts = FileFacts()
    # Personal-data zones the person let the technician into, and those they refused.
    zones_opened: tuple[ShortText, ...] = Field(default=(), max_length=64)
    zones_refused: tuple[ShortText, ...] = Field(default=(), max_length=64)
    diagnostics_sent: int = Field(default=0, ge=0)
    # Clipboard transfers: the technician's text put on it, the person's clipboard read.
    clipboard_set: int = Field(default=0, ge=0)
    clipboard_read: int = Field(default=0, ge=0)
    runbooks_run: tuple[RunbookRunNote, ...] = Field(default=(), max_length=256)
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
        Files: <n> read (<bytes> bytes), <n> written (<bytes> bytes)
        Personal folders opened: <zones> | none      (refused: <zones>, when any)
        Diagnostics sent: <n>
        Runbooks run: <id> (exit <code> | stopped at its time limit), ... | none
        Clipboard: <n> put on the device, <n> read      (only when any)
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
        *file_lines(report),
        f"Recorded: {'yes' if report.recorded else 'no'}",
        f"End reason: {report.end_reason or '-'} (by {report.ended_by or '-'})"
        + (f": {report.end_detail}" if report.end_detail else ""),
        f"Summary: {summary}",
    ]


def _runbook_text(note: RunbookRunNote) -> str:
    ended = "stopped at its time limit" if note.exit_code is None else f"exit {note.exit_code}"
    return f"{note.runbook_id} ({ended})"


def file_lines(report: SessionReport) -> list[str]:
    """The files, zones, diagnostics and runbooks lines of ``render_lines``."""
    files = report.files
    zones = f"Personal folders opened: {', '.join(report.zones_opened) or 'none'}"
    if report.zones_refused:
        zones += f" (refused: {', '.join(report.zones_refused)})"
    return [
        f"Files: {files.read} read ({files.read_bytes} bytes), "
        f"{files.written} written ({files.written_bytes} bytes)",
        zones,
        f"Diagnostics sent: {report.diagnostics_sent}",
        "Runbooks run: " + (", ".join(_runbook_text(n) for n in report.runbooks_run) or "none"),
        *([f"Clipboard: {report.clipboard_set} put on the device, {report.clipboard_read} read"]
          if report.clipboard_set or report.clipboard_read else []),
    ]
