"""The log the owner reads (``auxilio agent log``): every unattended session and automated run.

    <state_dir>/log.jsonl        0600, append-only: one "started" and one "ended" line per
                                 session or run (id, mode, technician, organisation,
                                 capabilities, pre-authorisation, times, end reason)
    <state_dir>/sessions/<id>.jsonl  the per-session log (agent/state.py), the report's source

The report shown for one entry is built from its own session log (``agent/report.py``), the
same report an attended session shows; the index only lists.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from auxilio.agent.state import AgentState


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


@dataclass
class LogEntry:
    id: str
    mode: str  # unattended | automated | refused
    started_at: str
    technician: str = ""
    organisation: str = ""
    capabilities: list[str] = field(default_factory=list)
    pre_authorisation_id: str = ""
    ended_at: str | None = None
    reason: str = ""
    ended_by: str = ""
    detail: str = ""

    @property
    def duration_seconds(self) -> float | None:
        if self.ended_at is None:
            return None
        start = datetime.fromisoformat(self.started_at.replace("Z", "+00:00"))
        end = datetime.fromisoformat(self.ended_at.replace("Z", "+00:00"))
        return max(0.0, (end - start).total_seconds())


class LocalLog:
    def __init__(self, state: AgentState) -> None:
        self.state = state
        self.path = state.root / "log.jsonl"

    def _append(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, default=str)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a") as handle:
            handle.write(line + "\n")

    def started(
        self,
        entry_id: str,
        *,
        mode: str,
        technician: str = "",
        organisation: str = "",
        capabilities: list[str] | None = None,
        pre_authorisation_id: str = "",
    ) -> None:
        self._append({"event": "started", "id": entry_id, "at": _now(), "mode": mode,
                      "technician": technician, "organisation": organisation,
                      "capabilities": capabilities or [],
                      "pre_authorisation_id": pre_authorisation_id})  # fmt: skip

    def ended(self, entry_id: str, *, reason: str, ended_by: str = "", detail: str = "") -> None:
        self._append({"event": "ended", "id": entry_id, "at": _now(), "reason": reason,
                      "ended_by": ended_by, "detail": detail})  # fmt: skip

    def entries(self) -> list[LogEntry]:
        """Oldest first; a line that does not parse is skipped (a crash mid-write)."""
        if not self.path.exists():
            return []
        found: dict[str, LogEntry] = {}
        for raw in self.path.read_text().splitlines():
            try:
                record = json.loads(raw)
                entry_id = str(record["id"])
                if record["event"] == "started":
                    found[entry_id] = LogEntry(
                        id=entry_id, mode=str(record["mode"]), started_at=str(record["at"]),
                        technician=str(record.get("technician", "")),
                        organisation=str(record.get("organisation", "")),
                        capabilities=[str(c) for c in record.get("capabilities", [])],
                        pre_authorisation_id=str(record.get("pre_authorisation_id", "")),
                    )  # fmt: skip
                elif record["event"] == "ended" and entry_id in found:
                    entry = found[entry_id]
                    entry.ended_at = str(record["at"])
                    entry.reason = str(record.get("reason", ""))
                    entry.ended_by = str(record.get("ended_by", ""))
                    entry.detail = str(record.get("detail", ""))
            except (ValueError, KeyError, TypeError):
                continue
        return list(found.values())

    def get(self, entry_id: str) -> LogEntry | None:
        matches = [e for e in self.entries() if e.id == entry_id or e.id.startswith(entry_id)]
        return matches[0] if len(matches) == 1 else None
