"""Renders docs/audit-events.md from the AuditAction enum, so the two never drift."""

from __future__ import annotations

from itertools import groupby

from auxilio.server.audit.actions import DESCRIPTIONS, AuditAction

HEADER = """# Audit events

Generated from `auxilio.server.audit.actions.AuditAction` by
`auxilio admin audit-events-doc`; do not edit by hand. A test fails when this file is stale.

Every event is shaped `resource:subject:action`; a value never changes once shipped. Each event
carries: `seq` (position in its organisation's chain), `occurred_at` (UTC), `organisation_id`,
`actor_id` and a copy of the actor's display name, `client_addr`, `action`, `target_type`,
`target_id`, `request_id` and `details`. The chain: `hash = SHA-256(prev_hash || canonical(event))`,
canonical = JSON with sorted keys, no whitespace, UTF-8. Signed checkpoints (Ed25519) every N
events or T seconds. See THREAT_MODEL.md for what this protects.
"""


def render_audit_events() -> str:
    lines = [HEADER]
    for resource, actions in groupby(
        sorted(AuditAction, key=str), key=lambda a: a.value.split(":")[0]
    ):
        lines.append(f"\n## {resource}\n\n| action | when |\n|---|---|")
        for action in actions:
            lines.append(f"| `{action.value}` | {DESCRIPTIONS.get(action, '')} |")
    return "\n".join(lines) + "\n"
