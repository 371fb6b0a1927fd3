"""The person's session report, built from the agent's own activity log (not the server's).

Stable lines (for tests):

    Session report
    Technician: <name> (<organisation>)
    Started: <time>            Ended: <time>            Duration: <h:mm:ss>
    Capabilities granted: <list>
    Capabilities used: <list>
    Commands run: <n>
    Files read: <n>, then each "  <path> (<size> bytes)"; Files written: likewise
    Personal folders opened: <zones> | none (refused: <zones>)
    Diagnostics sent: <n>
    Runbooks run: <id> (exit <code>), ... | none
    Recorded: yes|no
    End reason: <reason> (by <party>)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from rich.console import Console

from auxilio.agent.connection import new_id
from auxilio.protocol.frames import ActivityKind, SessionReportMismatch
from auxilio.protocol.report import SessionReport as ServerReport
from auxilio.protocol.report import render_lines


@dataclass
class SessionReport:
    support_session_id: str = "?"
    technician: str = "?"
    organisation: str = "?"
    started_at: datetime | None = None
    ended_at: datetime | None = None
    granted: list[str] = field(default_factory=list)
    used: list[str] = field(default_factory=list)
    commands: list[tuple[str, str]] = field(default_factory=list)
    recorded: bool | None = None
    # From the "activity" events (each one also sent to the server as session.activity):
    files_read: list[tuple[str, int]] = field(default_factory=list)  # (path, size)
    files_written: list[tuple[str, int]] = field(default_factory=list)
    zones_opened: list[str] = field(default_factory=list)
    zones_refused: list[str] = field(default_factory=list)
    diagnostics_sent: int = 0
    clipboard_set: int = 0
    clipboard_read: int = 0
    runbooks_run: list[tuple[str, int | None]] = field(default_factory=list)
    ended_by: str = "?"
    reason: str = "?"
    detail: str = ""

    @property
    def duration_seconds(self) -> float:
        if self.started_at is None or self.ended_at is None:
            return 0.0
        return max(0.0, (self.ended_at - self.started_at).total_seconds())


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def build_report(events: list[dict[str, Any]]) -> SessionReport:
    report = SessionReport()
    for event in events:
        kind = event.get("event")
        if kind == "offered":
            report.support_session_id = event["support_session_id"]
            report.technician = event["technician_name"]
            report.organisation = event["organisation_name"]
            report.recorded = bool(event["recorded"])
        elif kind == "activated" and report.started_at is None:
            report.started_at = _time(event["at"])
            report.granted = sorted(event["granted"])
        elif kind == "capability_used" and event["capability"] not in report.used:
            report.used.append(event["capability"])
        elif kind == "command_run":
            report.commands.append((event["at"], event["subject"]))
        elif kind == "activity":
            _count_activity(report, event)
        elif kind == "revoked" and event["capability"] in report.granted:
            report.granted = [c for c in report.granted if c != event["capability"]] + [
                f"{event['capability']} (revoked)"
            ]
        elif kind == "ended":
            report.ended_at = _time(event["at"])
            report.ended_by = event["ended_by"]
            report.reason = event["reason"]
            report.detail = event.get("detail", "")
    return report


def _count_activity(report: SessionReport, event: dict[str, Any]) -> None:
    """One activity the agent reported (the session's ``report`` logs each as it sends it)."""
    what, subject, zone = event.get("kind"), str(event.get("subject", "")), event.get("zone")
    if what == ActivityKind.FILE_READ:
        report.files_read.append((subject, int(event.get("size") or 0)))
    elif what == ActivityKind.FILE_WRITTEN:
        report.files_written.append((subject, int(event.get("size") or 0)))
    elif what == ActivityKind.ZONE_ALLOWED and zone and zone not in report.zones_opened:
        report.zones_opened.append(zone)
    elif (what in (ActivityKind.ZONE_REFUSED, ActivityKind.ZONE_DENIED) and zone
          and zone not in report.zones_refused):
        report.zones_refused.append(zone)
    elif what == ActivityKind.DIAGNOSTICS_COLLECTED:
        report.diagnostics_sent += 1
    elif what == ActivityKind.CLIPBOARD_SET:
        report.clipboard_set += 1
    elif what == ActivityKind.CLIPBOARD_READ:
        report.clipboard_read += 1
    elif what == ActivityKind.RUNBOOK_RUN and event.get("runbook_id"):
        report.runbooks_run.append((str(event["runbook_id"]), event.get("exit_code")))


def _clock(moment: datetime | None) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S %Z") if moment else "-"



def render_report(console: Console, report: SessionReport) -> None:
    seconds = int(report.duration_seconds)
    recorded = "?" if report.recorded is None else ("yes" if report.recorded else "no")
    lines = [
        "Session report",
        f"Support session: {report.support_session_id}",
        f"Technician: {report.technician} ({report.organisation})",
        f"Started: {_clock(report.started_at) if report.started_at else 'never started'}",
        f"Ended: {_clock(report.ended_at)}",
        f"Duration: {seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}",
        f"Capabilities granted: {', '.join(report.granted) or 'none'}",
        f"Capabilities used: {', '.join(report.used) or 'none'}",
        f"Commands run: {len(report.commands)}",
        *(f"  {at}  {subject}" for at, subject in report.commands),
        f"Files read: {len(report.files_read)}",
        *(f"  {path} ({size} bytes)" for path, size in report.files_read),
        f"Files written: {len(report.files_written)}",
        *(f"  {path} ({size} bytes)" for path, size in report.files_written),
        f"Personal folders opened: {', '.join(report.zones_opened) or 'none'}"
        + (f" (refused: {', '.join(report.zones_refused)})" if report.zones_refused else ""),
        f"Diagnostics sent: {report.diagnostics_sent}",
        *([f"Clipboard: {report.clipboard_set} put on the device, {report.clipboard_read} read"]
          if report.clipboard_set or report.clipboard_read else []),
        "Runbooks run: " + (", ".join(
            f"{rid} ({'stopped at its time limit' if code is None else f'exit {code}'})"
            for rid, code in report.runbooks_run) or "none"),
        f"Recorded: {recorded}",
        f"End reason: {report.reason} (by {report.ended_by})"
        + (f": {report.detail}" if report.detail else ""),
    ]
    console.rule("Session report", style="bold")
    for line in lines[1:]:
        console.print(line, markup=False, highlight=False)
    console.rule(style="bold")


def differences(own: SessionReport, server: ServerReport) -> list[str]:
    """Where the server's report disagrees with this device's own log (empty: they agree).
    The device's log is what the person saw happen; a difference is worth telling them."""
    found: list[str] = []
    own_granted = {c.removesuffix(" (revoked)") for c in own.granted}
    own_revoked = {c.removesuffix(" (revoked)") for c in own.granted if c.endswith("(revoked)")}
    checks = [
        ("capabilities granted", sorted(own_granted), sorted(server.granted())),
        ("capabilities revoked", sorted(own_revoked), sorted(server.revoked())),
        ("capabilities used", sorted(own.used), sorted(server.used())),
        ("commands run", len(own.commands), server.commands_run),
        ("files read", len(own.files_read), server.files.read),
        ("files written", len(own.files_written), server.files.written),
        ("personal folders opened", sorted(own.zones_opened), sorted(server.zones_opened)),
        ("personal folders refused", sorted(own.zones_refused), sorted(server.zones_refused)),
        ("diagnostics sent", own.diagnostics_sent, server.diagnostics_sent),
        ("clipboard texts put", own.clipboard_set, server.clipboard_set),
        ("clipboard reads", own.clipboard_read, server.clipboard_read),
        ("runbooks run", [r for r, _ in own.runbooks_run],
         [n.runbook_id for n in server.runbooks_run]),
        ("recorded", own.recorded, server.recorded),
    ]
    for what, mine, theirs in checks:
        if mine != theirs:
            found.append(
                f"{what}: this device saw {_shown(mine)}, the server says {_shown(theirs)}"
            )
    return found


def mismatch_message(support_session_id: str, found: list[str]) -> SessionReportMismatch:
    """``session.report.mismatch`` for ``found`` (``differences``), within the wire's bounds."""
    return SessionReportMismatch(
        id=new_id(), support_session_id=support_session_id,
        differences=tuple(line[:500] for line in found[:32]),
    )  # fmt: skip


def _shown(value: object) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def render_server_report(console: Console, server: ServerReport, own: SessionReport) -> None:
    """The one report (the same the technician and the API show), then anything in it that this
    device's own log contradicts."""
    console.rule("Session report", style="bold")
    for line in render_lines(server, clock=_clock):
        console.print(line, markup=False, highlight=False)
    found = differences(own, server)
    if found:
        console.print("This device's own log differs from the server's report:", style="bold red")
        for line in found:
            console.print(f"  {line}", markup=False, highlight=False)
    else:
        console.print("This device's own log agrees with the report.", markup=False)
    console.rule(style="bold")
