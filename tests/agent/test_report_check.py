"""The agent checks the server's one report against its own log and names every difference."""

from __future__ import annotations

from datetime import UTC, datetime

from auxilio.agent.report import SessionReport, differences
from auxilio.protocol.report import CapabilityUse
from auxilio.protocol.report import SessionReport as ServerReport
from auxilio.protocol.types import Capability

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _server(**overrides: object) -> ServerReport:
    fields: dict[str, object] = {
        "support_session_id": "ss-1", "technician_name": "Ana", "organisation_name": "Escuela",
        "state": "ended", "recorded": True, "commands_run": 1,
        "capabilities": (
            CapabilityUse(capability=Capability.CHAT, granted=True, used=True),
            CapabilityUse(capability=Capability.TERMINAL, granted=True, used=True, revoked_at=AT,
                          revoked_by="end_user"),
        ),
    }  # fmt: skip
    fields.update(overrides)
    return ServerReport.model_validate(fields)


def _own() -> SessionReport:
    return SessionReport(granted=["chat", "terminal (revoked)"], used=["chat", "terminal"],
                         commands=[("09:01", "echo hi")], recorded=True)  # fmt: skip


def test_a_report_that_matches_the_devices_log_raises_nothing() -> None:
    assert differences(_own(), _server()) == []


def test_each_field_that_differs_is_named_with_both_values() -> None:
    # The observed mismatch: the server said granted "chat" (the revoked terminal gone),
    # used "terminal" (chat not counted).
    told = _server(
        commands_run=3, recorded=False,
        capabilities=(
            CapabilityUse(capability=Capability.CHAT, granted=True, used=False),
            CapabilityUse(capability=Capability.TERMINAL, granted=False, used=True),
        ),
    )  # fmt: skip
    found = differences(_own(), told)
    assert found == [
        "capabilities granted: this device saw chat, terminal, the server says chat",
        "capabilities revoked: this device saw terminal, the server says none",
        "capabilities used: this device saw chat, terminal, the server says terminal",
        "commands run: this device saw 1, the server says 3",
        "recorded: this device saw yes, the server says no",
    ]
