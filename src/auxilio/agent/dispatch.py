"""What the technician's application messages do on the device, each behind the capability gate.

``gate(capability)`` is the session's single check (grant AND receipt, live, not revoked, session
active). A message for a capability that does not pass it is never acted on: it is shown to the
person as refused, logged, and a refused ``terminal.open`` is answered with ``terminal.exit``
(code 126) so the technician's client does not wait for a shell that will never come.

Files, diagnostics and runbooks go to their handlers (``capabilities.files``, ``.diagnostics``,
``.runbooks``), made on first use with the session's one ``SessionServices``. The gate is passed
here first (a refused request is answered ``files.not_allowed`` / ``diagnostics.not_allowed`` /
``runbook.not_allowed``, shown and logged; chunks of a refused transfer are answered once); the
handler checks it again before each step. Each handler takes its messages in order from a queue
of its own, in a task of its own: a handler waiting for the person's answer or for the disk
never holds up the session's loop, which must stay free to take that answer. Messages the device
only ever sends (``files.listing``, ``diagnostics.report``, ``runbook.result``...) arriving here
are logged and ignored. Revoking a capability, its expiry and the session's end close its
handler: its task is cancelled (a question it waits on is withdrawn), what it had not yet taken
is refused, then ``close()`` stops its transfers or runs.

Flow control: when ``HIGH_WATER`` messages wait for one handler (an upload's chunks arriving
faster than the disk takes them) ``flowing`` is cleared and the session stops reading the
connection until every queue is down to ``LOW_WATER``, so the sender is slowed by the socket
rather than the device's memory filling. The person's lines and the window are read apart from
the connection: revoking, ending and answering still work meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from auxilio.agent.capabilities import chat
from auxilio.agent.capabilities.base import Activity, Ask, SessionServices
from auxilio.agent.capabilities.diagnostics import DiagnosticsHandler
from auxilio.agent.capabilities.files import FileHandler
from auxilio.agent.capabilities.runbooks import RunbookHandler
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
    DiagnosticsError,
    DiagnosticsRequest,
    FileChunk,
    FilesCancel,
    FilesDownload,
    FilesError,
    FilesList,
    FilesUpload,
    RunbookError,
    RunbookRun,
    TerminalExit,
    TerminalInput,
    TerminalOpen,
    TerminalResize,
)
from auxilio.protocol.clipboard import ClipboardError, ClipboardGet, ClipboardSet
from auxilio.protocol.frames import ActivityKind, ActivitySource, SessionActivity
from auxilio.protocol.remote_control import InputError, InputKey, InputPointer
from auxilio.protocol.screen import (
    ScreenAck,
    ScreenError,
    ScreenKeyframeRequest,
    ScreenMonitorSelect,
    ScreenStart,
    ScreenStop,
)
from auxilio.protocol.types import Capability

REFUSED_EXIT_CODE = 126  # "cannot execute"
NOT_FOUND_EXIT_CODE = 127  # the shell the grant names does not exist here
logger = logging.getLogger(__name__)
HIGH_WATER = 64  # messages waiting for one handler (64 chunks: 16 MiB)
LOW_WATER = 16


class CapabilityHandler(Protocol):
    async def handle(self, message: AppMessage) -> None: ...
    async def close(self) -> None: ...


@runtime_checkable
class PausableHandler(CapabilityHandler, Protocol):
    """A handler the person can pause and resume (the screen view)."""

    paused: bool

    async def set_paused(self, paused: bool) -> None: ...

    async def viewer_gone(self) -> None:
        """The technician's connection dropped: stop sending, without a word."""


HandlerFactory = Callable[[SessionServices], CapabilityHandler]
# What the technician may send each handler, and how the person is told what was asked.
_ROUTED: dict[type[AppMessage], tuple[Capability, str]] = {
    FilesList: (Capability.FILES, "list a folder"),
    FilesDownload: (Capability.FILES, "copy a file from this device"),
    FilesUpload: (Capability.FILES, "copy a file to this device"),
    FilesCancel: (Capability.FILES, ""),  # "" : not a request, refused quietly
    FileChunk: (Capability.FILES, ""),
    DiagnosticsRequest: (Capability.DIAGNOSTICS, "collect a diagnostics report"),
    RunbookRun: (Capability.RUNBOOKS, "run a repair script"),
    ScreenStart: (Capability.SCREEN, "see your screen"),
    ScreenAck: (Capability.SCREEN, ""),
    ScreenKeyframeRequest: (Capability.SCREEN, ""),
    ScreenMonitorSelect: (Capability.SCREEN, ""),
    ScreenStop: (Capability.SCREEN, ""),
    # Refused quietly: one line per pointer move would flood the person's feed.
    InputPointer: (Capability.INPUT, ""),
    InputKey: (Capability.INPUT, ""),
    ClipboardSet: (Capability.CLIPBOARD, "put text on your clipboard"),
    ClipboardGet: (Capability.CLIPBOARD, "read your clipboard"),
}


def default_handlers(
    *, server_key: Ed25519PublicKey, server_url: str | None
) -> dict[Capability, HandlerFactory]:
    """The real handlers: runbooks verified with the pinned server key, diagnostics checking
    the way to ``server_url``."""
    return {
        Capability.FILES: FileHandler,
        Capability.DIAGNOSTICS: lambda s: DiagnosticsHandler(s, server_url=server_url),
        Capability.RUNBOOKS: lambda s: RunbookHandler(s, server_key=server_key),
        Capability.SCREEN: _screen_handler,
        Capability.INPUT: _input_handler,
        Capability.CLIPBOARD: _clipboard_handler,
    }


def _screen_handler(services: SessionServices) -> CapabilityHandler:
    # The screen extra (mss, PyAV, numpy, python-xlib) is imported only when a view starts;
    # capability discovery announces screen only where it imports and the desktop allows it.
    from auxilio.agent.capabilities.screen import ScreenHandler

    return ScreenHandler(services)


def _input_handler(services: SessionServices) -> CapabilityHandler:
    # Like the screen's: python-xlib is imported only when control starts.
    from auxilio.agent.capabilities.input import InputHandler

    return InputHandler(services)


def _clipboard_handler(services: SessionServices) -> CapabilityHandler:
    # Like the screen's: python-xlib is imported only when the clipboard is first used.
    from auxilio.agent.capabilities.clipboard import ClipboardHandler

    return ClipboardHandler(services)


def refusal(message: AppMessage, reason: str) -> AppMessage | None:
    """The answer that refuses ``message`` (``<channel>.<reason>``); None for a cancel."""
    if isinstance(message, FilesList):
        return FilesError(ref=message.request_id, code=f"files.{reason}")
    if isinstance(message, FilesDownload | FilesUpload | FileChunk):
        return FilesError(ref=message.transfer_id, code=f"files.{reason}")
    if isinstance(message, DiagnosticsRequest):
        return DiagnosticsError(ref=message.request_id, code=f"diagnostics.{reason}")
    if isinstance(message, RunbookRun):
        return RunbookError(ref=message.run_id, code=f"runbook.{reason}")
    if isinstance(message, ScreenStart):
        return ScreenError(code=f"screen.{reason}", message=f"screen view refused: {reason}")
    if isinstance(message, InputPointer | InputKey):
        return InputError(code=f"screen.input.{reason}", message=f"remote control: {reason}")
    if isinstance(message, ClipboardSet | ClipboardGet):
        code = f"screen.clipboard.{reason}"
        return ClipboardError(ref=message.request_id, code=code, message=f"clipboard: {reason}")
    return None


@dataclass(eq=False)
class _Route:
    """One handler, its queue, and the task that feeds it in order."""

    handler: CapabilityHandler
    inbox: asyncio.Queue[AppMessage] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None


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
        ask: Ask,
        handlers: Mapping[Capability, HandlerFactory],
        revoke_by_person: Callable[[Capability], None] | None = None,
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
        self._activity_seq = 0  # session.activity seq: 1, 2, 3... (the server audits a gap)
        self._factories = dict(handlers)
        self._routes: dict[Capability, _Route] = {}
        self._refused_transfers: set[int] = set()
        self.flowing = asyncio.Event()  # cleared: the session stops reading the connection
        self.flowing.set()
        # The one set of services every handler of the session gets.
        self.services = SessionServices(
            grant=grant, gate=gate, send=self._send, ask=ask, feed=feed, log=log,
            report=self.report, clock=clock, mark_used=self.mark_used, handler=self.handler,
            revoke_by_person=revoke_by_person,
        )  # fmt: skip

    async def handle(self, message: AppMessage) -> None:
        routed = _ROUTED.get(type(message))
        if routed is not None:
            await self._route(message, *routed)
        elif isinstance(message, ChatMessage):
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
        shell = choose_shell(item.limits.shell, item.limits.shells) if item is not None else None
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
        await self.report(Activity(Capability.TERMINAL, ActivityKind.TERMINAL_OPENED, shell))

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
            Activity(Capability.TERMINAL, ActivityKind.COMMAND_RUN, command.text),
            source=command.source,
        )

    async def terminal_exited(self, terminal_id: int, exited: TerminalExited) -> None:
        if not self.terminals.forget(terminal_id):
            return
        self._feed.activity("The terminal closed.")
        await self._channel.send(
            TerminalExit(terminal_id=terminal_id, exit_code=exited.exit_code, signal=exited.signal)
        )
        await self.report(
            Activity(Capability.TERMINAL, ActivityKind.TERMINAL_CLOSED, str(terminal_id))
        )

    async def report(self, activity: Activity, *, source: ActivitySource | None = None) -> None:
        """``session.activity`` to the server (audited there). The person's feed and log keep
        the subject (a command line, a path, a runbook and its parameters) in clear; the server
        gets it only sealed to the grant's auditor key, and not at all when the grant names
        none. Kind, time, source, size, SHA-256, zone, runbook id and exit code go in clear:
        what the audit counts and checks, never content."""
        grant = self._grant()
        self._activity_seq += 1
        message = SessionActivity(
            id=new_id(),
            seq=self._activity_seq,
            support_session_id=grant.support_session_id,
            at=self._clock(),
            capability=activity.capability,
            kind=activity.kind,
            source=source,
            sealed_details=seal_details(grant, activity.subject),
            size=activity.size,
            sha256=activity.sha256,
            zone=activity.zone,
            runbook_id=activity.runbook_id,
            exit_code=activity.exit_code,
        )
        # The device's own record of what it reported: the person's report counts these and
        # compares them with the server's (agent/report.py).
        self._log.append(
            "activity",
            kind=str(activity.kind),
            capability=str(activity.capability),
            subject=activity.subject,
            size=activity.size,
            zone=activity.zone,
            runbook_id=activity.runbook_id,
            exit_code=activity.exit_code,
        )
        try:
            await self._link.send(message)
        except ConnectionLost:
            self._log.append("dropped", what="session.activity")

    async def mark_used(self, capability: Capability) -> None:
        """The first use of ``capability`` in the session: logged here, and reported to the
        server (kind only), so that both reports count it the same."""
        if capability not in self.used:
            self.used.add(capability)
            self._log.append("capability_used", capability=str(capability))
            await self.report(Activity(capability, ActivityKind.CAPABILITY_USED))

    # -- files, diagnostics, runbooks: their handlers -----------------------------------------

    async def _send(self, message: AppMessage) -> None:
        # A handler's message with no channel (the technician reconnecting) is lost like any
        # other; the technician's client asks again.
        if not await self._channel.send(message):
            self._log.append("dropped", what=message.type)

    async def _route(self, message: AppMessage, capability: Capability, what: str) -> None:
        if not self._gate(capability):
            await self._refuse(message, capability, what, "not_allowed")
            return
        route = self._routes.get(capability)
        if route is None:
            factory = self._factories.get(capability)
            if factory is None:
                await self._refuse(message, capability, what, "unavailable")
                return
            route = self._routes[capability] = _Route(factory(self.services))
            route.task = asyncio.create_task(self._serve(capability, route))
        route.inbox.put_nowait(message)
        if route.inbox.qsize() >= HIGH_WATER:
            self.flowing.clear()

    async def _refuse(
        self, message: AppMessage, capability: Capability, what: str, reason: str
    ) -> None:
        """Shown (a request), logged and answered; a refused transfer's chunks, once."""
        if isinstance(message, FileChunk):
            if message.transfer_id in self._refused_transfers:
                return
            self._refused_transfers.add(message.transfer_id)
        if what and reason == "not_allowed":
            self._may(capability, what)  # shows and logs the refusal
        elif what:
            self._feed.alert(f"Refused: the technician tried to {what}; this device cannot.")
            self._log.append("unavailable", capability=str(capability), what=what)
        else:
            self._log.append("ignored", what=f"{message.type}: {capability} is not allowed")
        answer = refusal(message, reason)
        if answer is not None:
            await self._send(answer)

    async def _serve(self, capability: Capability, route: _Route) -> None:
        while True:
            message = await route.inbox.get()
            self._check_flow()
            try:
                await route.handler.handle(message)
            except Exception:
                # The task's boundary: nobody awaits it, so an error is written down here
                # (traceback in the agent's log, a line for the person, a failed answer), then
                # the handler takes its next message. Cancellation is not an Exception.
                logger.exception("the %s handler failed on %s", capability, message.type)
                self._feed.alert(f"{capability}: an internal error stopped {message.type}.")
                self._log.append("handler_failed", capability=str(capability), what=message.type)
                answer = refusal(message, "failed")
                if answer is not None:
                    await self._send(answer)

    async def close_capability(self, capability: Capability, *, answer: bool = True) -> None:
        """Stop ``capability``'s handler (revoked, expired, the session over). ``answer``: the
        requests it had not taken are answered ``<channel>.not_allowed``."""
        route = self._routes.pop(capability, None)
        if route is None:
            return
        if route.task is not None:
            route.task.cancel()
            await asyncio.wait({route.task})
        left = [route.inbox.get_nowait() for _ in range(route.inbox.qsize())]
        if answer:
            for message in left:
                await self._refuse(message, capability, "", "not_allowed")
        self._check_flow()
        await route.handler.close()
        self._log.append("handler_closed", capability=str(capability), not_taken=len(left))

    def _check_flow(self) -> None:
        if all(route.inbox.qsize() <= LOW_WATER for route in self._routes.values()):
            self.flowing.set()

    def handler(self, capability: Capability) -> CapabilityHandler | None:
        """The running handler of ``capability``, if it has one now."""
        route = self._routes.get(capability)
        return route.handler if route is not None else None

    async def close_unless_allowed(self) -> None:
        """Close the handler of every capability the gate no longer lets through (its own
        time ran out inside the grant)."""
        for capability in [c for c in self._routes if not self._gate(c)]:
            await self.close_capability(capability)

    async def close_all(self) -> None:
        for capability in list(self._routes):
            await self.close_capability(capability, answer=False)
