"""Technician commands: ``auxilio login``, ``logout`` and ``connect``.

Exit codes of ``connect``: 0 the session ran and ended; 1 an API, network or script failure;
2 bad usage; 3 the request was denied or the person refused (or did not answer); 4 an end-to-end
or protocol error (the session was ended with ``protocol_error``).
"""

from __future__ import annotations

import asyncio
import getpass
import io
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import segno
import typer

from auxilio.client import credentials as creds
from auxilio.client.api import ApiClient, ApiError, normalise_server
from auxilio.client.connect import ConnectOptions, request_details_problem, run_connect
from auxilio.client.script import ScriptError, load_actions
from auxilio.crypto.errors import CryptoError

EXIT_USAGE = 2


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\n")
    return getpass.getpass("Password: ")


def login(
    server: Annotated[str, typer.Option(help="Server URL, e.g. https://help.example.org")],
    email: Annotated[str, typer.Option(help="Your account's email address.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    totp_code: Annotated[
        str | None, typer.Option("--totp-code", help="TOTP code, instead of being asked.")
    ] = None,
    org: Annotated[
        str | None,
        typer.Option(
            "--org",
            help="Your organisation's slug; needed only when your address "
            "has accounts in several organisations.",
        ),
    ] = None,
) -> None:
    """Log in as a technician and keep the token for the other commands."""
    try:
        url = normalise_server(server)
    except ValueError as exc:
        _fail(str(exc), EXIT_USAGE)
    password = _read_password(password_stdin)
    try:
        result = asyncio.run(_login(url, email, password, totp_code, org))
    except ApiError as exc:
        if exc.code == "mfa_enrolment_required":
            _fail(
                f"{exc.message}\nTwo-factor authentication is required for your role. Ask an "
                "administrator for your enrolment link (auxilio admin create-user prints it), add "
                "it to an authenticator app, then log in again with a code from it.",
            )
        _fail(f"login failed: {exc}")
    path = creds.save_credentials(
        creds.Credentials(
            server=url, token=result["token"], email=email, expires_at=result.get("expires_at")
        )
    )
    user = result.get("user", {})
    typer.echo(f"logged in to {url} as {user.get('display_name', email)} ({user.get('role', '?')})")
    typer.echo(f"token kept in {path}")
    for code in result.get("recovery_codes") or []:
        typer.echo(f"recovery code (shown once, keep it safe): {code}")
    if result.get("mfa_enrolment_required"):
        typer.echo(
            "This token only allows enrolling two-factor authentication; enrol, log in again."
        )


async def _login(
    url: str, email: str, password: str, totp_code: str | None, org: str | None = None
) -> Any:
    async with ApiClient(url) as api:
        try:
            result = await api.login(
                email=email, password=password, totp_code=totp_code, organisation=org
            )
        except ApiError as exc:
            if exc.code != "mfa_required" or totp_code:
                raise
            # The first leg said a second factor is needed: ask for it, as a person would expect.
            code = await asyncio.to_thread(_prompt_totp)
            return await api.login(email=email, password=password, totp_code=code, organisation=org)
        if not result.get("mfa_enrolment_required") or totp_code:
            return result
        if result.get("totp_enrolment_started"):
            # Someone created with `auxilio admin create-user` already has the enrolment link
            # in an authenticator: a first code from it completes the enrolment.
            typer.echo(
                "Two-factor authentication is not enrolled yet. If you added the enrolment "
                "link to an authenticator app, enter a code from it (Enter to skip)."
            )
        else:
            # Nobody has a link yet (a technician created over REST): make one now, with the
            # token that allows nothing but enrolling, and show it as a link and a QR code.
            uri = await api.start_totp_enrolment(result["token"])
            show_enrolment(uri)
        code = await asyncio.to_thread(_prompt_totp)
        if not code:
            return result
        return await api.login(email=email, password=password, totp_code=code, organisation=org)


def show_enrolment(uri: str) -> None:
    """The otpauth:// link and the same as a QR code an authenticator app can scan."""
    typer.echo("Two-factor authentication is required for your role. Add this account to an")
    typer.echo("authenticator app: scan the QR code, or enter the link by hand.")
    typer.echo(uri)
    qr = io.StringIO()
    segno.make(uri, error="m").terminal(out=qr, compact=True)
    typer.echo(qr.getvalue())
    typer.echo("Then enter the 6-digit code the app shows (Enter to stop here).")


def _prompt_totp() -> str:
    if sys.stdin.isatty():
        return getpass.getpass("TOTP code: ").strip()
    typer.echo("TOTP code: ", nl=False)
    return sys.stdin.readline().strip()


def logout() -> None:
    """Revoke the stored token on the server and forget it here."""
    try:
        stored = creds.load_credentials()
    except creds.ClientStateError:
        typer.echo("not logged in")
        return
    try:
        asyncio.run(_logout(stored))
    except ApiError as exc:
        # The token may already be expired or revoked; forgetting it locally is still right.
        typer.echo(f"the server did not confirm the logout: {exc}", err=True)
    creds.delete_credentials()
    typer.echo(f"logged out of {stored.server}")


async def _logout(stored: creds.Credentials) -> None:
    async with ApiClient(stored.server, stored.token) as api:
        await api.logout()


def connect(
    support_session: Annotated[
        str | None,
        typer.Argument(help="Attach again to this support session (its key is kept locally)."),
    ] = None,
    ticket: Annotated[
        str | None, typer.Option(help="Ticket number or id to open a support session for.")
    ] = None,
    capability: Annotated[
        list[str] | None,
        typer.Option(
            "--capability",
            "-c",
            help="chat, terminal, files, diagnostics or runbooks (repeat).",
        ),
    ] = None,
    files_direction: Annotated[
        str | None,
        typer.Option(help="With files: upload, download or both (else the policy's default)."),
    ] = None,
    runbook: Annotated[
        list[str] | None,
        typer.Option("--runbook", help="With runbooks: an approved runbook id (repeat)."),
    ] = None,
    shell: Annotated[
        str | None, typer.Option(help="With terminal: the shell to ask for (e.g. bash).")
    ] = None,
    mode: Annotated[
        str, typer.Option(help="attended, chat_only, or unattended (with --device).")
    ] = "attended",
    device: Annotated[
        str | None,
        typer.Option(help="Unattended: the id of the owner's enrolled device (the console's "
                     "Devices page, GET /api/v1/devices)."),
    ] = None,
    send: Annotated[
        list[str] | None,
        typer.Option(
            help="Scripted action: chat:TEXT, term:LINE, expect:TEXT, wait:S, ls:PATH, "
            "get:REMOTE=>LOCAL, put:LOCAL=>REMOTE, diag:, runbook:ID k=v, reason:TEXT, end."
        ),
    ] = None,
    script: Annotated[Path | None, typer.Option(help="File of scripted actions.")] = None,
    summary: Annotated[str | None, typer.Option(help="Summary written when it ends.")] = None,
    record: Annotated[
        bool, typer.Option("--record", help="Ask to record (where the policy makes it optional).")
    ] = False,
) -> None:
    """Open a support session on a ticket (or attach to one) and help the person."""
    if (ticket is None) == (support_session is None):
        _fail("give either --ticket N (a new session) or a SESSION id to attach to", EXIT_USAGE)
    if mode not in ("attended", "chat_only", "unattended"):
        _fail("--mode is attended, chat_only or unattended", EXIT_USAGE)
    if (mode == "unattended") != (device is not None) and ticket is not None:
        _fail("--mode unattended and --device DEVICE_ID go together", EXIT_USAGE)
    problem = request_details_problem(capability or [], files_direction, runbook or [], shell)
    if problem is not None:
        _fail(problem, EXIT_USAGE)
    try:
        actions = load_actions(send or [], script)
    except ScriptError as exc:
        _fail(str(exc), EXIT_USAGE)
    try:
        stored = creds.load_credentials()
    except creds.ClientStateError as exc:
        _fail(str(exc))
    options = ConnectOptions(
        ticket=ticket,
        support_session_id=support_session,
        capabilities=capability or ["chat"],
        capabilities_defaulted=not capability,
        mode=mode,
        actions=actions,
        scripted=bool(send or script),
        summary=summary,
        record=record,
        files_direction=files_direction,
        runbooks=runbook or [],
        terminal_shell=shell,
        device_id=device,
    )
    try:
        code = asyncio.run(run_connect(stored, options))
    except ApiError as exc:
        _fail(str(exc), 3 if exc.code in ("policy_denied", "approval_required") else 1)
    except (creds.ClientStateError, CryptoError) as exc:
        _fail(str(exc))
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Mount the technician commands at the top level of ``auxilio``."""
    app.command("login")(login)
    app.command("logout")(logout)
    app.command("connect")(connect)
