"""The scripted mode of ``auxilio connect``: actions run in order once the E2E channel is up.

One action per ``--send`` option or per line of a ``--script`` file (blank lines and lines
starting with ``#`` are skipped)::

    chat:TEXT        send a chat message
    term:LINE        type LINE and Enter in the remote terminal (opened on first use), then
                     wait until its output has been quiet for a moment
    expect:TEXT      wait until TEXT has been received (chat or terminal), or fail
    wait:SECONDS     keep receiving for that long
    extend:MINUTES:REASON  ask for MINUTES more, with the reason the person will be shown
    end              end the support session (as the technician)

and the file, diagnostics and runbook steps of ``steps.py``: ``ls:PATH``,
``get:REMOTE=>LOCAL``, ``put:LOCAL=>REMOTE``, ``replace:LOCAL=>REMOTE``, ``diag:``,
``runbook:ID name=value ...`` and ``reason:TEXT``.

What arrives is printed with stable prefixes (``chat< ``, ``term< ``, ``state< ``) so that a test
or an automation can read it line by line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from auxilio.client.steps import StepError, ToolAction, parse_tool_step

# How long ``expect`` waits by default: the agent may be slow to spawn a shell on a loaded host.
DEFAULT_EXPECT_SECONDS = 20.0
MAX_WAIT_SECONDS = 3600.0


class ScriptError(ValueError):
    """An action that cannot be understood; the message names where it came from."""


@dataclass(frozen=True, slots=True)
class SendChat:
    text: str


@dataclass(frozen=True, slots=True)
class RunCommand:
    line: str


@dataclass(frozen=True, slots=True)
class Expect:
    text: str
    timeout: float = DEFAULT_EXPECT_SECONDS


@dataclass(frozen=True, slots=True)
class Wait:
    seconds: float


@dataclass(frozen=True, slots=True)
class Extend:
    minutes: int
    reason: str


@dataclass(frozen=True, slots=True)
class End:
    pass


Action = SendChat | RunCommand | Expect | Wait | Extend | End | ToolAction
MAX_EXTEND_MINUTES = 24 * 60


def _seconds(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ScriptError(f"{where}: {text!r} is not a number of seconds") from None
    if not 0 <= value <= MAX_WAIT_SECONDS:
        raise ScriptError(f"{where}: wait between 0 and {MAX_WAIT_SECONDS:.0f} seconds")
    return value


def parse_action(text: str, *, where: str = "--send") -> Action:
    """Parse one action; ``where`` names its origin in the error message."""
    stripped = text.strip()
    if stripped == "end":
        return End()
    verb, sep, argument = stripped.partition(":")
    try:
        tool = parse_tool_step(verb, argument if sep else None)
    except StepError as exc:
        raise ScriptError(f"{where}: {exc}") from None
    if tool is not None:
        return tool
    if not sep:
        raise ScriptError(
            f"{where}: {text!r} is not an action; use chat:TEXT, term:LINE, expect:TEXT, "
            "wait:SECONDS, extend:MINUTES:REASON, ls:PATH, get:REMOTE=>LOCAL, "
            "put:LOCAL=>REMOTE, replace:LOCAL=>REMOTE, diag:, runbook:ID name=value..., "
            "reason:TEXT or end"
        )
    if verb == "chat":
        if not argument.strip():
            raise ScriptError(f"{where}: an empty chat message")
        return SendChat(argument)
    if verb == "term":
        return RunCommand(argument)
    if verb == "expect":
        if not argument:
            raise ScriptError(f"{where}: expect needs the text to wait for")
        return Expect(argument)
    if verb == "wait":
        return Wait(_seconds(argument, where))
    if verb == "extend":
        minutes, sep, reason = argument.partition(":")
        if not sep or not reason.strip():
            raise ScriptError(f"{where}: extend needs MINUTES:REASON (the person is shown why)")
        if not minutes.isdigit() or not 1 <= int(minutes) <= MAX_EXTEND_MINUTES:
            raise ScriptError(f"{where}: extend by 1 to {MAX_EXTEND_MINUTES} whole minutes")
        return Extend(int(minutes), reason.strip())
    raise ScriptError(f"{where}: unknown action {verb!r}")


def parse_script(lines: Iterable[str], *, origin: str) -> list[Action]:
    actions: list[Action] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        actions.append(parse_action(line.rstrip("\n"), where=f"{origin}:{number}"))
    return actions


def load_actions(sends: Iterable[str], script: Path | None) -> list[Action]:
    """Actions from a script file first, then the ``--send`` options, in the order given."""
    actions: list[Action] = []
    if script is not None:
        try:
            text = script.read_text(encoding="utf-8")
        except OSError as exc:
            raise ScriptError(f"cannot read {script}: {exc.strerror}") from exc
        actions.extend(parse_script(text.splitlines(), origin=str(script)))
    actions.extend(
        parse_action(send, where=f"--send #{index}") for index, send in enumerate(sends, 1)
    )
    return actions
