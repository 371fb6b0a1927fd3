"""Runs the actions of the scripted mode (``script.py``) against an attached session."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from auxilio.client.output import clean_terminal_text
from auxilio.client.script import Action, End, Expect, Extend, RunCommand, SendChat, Wait
from auxilio.client.session import TechnicianSession
from auxilio.client.steps import TOOL_ACTIONS, run_step

SCRIPT_COLS, SCRIPT_ROWS = 120, 40
# A command's output is taken as complete once the terminal has been quiet this long; a prompt
# redraw arrives well within it on loopback and on a normal WAN.
QUIET_SECONDS = 0.8
COMMAND_MAX_SECONDS = 15.0


class ScriptRunner:
    def __init__(self, actions: Sequence[Action]) -> None:
        self.actions = list(actions)
        self._cursor = 0  # position in the received stream already matched by ``expect``

    async def __call__(self, session: TechnicianSession) -> None:
        for action in self.actions:
            if session.ended.is_set():
                return
            await self._run(session, action)

    async def _run(self, session: TechnicianSession, action: Action) -> None:
        match action:
            case SendChat(text=text):
                await session.send_chat(text)
            case RunCommand(line=line):
                if not session.terminal_open:
                    await session.open_terminal(SCRIPT_COLS, SCRIPT_ROWS)
                await session.terminal_input(line.encode() + b"\r")
                await self._quiet(session)
            case Expect(text=text, timeout=timeout):
                await self._expect(session, text, wait_seconds=timeout)
            case Wait(seconds=seconds):
                await _sleep_unless_ended(session, seconds)
                session.output.flush_term()
            case Extend(minutes=minutes, reason=reason):
                await session.request_extension(minutes, reason)
            case End():
                session.output.flush_term()
                await session.end()
            case _ if isinstance(action, TOOL_ACTIONS):
                session.output.flush_term()
                await run_step(session, action)

    async def _quiet(self, session: TechnicianSession) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        while not session.ended.is_set() and loop.time() - started < COMMAND_MAX_SECONDS:
            await asyncio.sleep(QUIET_SECONDS / 4)
            last = max(session.last_terminal_output, started)
            if loop.time() - last >= QUIET_SECONDS:
                break
        session.output.flush_term()

    async def _expect(self, session: TechnicianSession, text: str, *, wait_seconds: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        while True:
            # The session keeps only a tail of what it received; map our cursor into it.
            start_of_tail = session.received_total - len(session.received_text)
            offset = max(0, self._cursor - start_of_tail)
            haystack = clean_terminal_text(session.received_text[offset:])
            found = haystack.find(text)
            if found >= 0:
                self._cursor = session.received_total
                return
            remaining = deadline - loop.time()
            if remaining <= 0 or session.ended.is_set():
                session.output.error(f"script.expect_failed: did not receive {text!r}")
                await session.end()
                session.mark_failed("script.expect_failed")
                return
            session.received.clear()
            try:
                await asyncio.wait_for(session.received.wait(), remaining)
            except TimeoutError:
                continue


async def _sleep_unless_ended(session: TechnicianSession, seconds: float) -> None:
    try:
        await asyncio.wait_for(session.ended.wait(), seconds)
    except TimeoutError:
        return
