from __future__ import annotations

from pathlib import Path

from auxilio.server.audit.actions import DESCRIPTIONS, AuditAction
from auxilio.server.audit.docs import render_audit_events

ROOT = Path(__file__).resolve().parents[2]


def test_every_audit_action_is_described_and_shaped_resource_subject_action() -> None:
    for action in AuditAction:
        assert action in DESCRIPTIONS, action
        assert len(action.value.split(":")) == 3, action


def test_docs_audit_events_is_up_to_date() -> None:
    committed = (ROOT / "docs" / "audit-events.md").read_text(encoding="utf-8")
    assert committed == render_audit_events(), "run: auxilio admin audit-events-doc"
