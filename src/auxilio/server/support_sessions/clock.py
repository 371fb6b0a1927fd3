"""The one clock of support sessions: every time limit, warning and expiry reads it, so a test
can move time by patching this function instead of waiting."""

from __future__ import annotations

from datetime import datetime

from auxilio.server.db.base import utcnow


def now() -> datetime:
    return utcnow()
