"""Digests of what the device sent the technician (end-to-end), so that a result the
technician's client attaches to the ticket can be checked against what the device reported.

The device reports each diagnostics report and runbook result it sends as a ``session.activity``
with the SHA-256 below (the content itself never reaches the server through the session). An
attachment naming the session is ``verified`` when its content has a digest the device reported.
Both sides compute the digest over the same canonical JSON: sorted keys, no spaces, ASCII.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

# The fields of a runbook.result that its digest covers (protocol.app.RunbookResult, less type).
RUNBOOK_RESULT_FIELDS = ("run_id", "runbook_id", "version", "exit_code", "timed_out",
                         "duration_ms", "stdout", "stderr", "truncated")  # fmt: skip


def canonical_bytes(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


def diagnostics_digest(report: Mapping[str, Any]) -> str:
    """Of a ``diagnostics.report``'s ``report`` object."""
    return hashlib.sha256(canonical_bytes(report)).hexdigest()


def runbook_result_digest(result: Mapping[str, Any]) -> str:
    """Of a ``runbook.result`` (its fields as JSON values; missing ones count as null)."""
    return hashlib.sha256(
        canonical_bytes({name: result.get(name) for name in RUNBOOK_RESULT_FIELDS})
    ).hexdigest()
