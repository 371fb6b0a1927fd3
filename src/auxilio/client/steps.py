"""File, diagnostics and runbook steps: one meaning, written two ways.

Scripted (``--send`` / ``--script``, parsed by ``parse_tool_step`` for ``script.py``)::

    ls:PATH                      list a directory on the device
    get:REMOTE=>LOCAL            download (LOCAL optional: the file's name here); resumes a
                                 LOCAL.part left by an interrupted download
    put:LOCAL=>REMOTE            upload; the device resumes a partial upload
    replace:LOCAL=>REMOTE        upload over an existing file
    diag:                        ask for the diagnostics report
    runbook:ID name=value ...    run an approved runbook (values with spaces in "quotes")
    reason:TEXT                  the stated reason for the next request (the person sees it
                                 when that request enters a personal-data zone)

Interactive (``parse_command``): ``/ls PATH``, ``/get REMOTE [LOCAL]``, ``/put LOCAL REMOTE``,
``/replace LOCAL REMOTE``, ``/diag``, ``/runbook ID [name=value ...]``, each with an optional
``--reason "TEXT"``, and ``/reason TEXT``. Words are split as a shell would, except that a
backslash is an ordinary character (Windows paths).

A stated reason is used once: it goes with the next request, and a later one into another zone
needs its own, so the person is never shown a reason that was given for something else.

What a step receives is printed with the prefixes ``files< ``, ``diag< ``, ``runbook< `` (and
``error< CODE: ...`` when it fails), and an ``expect:`` step can wait for those lines too. A
failed step does not stop a script: the person refusing a zone leaves the session going.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from websockets.exceptions import ConnectionClosed

from auxilio.client.tools import ToolError
from auxilio.protocol.app import DiagnosticsReport, FilesListing, RunbookResult

if TYPE_CHECKING:
    from auxilio.client.session import TechnicianSession

MAX_REASON = 2000
MAX_PARAMETERS = 32
_RUNBOOK_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_PARAMETER = re.compile(r"^([a-z][a-z0-9_]{0,31})=(.*)$", re.DOTALL)
# Lines of a runbook's output shown per stream; the whole output goes to the ticket.
SHOWN_OUTPUT_LINES = 200
# What the technician can do about a refusal, by code.
HINTS = {
    "files.reason_required": "state a reason: --reason TEXT or /reason TEXT (reason:TEXT in a "
    "script); the person is shown it",
    "files.zone_refused": "the person said no; the rest of the session goes on",
    "files.exists": "replace:LOCAL=>REMOTE or /replace overwrites it",
    "files.disk_full": "once there is room, the same put resumes where it stopped",
    "files.bad_offset": "for a download, delete LOCAL.part to start over",
    "diagnostics.withheld": "the person chose not to send the report",
    "capability.not_granted": "request it with --capability when opening the session",
    "files.not_allowed": "files are not granted in this session, or were revoked",
    "diagnostics.not_allowed": "diagnostics are not granted in this session, or were revoked",
    "runbook.not_allowed": "runbooks are not granted in this session, or were revoked",
    "diagnostics.busy": "a report is being prepared; wait for it",
    "runbook.busy": "one runbook runs at a time; wait for its result",
}


class StepError(ValueError):
    """A step or command that cannot be understood."""


@dataclass(frozen=True, slots=True)
class ListFiles:
    path: str
    reason: str = ""


@dataclass(frozen=True, slots=True)
class GetFile:
    remote: str
    local: str | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class PutFile:
    local: str
    remote: str
    overwrite: bool = False
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Diagnose:
    reason: str = ""


@dataclass(frozen=True, slots=True)
class RunRunbook:
    runbook_id: str
    parameters: tuple[tuple[str, str], ...] = ()
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SetReason:
    text: str


ToolAction = ListFiles | GetFile | PutFile | Diagnose | RunRunbook | SetReason
TOOL_ACTIONS = (ListFiles, GetFile, PutFile, Diagnose, RunRunbook, SetReason)
TOOL_VERBS = ("ls", "get", "put", "replace", "diag", "runbook", "reason")


# -- parsing ---------------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace_split = True
    lexer.escape = ""  # C:\Users\ana stays as typed
    try:
        return list(lexer)
    except ValueError as exc:
        raise StepError(f"cannot read {text!r}: {exc}") from None


def _pair(argument: str, verb: str, first: str, second: str, *, optional: bool) -> tuple[str, str]:
    left, sep, right = argument.partition("=>")
    left, right = left.strip(), right.strip()
    if not left or (sep and not right) or (not sep and not optional):
        shape = f"{first}=>{second}" if not optional else f"{first}[=>{second}]"
        raise StepError(f"{verb} needs {shape}")
    return left, right


def _runbook(words: list[str], reason: str = "") -> RunRunbook:
    if not words:
        raise StepError("runbook needs an ID (and name=value parameters)")
    runbook_id, *rest = words
    if _RUNBOOK_ID.fullmatch(runbook_id) is None:
        raise StepError(f"{runbook_id!r} is not a runbook id (lowercase letters, digits, . _ -)")
    if len(rest) > MAX_PARAMETERS:
        raise StepError(f"at most {MAX_PARAMETERS} parameters")
    parameters: dict[str, str] = {}
    for word in rest:
        found = _PARAMETER.fullmatch(word)
        if found is None:
            raise StepError(f"{word!r} is not name=value (names: lowercase, digits, _)")
        name, value = found.groups()
        if name in parameters:
            raise StepError(f"parameter {name!r} given twice")
        parameters[name] = value
    return RunRunbook(runbook_id, tuple(parameters.items()), reason)


def _reason(text: str) -> str:
    text = text.strip()
    if len(text) > MAX_REASON:
        raise StepError(f"a reason of at most {MAX_REASON} characters")
    return text


def parse_tool_step(verb: str, argument: str | None) -> ToolAction | None:
    """A scripted step for ``verb`` (``argument`` None: no colon was written); None when the
    verb is not one of these."""
    if verb not in TOOL_VERBS:
        return None
    if argument is None and verb != "diag":
        raise StepError(f"{verb} needs a colon: {verb}:...")
    argument = argument or ""
    if verb == "ls":
        if not argument.strip():
            raise StepError("ls needs a PATH on the device")
        return ListFiles(argument.strip())
    if verb == "get":
        remote, local = _pair(argument, verb, "REMOTE", "LOCAL", optional=True)
        return GetFile(remote, local or None)
    if verb in ("put", "replace"):
        local, remote = _pair(argument, verb, "LOCAL", "REMOTE", optional=False)
        return PutFile(local, remote, overwrite=verb == "replace")
    if verb == "diag":
        if argument.strip():
            raise StepError("diag takes nothing after the colon (state a reason with reason:)")
        return Diagnose()
    if verb == "runbook":
        return _runbook(_words(argument))
    return SetReason(_reason(argument))


def _split_reason(words: list[str]) -> tuple[list[str], str]:
    if "--reason" not in words:
        return words, ""
    at = words.index("--reason")
    if at + 1 >= len(words):
        raise StepError("--reason needs the text (in quotes when it has spaces)")
    return words[:at] + words[at + 2 :], _reason(words[at + 1])


COMMAND_USAGE = {
    "/ls": "/ls PATH",
    "/get": "/get REMOTE [LOCAL]",
    "/put": "/put LOCAL REMOTE",
    "/replace": "/replace LOCAL REMOTE",
    "/diag": "/diag",
    "/runbook": "/runbook ID [name=value ...]",
    "/reason": "/reason TEXT",
}


def parse_command(line: str) -> ToolAction | None:
    """An interactive command, or None when the line is not one of these commands."""
    word, _, rest = line.strip().partition(" ")
    if word not in COMMAND_USAGE:
        return None
    if word == "/reason":
        if not rest.strip():
            raise StepError("usage: /reason TEXT")
        return SetReason(_reason(rest))
    words, reason = _split_reason(_words(rest))
    usage = f"usage: {COMMAND_USAGE[word]} [--reason TEXT]"
    if word == "/runbook":
        return _runbook(words, reason)
    counts = {"/ls": (1, 1), "/get": (1, 2), "/put": (2, 2), "/replace": (2, 2), "/diag": (0, 0)}
    low, high = counts[word]
    if not low <= len(words) <= high:
        raise StepError(usage)
    if word == "/ls":
        return ListFiles(words[0], reason)
    if word == "/get":
        return GetFile(words[0], words[1] if len(words) > 1 else None, reason)
    if word == "/diag":
        return Diagnose(reason)
    return PutFile(words[0], words[1], overwrite=word == "/replace", reason=reason)


# -- running ---------------------------------------------------------------------------------


def _show(session: TechnicianSession, line: str) -> None:
    session.output.info(line)
    # So that a script's ``expect:`` can wait for what a step printed.
    session._note_received(line + "\n")


def show_error(session: TechnicianSession, code: str, message: str) -> None:
    hint = HINTS.get(code)
    line = f"error< {code}" + (f": {message}" if message else "") + (f" ({hint})" if hint else "")
    session.output.info(line)
    session._note_received(line + "\n")


async def run_step(session: TechnicianSession, action: ToolAction) -> None:
    """Run one step, printing its result; a failure is an ``error<`` line, never an exception."""
    if isinstance(action, SetReason):
        session.stated_reason = action.text
        _show(session, f"state< reason set for the next request: {action.text or '(none)'}")
        return
    reason = action.reason or session.stated_reason
    session.stated_reason = ""  # used once (see the module docstring)
    try:
        await _run(session, action, reason)
    except ToolError as exc:
        show_error(session, exc.code, exc.message)
    except ConnectionClosed:
        show_error(session, "session.connection_lost", "the connection closed during the step")


async def _run(session: TechnicianSession, action: ToolAction, reason: str) -> None:
    match action:
        case ListFiles(path=path):
            _show_listing(session, await session.files.list_directory(path, reason=reason))
        case GetFile(remote=remote, local=local):
            got = await session.files.download(remote, local, reason=reason)
            resumed = f" resumed_from={got.resumed_from}" if got.resumed_from else ""
            _show(session, f"files< got {got.remote} -> {got.local} size={got.size} "
                           f"sha256={got.sha256}{resumed}")  # fmt: skip
        case PutFile(local=local, remote=remote, overwrite=overwrite):
            put = await session.files.upload(local, remote, overwrite=overwrite, reason=reason)
            resumed = f" resumed_from={put.resumed_from}" if put.resumed_from else ""
            _show(session, f"files< put {local} -> {put.remote} size={put.size} "
                           f"sha256={put.sha256}{resumed}")  # fmt: skip
        case Diagnose():
            report = await session.tools.diagnostics(reason=reason)
            _show_report(session, report)
            await _attach(session, "diag", session.tools.attach_diagnostics(report))
        case RunRunbook(runbook_id=runbook_id, parameters=parameters):
            run = await session.tools.run_runbook(runbook_id, dict(parameters), reason=reason)
            _show_result(session, run.result)
            await _attach(session, "runbook", session.tools.attach_runbook_result(run))


def _show_listing(session: TechnicianSession, listing: FilesListing) -> None:
    _show(session, f"files< {listing.path} ({len(listing.entries)} entries"
                   f"{', truncated' if listing.truncated else ''})")  # fmt: skip
    for entry in listing.entries:
        zone = f" zone={entry.zone}" if entry.zone else ""
        mark = "/" if entry.kind == "directory" else ""
        _show(session, f"files<   {entry.kind:<9} {entry.size:>12} {entry.name}{mark}{zone}")


def _show_report(session: TechnicianSession, report: DiagnosticsReport) -> None:
    _show(session, f"diag< report collected_at={report.collected_at.isoformat()} "
                   f"sections={','.join(report.report) or '(none)'}")  # fmt: skip
    for key, value in report.report.items():
        text = orjson.dumps(value).decode()
        _show(session, f"diag<   {key}: {text[:300]}{'...' if len(text) > 300 else ''}")


def _show_result(session: TechnicianSession, result: RunbookResult) -> None:
    ending = "timed out" if result.timed_out else f"exit={result.exit_code}"
    _show(
        session,
        f"runbook< {result.runbook_id} v{result.version} {ending} "
        f"duration_ms={result.duration_ms}"
        f"{' (output truncated on the device)' if result.truncated else ''}",
    )
    for stream, text in (("stdout", result.stdout), ("stderr", result.stderr)):
        lines = text.splitlines()
        for line in lines[:SHOWN_OUTPUT_LINES]:
            _show(session, f"runbook< {stream}| {line}")
        if len(lines) > SHOWN_OUTPUT_LINES:
            _show(session, f"runbook< {stream}| ... {len(lines) - SHOWN_OUTPUT_LINES} more "
                           "lines in the ticket attachment")  # fmt: skip


async def _attach(session: TechnicianSession, prefix: str, posting: Awaitable[Any]) -> None:
    try:
        attachment = await posting
    except ToolError as exc:
        show_error(session, exc.code, f"the result was not attached to the ticket: {exc.message}")
        return
    name = attachment.get("name", "?") if isinstance(attachment, dict) else "?"
    ident = attachment.get("id", "?") if isinstance(attachment, dict) else "?"
    _show(session, f"{prefix}< attached to the ticket as {name} (attachment {ident})")
