"""Clipboard transfers in the reports: the device counts its own (the activities it logged as it
reported them), the server counts the activities it audited, both reports show them and the
device names a difference."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from auxilio.agent.report import SessionReport, build_report, differences
from auxilio.protocol.frames import ActivityKind
from auxilio.protocol.report import SessionReport as ServerReport
from auxilio.protocol.report import render_lines
from auxilio.server.support_sessions.during import activity_facts

KINDS = [ActivityKind.CLIPBOARD_SET, ActivityKind.CLIPBOARD_READ, ActivityKind.CLIPBOARD_SET]


def _own() -> SessionReport:
    events = [
        {"event": "activity", "kind": str(kind), "capability": "clipboard", "size": 5}
        for kind in KINDS
    ]
    own = build_report(events)
    own.recorded = False
    return own


def _server() -> ServerReport:
    audited: list[Any] = [
        SimpleNamespace(kind=str(kind), size=5, zone=None, runbook_id=None, exit_code=None)
        for kind in KINDS
    ]
    return ServerReport.model_validate({
        "support_session_id": "ss-1", "technician_name": "Ana", "organisation_name": "Escuela",
        "state": "ended", **activity_facts(audited),
    })  # fmt: skip


def test_both_sides_count_the_same_transfers_and_agree() -> None:
    own, server = _own(), _server()
    assert (own.clipboard_set, own.clipboard_read) == (2, 1)
    assert (server.clipboard_set, server.clipboard_read) == (2, 1)
    assert differences(own, server) == []
    assert "Clipboard: 2 put on the device, 1 read" in render_lines(server)


def test_a_transfer_the_server_did_not_count_is_named() -> None:
    told = _server().model_copy(update={"clipboard_read": 0})
    assert differences(_own(), told) == ["clipboard reads: this device saw 1, the server says 0"]


def test_a_session_without_clipboard_transfers_has_no_clipboard_line() -> None:
    empty = ServerReport(
        support_session_id="ss-2", technician_name="Ana", organisation_name="Escuela", state="ended"
    )
    assert not any(line.startswith("Clipboard") for line in render_lines(empty))
