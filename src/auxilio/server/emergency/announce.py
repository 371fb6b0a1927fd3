"""After a declaration commits: every support session it ended is announced to its peers, as any
end is (``session.end`` with reason ``emergency``, the one report to the agent, then the
connections close). Sessions on other nodes hear it through the bus, like any relayed frame."""

from __future__ import annotations

import logging

from auxilio.server.support_sessions.models import SupportSession
from auxilio.server.support_sessions.runtime import SupportSessionRuntime

log = logging.getLogger("auxilio.emergency")


async def announce_ended(runtime: SupportSessionRuntime, ended: list[SupportSession]) -> int:
    """Tell the peers of every ended session; the number told. One failure (a peer's queue, a
    report that cannot be built) is logged and never stops the others from being told."""
    told = 0
    for row in ended:
        try:
            await runtime.announce_end(row)
            told += 1
        except Exception:  # every other session must still hear of the end
            log.exception("could not announce the emergency end of support session %s", row.id)
    return told
