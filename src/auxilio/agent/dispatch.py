"""What the technician's application messages do on the device, each behind the capability gate.

``gate(capability)`` is the session's single check (grant AND receipt, live, not revoked, session
active). A message for a capability that does not pass it is never acted on: it is shown to the
person as refused, logged, and a refused ``terminal.open`` is answered with ``terminal.exit``
(code 126) so the technician's client does not wait for a shell that will never come.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from auxilio.agent.capabilities import chat
from auxilio.agent.capabilities.terminal import TerminalExited, TerminalHost, choose_shell
from auxilio.agent.capabilities.terminal_commands import ObservedCommand, ShellReplaced
from auxilio.agent.channel import E2EChannel
from auxilio.agent.connection import ConnectionLost, Link, new_id
from auxilio.agent.feed import Feed
from auxilio.agent.sealing import seal_details
from auxilio.agent.state import ActivityLog
from auxilio.crypto.grants import Grant
from auxilio.protocol.app import (
    AppMessage,
    ChatMessage,
    TerminalExit,
    TerminalInput,
    TerminalOpen,
    TerminalResize,
)
from auxilio.protocol.frames import ActivityKind, ActivitySource, SessionActivity
from auxilio.protocol.types import Capability

REFUSED_EXIT_CODE = 126  # "cannot execute"
NOT_FOUND_EXIT_CODE = 127  # the shell the grant names does not exist here


class AppDispatcher:
    def __init__(
        self,
        *,
        gate: Callable[[Capability], bool],
        grant: Callable[[], Grant],
        channel: E2EChannel,
        link: Link,
        terminals: TerminalHost,
        feed: Feed,
        log: ActivityLog,
        clock: Callable[[], datetime],
    ) -> None:
        self._gate = gate
        self._grant = grant
        self._channel = channel
        self._link = link
        self.terminals = terminals
        self._feed = feed
        self._log = log
        self._clock = clock
        self.used: set[Capability] = set()

    async def handle(self, message: AppMessage) -> None:
        if isinstance(message, ChatMessage):
            if self._may(Capability.CHAT, "send a chat message"):
                await self.mark_used(Capability.CHAT)
                self._feed.chat(self._grant().technician_name, chat.printable(message))
        elif isinstance(message, TerminalOpen):
            await self._open_terminal(message)
        elif isinstance(message, TerminalInput):
            await self._terminal_input(message)
        elif isinstance(message, TerminalResize):
            if self._gate(Capability.TERMINAL):
                self.terminals.resize(message.terminal_id, message.cols, message.rows)
        elif isinstance(message, TerminalExit):
            self.terminals.kill(message.terminal_id)
        else:
            self._log.append("ignored", what=f"{message.type} from the technician")

    def _may(self, capability: Capability, what: str) -> bool:
        if self._gate(capability):
            return True
        self._feed.alert(f"Refused: the technician tried to {what}; {capability} is not allowed.")
        self._log.append("refused_request", capability=str(capability), what=what)
        return False

    async def _open_terminal(self, message: TerminalOpen) -> None:
        terminal_id = message.terminal_id
        if not self._may(Capability.TERMINAL, "open a terminal") or not self.terminals.can_open(
            terminal_id
        ):
            await self._channel.send(
                TerminalExit(terminal_id=terminal_id, exit_code=REFUSED_EXIT_CODE)
            )
            return
        item = self._grant().capability(Capability.TERMINAL, now=self._clock())
        shell = (
            choose_shell(item.limits.shell, item.limits.shells) if item is not None else None
        )
        if shell is None:
            self._feed.alert("Refused: no shell the policy approves exists on this device.")
            await self._channel.send(
                TerminalExit(terminal_id=terminal_id, exit_code=NOT_FOUND_EXIT_CODE)
            )
            return
        try:
            self.terminals.open(terminal_id, program=shell, cols=message.cols, rows=message.rows)
        except OSError as exc:
            self._feed.alert(f"Could not start the terminal ({shell}): {exc.strerror}")
            await self._channel.send(
                TerminalExit(terminal_id=terminal_id, exit_code=NOT_FOUND_EXIT_CODE)
            )
            return
        await self.mark_used(Capability.TERMINAL)
        self._feed.activity(f"The technician opened a terminal ({shell}).")
        await self.report(Capability.TERMINAL, ActivityKind.TERMINAL_OPENED, shell)

    async def _terminal_input(self, message: TerminalInput) -> None:
        if message.terminal_id not in self.terminals:
            self._log.append("ignored", what="input for a terminal that is not open")
            return
        if not self._gate(Capability.TERMINAL):
            await self.terminals.stop_all()
            return
        # Command lines come back through command_observed (keystrokes now, the shell's later).
        self.terminals.write(message.terminal_id, message.data)

    async def command_observed(self, command: ObservedCommand | ShellReplaced) -> None:
        """A command line seen in a terminal (``TerminalHost``'s ``on_command``, queued by the
        session): shown to the person, logged for their report, reported to the server."""
        if isinstance(command, ShellReplaced):
            self._feed.warning(
                f"The shell in the terminal was replaced by {command.program}: from now on its "
                "commands are shown as typed, and not at all where it edits lines itself."
            )
            self._log.append("shell_replaced", program=command.program)
            return
        if command.source is ActivitySource.KEYSTROKES:
            self._feed.activity(f"Technician typed (may differ from what ran): {command.text}")
        else:
            self._feed.activity(f"Technician ran: {command.text}")
        self._log.append("command_run", subject=command.text, source=str(command.source))
        await self.report(
            Capability.TERMINAL, ActivityKind.COMMAND_RUN, command.text, source=command.source
        )

    async def terminal_exited(self, terminal_id: int, exited: TerminalExited) -> None:
        if not self.terminals.forget(terminal_id):
            return
        self._feed.activity("The terminal closed.")
        await self._channel.send(
            TerminalExit(terminal_id=terminal_id, exit_code=exited.exit_code, signal=exited.signal)
        )
        await self.report(Capability.TERMINAL, ActivityKind.TERMINAL_CLOSED, str(terminal_id))

    async def report(
        self,
        capability: Capability,
        kind: ActivityKind,
        subject: str,
        *,
        source: ActivitySource | None = None,
    ) -> None:
        """``session.activity`` to the server (audited there). The person's feed and log keep
        ``subject`` in clear; the server gets it only sealed to the grant's auditor key, and not
        at all when the grant names none (kind, time, source and count still go)."""
        grant = self._grant()
        activity = SessionActivity(
            id=new_id(),
            support_session_id=grant.support_session_id,
            at=self._clock(),
            capability=capability,
            kind=kind,
            source=source,
            sealed_details=seal_details(grant, subject),
        )
        try:
            await self._link.send(activity)
        except ConnectionLost:
            self._log.append("dropped", what="session.activity")

    async def mark_used(self, capability: Capability) -> None:
        """The first use of ``capability`` in the session: logged here, and reported to the
        server (kind only), so that both reports count it the same."""
        if capability not in self.used:
            self.used.add(capability)
            self._log.append("capability_used", capability=str(capability))
            await self.report(capability, ActivityKind.CAPABILITY_USED, "")
