"""``auxilio agent``: join a support session, list consent receipts; enrol the device, run the
unattended service, manage the owner's pre-authorisations and read the log (docs/unattended.md).

Exit codes of ``join``: 0 the session ran and ended (or the person refused), 1 an error (join code
refused, grant refused, server unreachable, a security check ended the session), 3 the server
key differs from the one pinned on first contact.

Exit codes of ``run``: 0 stopped, 1 an error (not enrolled...), 3 the server key changed, 5 the
device was revoked (or is unknown to the server); ``enroll``: 0 enrolled, 1 refused, 3 key changed.

There is deliberately no option that answers the consent prompt for the person. Unattended
access exists only inside a pre-authorisation the owner signs here (``access grant``).
"""

from __future__ import annotations

import asyncio
import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from auxilio.agent.errors import AgentError
from auxilio.agent.state import DEFAULT_STATE_DIR, AgentState

app = typer.Typer(
    help="The agent on the end user's device: join a support session, show consent receipts; "
    "enrol the device, run the unattended service, pre-authorise and revoke, read the log.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


class Language(StrEnum):
    EN = "en"
    ES = "es"


StateDir = Annotated[
    Path,
    typer.Option(
        "--state-dir",
        help="Device key, pinned servers, receipts and session logs.",
        envvar="AUXILIO_AGENT_STATE_DIR",
    ),
]


@app.command("join")
def join_command(
    code: Annotated[str, typer.Argument(help="The join code the technician gave you.")],
    server: Annotated[str, typer.Option("--server", help="The server, http(s)://host:port.")],
    state_dir: StateDir = DEFAULT_STATE_DIR,
    ca_file: Annotated[
        str | None,
        typer.Option("--ca-file", help="CA certificate to trust for a wss:// server."),
    ] = None,
    terminal: Annotated[
        bool,
        typer.Option(
            "--terminal",
            help="Ask for consent and show the session in this terminal even when a display is "
            "available (by default windows open where there is one).",
        ),
    ] = False,
    lang: Annotated[
        Language | None,
        typer.Option(
            "--lang",
            help="Language of the prompt and windows (default: from LC_ALL, LC_MESSAGES, LANG).",
        ),
    ] = None,
) -> None:
    """Join the support session of CODE: you see who asks for what, and decide."""
    from auxilio.agent.join import join

    console = Console(highlight=False, emoji=False)
    try:
        exit_code = asyncio.run(
            join(
                code=code,
                server=server,
                state_dir=state_dir,
                console=console,
                ca_file=ca_file,
                window=not terminal,
                lang=lang.value if lang is not None else None,
            )
        )
    except AgentError as exc:
        console.print(f"Error {exc.code}: {exc.message}", style="bold red", markup=False)
        raise typer.Exit(exc.exit_code) from None
    except (asyncio.CancelledError, KeyboardInterrupt):
        console.print("Stopped.", markup=False)
        raise typer.Exit(1) from None
    raise typer.Exit(exit_code)


@app.command("receipts")
def receipts_command(state_dir: StateDir = DEFAULT_STATE_DIR) -> None:
    """List the consent receipts this device signed (verified again with the device key)."""
    console = Console(highlight=False, emoji=False)
    try:
        stored = AgentState(state_dir).list_receipts()
    except AgentError as exc:
        console.print(f"Error {exc.code}: {exc.message}", style="bold red", markup=False)
        raise typer.Exit(1) from None
    if not stored:
        console.print("No consent receipts yet.")
        return
    for item in stored:
        if item.receipt is None:
            console.print(f"{item.path.name}: INVALID ({item.problem})", style="bold red")
            continue
        receipt = item.receipt
        decisions = ", ".join(f"{d.capability}={d.decision}" for d in receipt.decisions)
        console.print(
            f"{receipt.decided_at:%Y-%m-%d %H:%M:%S} UTC  session {receipt.support_session_id}  "
            f"technician {item.technician_name} ({item.organisation_name})  {decisions}  "
            f"prompt sha256 {receipt.prompt_sha256[:16]}...  signature ok",
            markup=False,
        )


def _out(console: Console, text: str) -> None:
    """One line as it is (no markup, no wrapping: tests and scripts read these lines)."""
    console.print(text, markup=False, soft_wrap=True)


def _fail(console: Console, exc: AgentError) -> typer.Exit:
    console.print(f"Error {exc.code}: {exc.message}", style="bold red", markup=False)
    return typer.Exit(exc.exit_code)


@app.command("enroll")
def enroll_command(
    server: Annotated[str, typer.Option("--server", help="The server, http(s)://host:port.")],
    token: Annotated[
        str, typer.Option("--token", help="The enrolment token from your organisation.")
    ],
    name: Annotated[
        str | None, typer.Option("--name", help="This device's name (default: host name).")
    ] = None,
    no_service: Annotated[
        bool,
        typer.Option("--no-service", help="Enrol only: do not install or start the service."),
    ] = False,
    fingerprint: Annotated[
        str | None,
        typer.Option("--fingerprint", help="Refuse unless the server key has this fingerprint."),
    ] = None,
    ca_file: Annotated[
        str | None, typer.Option("--ca-file", help="CA certificate to trust for https.")
    ] = None,
    state_dir: StateDir = DEFAULT_STATE_DIR,
) -> None:
    """Enrol this device for unattended access and install the service.

    The token comes from your organisation. The server key is shown and pinned; the agent is
    installed as a systemd user service. Enrolment allows nothing by itself: see `access grant`.
    """
    from auxilio.agent.connection import server_address
    from auxilio.agent.enroll import enroll
    from auxilio.agent.service_unit import install_service

    console = Console(highlight=False, emoji=False)

    def say(text: str) -> None:
        _out(console, text)

    try:
        state = AgentState(state_dir)
        enroll(address=server_address(server), token=token, state=state, name=name,
               ca_file=ca_file, expected_fingerprint=fingerprint, say=say)  # fmt: skip
    except AgentError as exc:
        raise _fail(console, exc) from None
    install_service(state_dir, start=not no_service, say=say)


@app.command("run")
def run_command(
    state_dir: StateDir = DEFAULT_STATE_DIR,
    ca_file: Annotated[
        str | None, typer.Option("--ca-file", help="CA certificate to trust for https.")
    ] = None,
    no_window: Annotated[
        bool,
        typer.Option("--no-window", help="No session window even where there is a display."),
    ] = False,
    lang: Annotated[
        Language | None, typer.Option("--lang", help="Language of the session window.")
    ] = None,
) -> None:
    """The service of an enrolled device (what `enroll` installs).

    It holds the connection, keeps the pre-authorisations in step with the server and runs the
    unattended sessions they cover. Exit codes: 0 stopped, 3 server key changed, 5 revoked.
    """
    import signal

    from auxilio.agent.daemon import Daemon

    console = Console(highlight=False, emoji=False)

    async def serve() -> int:
        daemon = Daemon(state_dir, console=console, ca_file=ca_file, window=not no_window,
                        lang=lang.value if lang is not None else None)  # fmt: skip
        loop = asyncio.get_running_loop()
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(number, daemon.stop)
        return await daemon.run()

    try:
        code = asyncio.run(serve())
    except AgentError as exc:
        raise _fail(console, exc) from None
    raise typer.Exit(code)


access_app = typer.Typer(
    help="The owner's pre-authorisations of unattended access: grant, list, revoke.",
    no_args_is_help=True,
)
app.add_typer(access_app, name="access")


def _owner_name() -> str:
    import getpass

    try:
        import pwd

        gecos = pwd.getpwuid(os.getuid()).pw_gecos.split(",")[0].strip()
        if gecos:
            return gecos
    except (ImportError, KeyError, AttributeError):
        pass
    return getpass.getuser()


@access_app.command("grant")
def access_grant_command(
    scope: Annotated[
        str, typer.Option("--scope", help="Capabilities, comma-separated: chat,terminal,...")
    ],
    days: Annotated[
        str, typer.Option("--days", help="Weekdays: mon-fri, sat,sun, all.")
    ] = "mon-fri",
    hours: Annotated[
        str, typer.Option("--hours", help="Local hours each day: 09:00-17:00, or all.")
    ] = "09:00-17:00",
    for_: Annotated[
        str | None, typer.Option("--for", help="How long from now: 12h, 7d, 2w (default 7d).")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Last day (2026-12-31) or moment, instead.")
    ] = None,
    timezone: Annotated[
        str | None,
        typer.Option("--timezone", help="Time zone of the hours (default: this device's)."),
    ] = None,
    automated: Annotated[
        bool,
        typer.Option("--automated", help="Also allow automated runs (runbooks, diagnostics)."),
    ] = False,
    note: Annotated[str, typer.Option("--note", help="Your own words, kept with it.")] = "",
    state_dir: StateDir = DEFAULT_STATE_DIR,
) -> None:
    """Pre-authorise unattended access (default: this week, working hours).

    The defaults: Monday to Friday, 09:00-17:00 in this device's time zone, for 7 days from
    now. The device signs it; the running service sends it to the server within a second.
    """
    from datetime import UTC, datetime

    from auxilio.agent.access import AccessStore, build_window, parse_scope
    from auxilio.agent.consent import zone_name
    from auxilio.agent.enroll import require_enrolment
    from auxilio.agent.unattended import window_words
    from auxilio.protocol.types import Capability

    console = Console(highlight=False, emoji=False)
    try:
        state = AgentState(state_dir)
        enrolment = require_enrolment(state)
        capabilities = parse_scope(scope)
        if automated and not {Capability.RUNBOOKS, Capability.DIAGNOSTICS} & set(capabilities):
            raise AgentError("access.automated_needs_runbooks",
                             "--automated needs runbooks or diagnostics in --scope")  # fmt: skip
        if len(note) > 500:
            raise AgentError("access.note_too_long", "a note is at most 500 characters")
        pinned = state.pinned(enrolment.server)
        if pinned is None:
            raise AgentError("access.not_enrolled", f"no pinned key for {enrolment.server}")
        now = datetime.now(UTC).replace(microsecond=0)
        window = build_window(days=days, hours=hours, for_=for_, until=until,
                              timezone=timezone or zone_name() or "UTC", now=now)  # fmt: skip
        entry = AccessStore(state).grant(
            device_id=enrolment.device_id, organisation_id=enrolment.organisation_id,
            server_fingerprint=pinned.fingerprint, owner_name=_owner_name(),
            scope=capabilities, window=window, automated_runs=automated, note=note, now=now,
        )  # fmt: skip
    except AgentError as exc:
        raise _fail(console, exc) from None
    _out(console, f"Pre-authorised {entry.id}: {', '.join(entry.document.scope)}"
         f"{' and automated runs' if automated else ''}, {window_words(entry.document.window)}.")
    _out(console, f"Signed by this device for {enrolment.organisation_name}. Revoke it at any "
         f"moment: auxilio agent access revoke {entry.id}")


@access_app.command("list")
def access_list_command(state_dir: StateDir = DEFAULT_STATE_DIR) -> None:
    """The pre-authorisations on this device: scope, window, state, whether the server has it."""
    from datetime import UTC, datetime

    from rich.table import Column, Table

    from auxilio.agent.access import AccessStore
    from auxilio.agent.unattended import window_words

    console = Console(highlight=False, emoji=False)
    try:
        store = AccessStore(AgentState(state_dir))
        entries = store.all()
    except AgentError as exc:
        raise _fail(console, exc) from None
    if not entries:
        console.print("No pre-authorisations on this device.")
    else:
        now = datetime.now(UTC)
        table = Table(Column("id", no_wrap=True), "scope", "window", "state", "published")
        for entry in entries:
            state = entry.state(now)
            shown = {"open": "live (open now)", "waiting": "live (shut now)"}.get(state, state)
            if entry.revoked:
                published = "yes" if entry.revocation_published else "not yet"
            else:
                published = "yes" if entry.published else "no"
            scope = ", ".join(entry.document.scope)
            table.add_row(entry.id, scope + (" +automated" if entry.document.automated_runs
                                             else ""),
                          window_words(entry.document.window), shown, published)  # fmt: skip
        console.print(table)
    for name, problem in store.problems().items():
        console.print(f"{name}: IGNORED ({problem}): it does not verify with this device's key",
                      style="bold red", markup=False)  # fmt: skip


@access_app.command("revoke")
def access_revoke_command(
    pre_authorisation_id: Annotated[str, typer.Argument(help="The id `access list` shows.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept, sent).")] = "",
    state_dir: StateDir = DEFAULT_STATE_DIR,
) -> None:
    """Revoke a pre-authorisation: the device refuses it from now on.

    The running service tells the server within a second and a live session on it ends.
    """
    from auxilio.agent.access import AccessStore

    console = Console(highlight=False, emoji=False)
    try:
        if len(reason) > 500:
            raise AgentError("access.reason_too_long", "a reason is at most 500 characters")
        store = AccessStore(AgentState(state_dir))
        matches = [e.id for e in store.all() if e.id.startswith(pre_authorisation_id)]
        if len(matches) > 1:
            raise AgentError("access.ambiguous", f"{pre_authorisation_id!r} starts several ids")
        entry = store.revoke(matches[0] if matches else pre_authorisation_id, reason)
    except AgentError as exc:
        raise _fail(console, exc) from None
    _out(console, f"Revoked {entry.id} at {entry.revoked_at:%Y-%m-%d %H:%M:%S} UTC. The device "
         "refuses it from now on.")


@app.command("log")
def log_command(
    entry_id: Annotated[
        str | None, typer.Argument(help="One session or run (an id or its start).")
    ] = None,
    state_dir: StateDir = DEFAULT_STATE_DIR,
) -> None:
    """What happened here without you: unattended sessions and automated runs.

    Without ID: one line each (when, id, mode, who, capabilities, duration, end). With ID: that
    one in full, with the same report as an attended session.
    """
    from auxilio.agent.local_log import LocalLog
    from auxilio.agent.report import build_report, render_report

    console = Console(highlight=False, emoji=False)
    try:
        state = AgentState(state_dir)
    except AgentError as exc:
        raise _fail(console, exc) from None
    local = LocalLog(state)
    if entry_id is not None:
        entry = local.get(entry_id)
        if entry is None:
            raise _fail(console, AgentError("log.unknown", f"no single entry {entry_id!r}"))
        _print_entry(console, entry)
        events = state.session_log(entry.id).events()
        if entry.mode == "automated":
            for event in events:
                console.print(f"{event.get('at', '?')} {event.get('event')}: "
                              + ", ".join(f"{k}={v}" for k, v in event.items()
                                          if k not in ("at", "event")), markup=False)  # fmt: skip
        elif events:
            render_report(console, build_report(events))
        return
    entries = local.entries()
    if not entries:
        console.print("Nothing happened here without you: no unattended session, no automated "
                      "run.", markup=False)  # fmt: skip
        return
    # One line each (not a table: the ids stay whole in any width, and scripts can read it).
    for entry in entries:
        seconds = entry.duration_seconds
        who = f"{entry.technician} ({entry.organisation})" if entry.technician else "-"
        _out(console, "  ".join([
            _when(entry.started_at), entry.id, entry.mode, who,
            ", ".join(entry.capabilities) or "-",
            _duration(seconds) if seconds is not None else "running", entry.reason or "-",
        ]))  # fmt: skip


def _when(stamp: str) -> str:
    from datetime import datetime

    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone()
    except ValueError:
        return stamp
    return moment.strftime("%Y-%m-%d %H:%M:%S %Z")


def _duration(seconds: float) -> str:
    whole = int(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def _print_entry(console: Console, entry: object) -> None:
    from auxilio.agent.local_log import LogEntry

    assert isinstance(entry, LogEntry)  # noqa: S101
    seconds = entry.duration_seconds
    lines = [
        f"Entry {entry.id} ({entry.mode})",
        f"When: {_when(entry.started_at)}"
        + (f" until {_when(entry.ended_at)}" if entry.ended_at else " (running)"),
        f"Technician: {entry.technician or '-'} ({entry.organisation or '-'})",
        f"Capabilities: {', '.join(entry.capabilities) or '-'}",
        f"Pre-authorisation: {entry.pre_authorisation_id or '-'}",
        f"Duration: {_duration(seconds) if seconds is not None else 'running'}",
        f"End: {entry.reason or '-'}" + (f" (by {entry.ended_by})" if entry.ended_by else "")
        + (f": {entry.detail}" if entry.detail else ""),
    ]
    for line in lines:
        console.print(line, markup=False)


def main() -> None:
    app(prog_name="auxilio-agent")


if __name__ == "__main__":
    main()
