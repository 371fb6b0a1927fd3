"""After a declaration commits: every support session it ended is announced to its peers
(``SupportSessionRuntime.announce_ends``): ``session.end`` with reason ``emergency`` to the device
and the technician of every session first, the technicians' connections closed, then each
device's signed report and the close of its connection. Sessions on other nodes hear it through
the bus, like any relayed frame."""

from __future__ import annotations

from auxilio.server.support_sessions.models import SupportSession
from auxilio.server.support_sessions.runtime import SupportSessionRuntime


async def announce_ended(runtime: SupportSessionRuntime, ended: list[SupportSession]) -> None:
    """Tell the peers of every ended session; returns once every ``session.end`` is sent (the
    reports follow in the background)."""
    await runtime.announce_ends(ended)
