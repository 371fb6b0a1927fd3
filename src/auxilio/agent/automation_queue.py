"""The daemon's automated runs (issue 13): one at a time, from a bounded queue.

An order is whatever anyone on the way sent until ``automation.handle_order`` verifies it (the
pinned server's signature, this device, in time, never seen): only then does it enter the
owner's log. ``AUTOMATION_QUEUE`` orders wait their turn, one more is answered at once with a
signed ``automation.busy``; the journal tells of orders that do not verify at most once a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from auxilio.agent.connection import ConnectionLost, new_id
from auxilio.agent.errors import AgentError
from auxilio.agent.state import ActivityLog
from auxilio.crypto.automation import AutomationOrder
from auxilio.protocol.frames import AutomationRun, ErrorMessage

if TYPE_CHECKING:
    from auxilio.agent.daemon import Daemon

AUTOMATION_QUEUE = 8  # orders waiting while one runs; beyond it: automation.busy
QUIET_SECONDS = 60.0  # at most one journal line per minute for orders that do not verify


class AutomationQueue:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.orders: asyncio.Queue[AutomationRun] = asyncio.Queue(maxsize=AUTOMATION_QUEUE)
        self.worker: asyncio.Task[None] | None = None
        self.quiet_until = 0.0
        self.unsaid = 0  # refusals of unverified orders not told in the journal yet

    async def queue(self, message: AutomationRun) -> None:
        """One run at a time: the order waits its turn, or is refused ``automation.busy``."""
        try:
            self.orders.put_nowait(message)
        except asyncio.QueueFull:
            from auxilio.agent.automation import busy

            answer = busy(message.order, state=self.daemon.state)
            self.quiet(f"Automated run {answer.run_id} refused: automation.busy "
                       f"({AUTOMATION_QUEUE} orders wait already).")  # fmt: skip
            with contextlib.suppress(ConnectionLost):
                await self.daemon._send(answer)
            return
        if self.worker is None or self.worker.done():
            self.worker = asyncio.create_task(self._run_orders())
            self.daemon._tasks.add(self.worker)
            self.worker.add_done_callback(self.daemon._tasks.discard)

    async def _run_orders(self) -> None:
        while True:
            message = await self.orders.get()
            try:
                await self._run(message)
            except Exception as exc:  # one broken order never stops the next
                self.daemon.say(f"Automated run failed on the device: {type(exc).__name__}: {exc}")

    def quiet(self, text: str) -> None:
        """A journal line for what anyone on the way can send: at most one a minute."""
        now = asyncio.get_running_loop().time()
        if now < self.quiet_until:
            self.unsaid += 1
            return
        more = f" ({self.unsaid} more like it not shown)" if self.unsaid else ""
        self.daemon.say(text + more)
        self.unsaid, self.quiet_until = 0, now + QUIET_SECONDS

    async def _run(self, message: AutomationRun) -> None:
        daemon = self.daemon
        pinned, enrolment = daemon._pinned, daemon._enrolment
        assert pinned is not None and enrolment is not None  # noqa: S101
        from auxilio.agent import automation

        handle: Callable[..., Awaitable[Any]] = automation.handle_order
        log: ActivityLog | None = None
        order: AutomationOrder | None = None

        def verified(checked: AutomationOrder) -> None:
            # Only now (the pinned server's signature, this device, in time, never seen) is the
            # run the owner's business: before, it is whatever someone on the way sent.
            nonlocal log, order
            order = checked
            daemon.local_log.started(checked.run_id, mode="automated",
                                     capabilities=[checked.kind],
                                     pre_authorisation_id=checked.pre_authorisation_id,
                                     organisation=checked.ticket_ref)  # fmt: skip
            log = daemon.state.session_log(checked.run_id)
            log.append("automation_order", run_id=checked.run_id, kind=checked.kind,
                       pre_authorisation_id=checked.pre_authorisation_id,
                       ticket_ref=checked.ticket_ref)  # fmt: skip

        def ended(reason: str, detail: str = "") -> None:
            if log is not None and order is not None:
                log.append("ended", ended_by="agent", reason=reason, detail=detail)
                daemon.local_log.ended(order.run_id, reason=reason, ended_by="agent",
                                       detail=detail)  # fmt: skip

        try:
            result = await handle(message.order, state=daemon.state, access=daemon.access,
                                  server_public_key=pinned.public_key,
                                  device_id=enrolment.device_id,
                                  on_verified=verified)  # fmt: skip
        except AgentError as exc:
            ended(exc.code, exc.message)
            with contextlib.suppress(ConnectionLost):
                await daemon._send(ErrorMessage(id=new_id(), code=exc.code,
                                                message=exc.message, ref=message.id))  # fmt: skip
            return
        status, code = "sent", ""
        with contextlib.suppress(Exception):
            from auxilio.crypto.automation import verify_outcome

            outcome = verify_outcome(daemon.state.device_public_key, result.result)
            status = outcome.status
            code = outcome.code or (f"exit {outcome.exit_code}" if outcome.exit_code is not None
                                    else "")  # fmt: skip
        if order is None:
            self.quiet(f"Refused an automation order that does not verify: {status} "
                       f"{code}".rstrip())  # fmt: skip
        else:
            assert log is not None  # noqa: S101 - set with order
            log.append("automation_result", run_id=order.run_id, status=status, code=code)
            ended(status, code)
            daemon.say(f"Automated run {order.run_id} ({order.kind}): {status} {code}".rstrip())
        with contextlib.suppress(ConnectionLost):
            await daemon._send(result)
