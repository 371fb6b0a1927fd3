"""``auxilio connect`` from request to report: the steps around a ``TechnicianSession``."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from auxilio.client import credentials as creds
from auxilio.client.api import ApiClient, ApiError
from auxilio.client.interactive import InteractiveDriver
from auxilio.client.output import InteractiveOutput, PrefixedOutput
from auxilio.client.runner import ScriptRunner
from auxilio.client.script import Action
from auxilio.client.session import EXIT_FAILED, Outcome, TechnicianSession
from auxilio.crypto.errors import CryptoError
from auxilio.crypto.keys import decode_ed25519_public_key, encode_public_key, fingerprint
from auxilio.protocol.report import SessionReport, render_lines


@dataclass(frozen=True, slots=True)
class ConnectOptions:
    ticket: str | None
    support_session_id: str | None
    capabilities: list[str]
    mode: str
    actions: list[Action] = field(default_factory=list)
    scripted: bool = False
    summary: str | None = None
    capabilities_defaulted: bool = False  # no --capability given: chat only
    # Ask for a recording where the policy leaves it optional (required ones always are).
    record: bool = False
    # What exactly is asked (the request body's terminal_shell, files_direction, runbooks).
    files_direction: str | None = None
    runbooks: list[str] = field(default_factory=list)
    terminal_shell: str | None = None
    # Unattended (mode "unattended"): the owner's enrolled device; nobody is asked there.
    device_id: str | None = None


_RUNBOOK_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def request_details_problem(
    capabilities: list[str], files_direction: str | None, runbooks: list[str], shell: str | None
) -> str | None:
    """Why the details of a request do not fit its capabilities, or None."""
    if files_direction is not None:
        if files_direction not in ("upload", "download", "both"):
            return "--files-direction is upload, download or both"
        if "files" not in capabilities:
            return "--files-direction needs --capability files"
    if runbooks and "runbooks" not in capabilities:
        return "--runbook needs --capability runbooks"
    for runbook_id in runbooks:
        if _RUNBOOK_ID.fullmatch(runbook_id) is None:
            return f"--runbook {runbook_id!r} is not a runbook id (lowercase, digits, . _ -)"
    if shell is not None and "terminal" not in capabilities:
        return "--shell needs --capability terminal"
    return None


async def fetch_server_key(api: ApiClient) -> Ed25519PublicKey:
    """The server's signing key, pinned for this server URL on first use (as the agent does)."""
    answer = await api.server_key()
    try:
        key = decode_ed25519_public_key(str(answer["public_key"]))
    except (KeyError, TypeError, CryptoError) as exc:
        raise ApiError(0, "bad_server_key", "the server's /server-key answer has no key") from exc
    claimed = answer.get("fingerprint")
    if claimed is not None and claimed != fingerprint(key):
        raise ApiError(0, "bad_server_key", "the server's key and its fingerprint disagree")
    if creds.pin_server_key(api.server, encode_public_key(key)):
        typer.echo(f"pinned the server key {fingerprint(key)} for {api.server}")
    return key


def join_code_banner(code: str, expires_at: str) -> str:
    spaced = " ".join(code)
    width = len(spaced) + 8
    return "\n".join(
        [
            "",
            "  Read this join code to the person; they type it in `auxilio agent join`:",
            "  +" + "-" * width + "+",
            "  |" + " " * width + "|",
            "  |    " + spaced + "    |",
            "  |" + " " * width + "|",
            "  +" + "-" * width + "+",
            f"  valid until {expires_at}, once.",
            "",
        ]
    )


async def _request(
    api: ApiClient, options: ConnectOptions, output: PrefixedOutput
) -> tuple[str, X25519PrivateKey, Callable[[], None]]:
    """Request the session; the returned callable shows the join code, once attached."""
    assert options.ticket is not None  # noqa: S101 -- the CLI checked it
    ticket_id = await api.resolve_ticket(options.ticket)
    output.info(f"requesting: {', '.join(options.capabilities)}"
                + (" (the default; ask for more with --capability)"
                   if options.capabilities_defaulted else "")
                + _details(options))  # fmt: skip
    # Made before the request: its public half goes into the request and so into the grant.
    key = X25519PrivateKey.generate()
    answer = await api.request_support_session(
        ticket_id=ticket_id,
        mode=options.mode,
        capabilities=options.capabilities,
        technician_e2e_key=encode_public_key(key.public_key()),
        record=options.record,
        terminal_shell=options.terminal_shell,
        files_direction=options.files_direction,
        runbooks=options.runbooks,
        device_id=options.device_id,
    )
    support_session_id = str(answer["id"])
    creds.save_session_key(support_session_id, key)
    output.state(
        f"requested id={support_session_id} "
        f"max_duration_seconds={answer.get('max_duration_seconds', '?')} "
        f"policy_version={answer.get('policy_version', '?')} "
        f"recorded={str(answer.get('recorded', '?')).lower()}"
    )

    def show_code() -> None:
        if answer.get("join_code") is None:  # unattended: the server offers it to the device
            output.info(
                f"your key fingerprint (the device checks it): {fingerprint(key.public_key())}"
            )
            output.info("waiting for the enrolled device to take the session...")
            return
        output.info(join_code_banner(answer["join_code"], answer.get("join_code_expires_at", "?")))
        output.state(f"join_code={answer['join_code']}")
        output.info(
            f"your key fingerprint (the person sees it too): {fingerprint(key.public_key())}"
        )
        output.info("waiting for the person to join and answer the consent prompt...")

    return support_session_id, key, show_code


def _details(options: ConnectOptions) -> str:
    parts = [f"shell {options.terminal_shell}"] if options.terminal_shell else []
    if options.files_direction:
        parts.append(f"files {options.files_direction}")
    if options.runbooks:
        parts.append(f"runbooks {', '.join(options.runbooks)}")
    return f" ({'; '.join(parts)})" if parts else ""


async def run_connect(stored: creds.Credentials, options: ConnectOptions) -> int:
    driver: ScriptRunner | InteractiveDriver
    output: PrefixedOutput
    if options.scripted:
        output, driver = PrefixedOutput(), ScriptRunner(options.actions)
    else:
        interactive = InteractiveOutput()
        output, driver = interactive, InteractiveDriver(interactive)
    async with ApiClient(stored.server, stored.token) as api:
        server_key = await fetch_server_key(api)
        on_attached: Callable[[], None] | None = None
        if options.support_session_id is None:
            support_session_id, key, on_attached = await _request(api, options, output)
        else:
            support_session_id = options.support_session_id
            key = creds.load_session_key(support_session_id)
        session = TechnicianSession(
            api=api,
            token=stored.token,
            support_session_id=support_session_id,
            technician_key=key,
            server_key=server_key,
            output=output,
            on_attached=on_attached,
        )
        outcome = await session.run(driver)
        if _reached_end(session, outcome):
            await _write_summary(api, support_session_id, options)
            await _print_report(api, support_session_id, output)
    return outcome.exit_code


def _reached_end(session: TechnicianSession, outcome: Outcome) -> bool:
    """Only a session that was active at some point, and is over, has anything to summarise
    (the server refuses a summary for any other: ``summary_not_applicable``)."""
    return session.was_active and not (
        outcome.exit_code == EXIT_FAILED and outcome.reason in ("connection_lost", "")
    )


async def _write_summary(api: ApiClient, support_session_id: str, options: ConnectOptions) -> None:
    summary = options.summary
    if summary is None and not options.scripted and sys.stdin.isatty():
        summary = await asyncio.to_thread(_prompt_summary)
    if not summary:
        typer.echo("no summary written; it is required: auxilio connect ... --summary TEXT")
        return
    try:
        await api.write_summary(support_session_id, summary)
    except ApiError as exc:
        typer.secho(f"the summary was not saved: {exc}", fg=typer.colors.RED, err=True)
        return
    typer.echo("summary saved")


def _prompt_summary() -> str:
    typer.echo("Summary of what you did (an empty line finishes):")
    lines: list[str] = []
    while True:
        line = input()
        if not line.strip():
            return "\n".join(lines).strip()
        lines.append(line)


async def _print_report(api: ApiClient, support_session_id: str, output: PrefixedOutput) -> None:
    try:
        report = await api.report(support_session_id)
    except ApiError as exc:
        output.error(f"no session report: {exc}")
        return
    # The same report, and the same lines, as the person's agent shows (protocol.report).
    fields = set(SessionReport.model_fields)
    one = SessionReport.model_validate({k: v for k, v in report.items() if k in fields})
    output.info("Session report:")
    for line in render_lines(one, clock=_local_time):
        output.info(f"report< {line}")
    if report.get("details"):
        output.info(f"report< ({report['details']})")


def _local_time(moment: datetime) -> str:
    local = moment.astimezone()
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname() or 'local time'}"
