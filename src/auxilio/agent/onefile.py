"""The entry point of the single-file agent (scripts/build-agent) and of ``python -m
auxilio.agent``.

Run with no arguments, the file the server served joins the session its trailer names
(``auxilio.agent.trailer``): it verifies the trailer, pins the server key the trailer carries
for that server (so the first connection is checked against it, never trusted on first use),
then runs ``auxilio-agent join`` with the code. The person sees the consent window (or the
prompt in the terminal where there is no display) and types nothing. A trailer that does not
verify stops the agent with its code (``agent.trailer_tampered``, ``agent.trailer_expired``...)
and exit status 4 before anything connects.

With arguments (``--help``, ``join CODE --server URL``, ``receipts``) it is the ordinary agent
command line; the trailer is then not used at all. ``--version`` prints the version.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import auxilio

PROG = "auxilio-agent"


def _tell(message: str) -> None:
    """On stderr, and in a window when no terminal shows stderr (the file was double-clicked)."""
    print(message, file=sys.stderr, flush=True)
    if sys.stderr.isatty():
        return
    from auxilio.agent.consent_window import window_available

    if not window_available():
        return
    try:
        import tkinter
        from tkinter import messagebox

        root = tkinter.Tk()
        root.withdraw()
        messagebox.showerror("Auxilio", message, parent=root)
        root.destroy()
    except Exception:  # noqa: S110 - the message is on stderr already; a window is a courtesy
        pass


def _state_dir() -> Path:
    from auxilio.agent.state import DEFAULT_STATE_DIR

    return Path(os.environ.get("AUXILIO_AGENT_STATE_DIR") or DEFAULT_STATE_DIR)


def join_with_trailer(executable: str) -> int:
    """Verify the trailer of ``executable``, pin its server key, join; the exit status."""
    import typer
    from rich.console import Console

    from auxilio.agent.cli import join_command
    from auxilio.agent.connection import server_address
    from auxilio.agent.errors import AgentError
    from auxilio.agent.state import AgentState
    from auxilio.agent.trailer import read_trailer

    try:
        trailer = read_trailer(executable)
        if trailer is None:
            _tell(
                "Error agent.no_trailer: this agent has no server built in. Download it from "
                "your organisation's join page (the link with your code), or run: "
                f"{PROG} join CODE --server URL"
            )
            return 2
        address = server_address(trailer.server_url)
        state_dir = _state_dir()
        # The trailer's key, pinned before the first connection: the server must present it.
        AgentState(state_dir).pin(address.origin, trailer.server_key)
    except AgentError as exc:
        _tell(f"Error {exc.code}: {exc.message}")
        return exc.exit_code
    if trailer.enrolment_token:
        # An agent for enrolment (docs/unattended.md): enrol, install the service, done.
        from auxilio.agent.enroll import enrol_from_trailer

        return enrol_from_trailer(trailer, state_dir, say=lambda text: print(text, flush=True),
                                  tell=_tell)
    console = Console(highlight=False, emoji=False)
    console.print(
        f"Server {address.origin}, key {trailer.server_fingerprint} (signed into this file by "
        f"the server). Join code {trailer.join_code}.",
        markup=False,
    )
    try:
        join_command(code=trailer.join_code, server=trailer.server_url, state_dir=state_dir,
                     ca_file=None, terminal=False, lang=None)  # fmt: skip
    except typer.Exit as done:
        return int(done.exit_code)
    return 0


def main(argv: Sequence[str] | None = None, *, executable: str | None = None) -> None:
    """``executable``: the file whose trailer to read (the running binary by default; tests
    pass another). Without a frozen binary or ``executable``, the plain command line."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--version"]:
        print(f"{PROG} {auxilio.__version__}")
        return
    frozen = bool(getattr(sys, "frozen", False))
    if not args and (frozen or executable is not None):
        raise SystemExit(join_with_trailer(executable or sys.executable))
    from auxilio.agent.cli import app

    app(args=args, prog_name=PROG)


if __name__ == "__main__":
    main()
