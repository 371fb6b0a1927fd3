"""The person's own report counts files, zones, diagnostics and runbooks from the activities the
agent sent, and tells the person where the server's report says otherwise."""

from __future__ import annotations

from datetime import UTC, datetime

from auxilio.agent.report import build_report, differences
from auxilio.protocol.report import FileFacts, RunbookRunNote, SessionReport

AT = "2026-12-01T10:00:00+00:00"


def events() -> list[dict[str, object]]:
    def act(kind: str, **facts: object) -> dict[str, object]:
        return {"at": AT, "event": "activity", "kind": kind, **facts}

    return [
        {"at": AT, "event": "offered", "support_session_id": "s1", "technician_name": "Ana",
         "organisation_name": "Org", "recorded": False},
        {"at": AT, "event": "activated", "granted": ["files", "runbooks"]},
        act("file_read", subject="/home/p/Documents/taxes.txt", size=8),
        act("zone_refused", zone="pictures", subject="/home/p/Pictures"),
        act("zone_allowed", zone="documents", subject="/home/p/Documents/taxes.txt"),
        act("file_written", subject="/tmp/fix.sh", size=20),
        act("diagnostics_collected", size=900),
        act("runbook_run", runbook_id="flush-dns", exit_code=0, subject="Flush DNS"),
        {"at": AT, "event": "ended", "ended_by": "end_user", "reason": "user_ended"},
    ]


def server_report(**overrides: object) -> SessionReport:
    base: dict[str, object] = {
        "support_session_id": "s1", "technician_name": "Ana", "organisation_name": "Org",
        "state": "ended", "started_at": datetime(2026, 12, 1, 10, tzinfo=UTC),
        "files": FileFacts(read=1, read_bytes=8, written=1, written_bytes=20),
        "zones_opened": ("documents",), "zones_refused": ("pictures",), "diagnostics_sent": 1,
        "runbooks_run": (RunbookRunNote(runbook_id="flush-dns", exit_code=0),),
    }  # fmt: skip
    return SessionReport.model_validate({**base, **overrides})


def test_the_own_report_lists_the_files_by_name_and_counts_the_rest() -> None:
    own = build_report(events())
    assert own.files_read == [("/home/p/Documents/taxes.txt", 8)]
    assert own.files_written == [("/tmp/fix.sh", 20)]
    assert own.zones_opened == ["documents"] and own.zones_refused == ["pictures"]
    assert own.diagnostics_sent == 1 and own.runbooks_run == [("flush-dns", 0)]


def test_agreeing_reports_have_no_differences_and_each_disagreement_is_named() -> None:
    own = build_report(events())
    mine = [d for d in differences(own, server_report())
            if not d.startswith(("capabilities", "recorded"))]
    assert mine == []
    told = differences(own, server_report(
        files=FileFacts(read=3), zones_opened=(), diagnostics_sent=0, runbooks_run=()))
    joined = "\n".join(told)
    for what in ("files read: this device saw 1, the server says 3",
                 "personal folders opened: this device saw documents, the server says none",
                 "diagnostics sent", "runbooks run"):
        assert what in joined
