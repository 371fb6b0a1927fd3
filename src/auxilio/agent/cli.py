"""``auxilio agent``: join a support session, list consent receipts.

Exit codes of ``join``: 0 the session ran and ended (or the person refused), 1 an error (join code
refused, grant refused, server unreachable, a security check ended the session), 3 the server
key differs from the one pinned on first contact.

There is deliberately no option that answers the consent prompt for the person.
"""

from __future__ import annotations

import asyncio
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from auxilio.agent.errors import AgentError
from auxilio.agent.state import DEFAULT_STATE_DIR, AgentState

app = typer.Typer(
    help="The agent on the end user's device: join a support session, show consent receipts.",
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


def main() -> None:
    app(prog_name="auxilio-agent")


if __name__ == "__main__":
    main()
