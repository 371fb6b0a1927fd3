"""The ``auxilio`` command line. Sub-commands import their modules lazily, so that starting the
agent never loads the server and ``--help`` stays fast."""

from __future__ import annotations

import typer

from auxilio.server import commands as server_commands
from auxilio.server.audit import commands as audit_commands
from auxilio.server.recordings import commands as recording_commands

app = typer.Typer(
    help="Auxilio: remote technical support under an enforced, provable policy.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("serve")(server_commands.serve)
app.add_typer(server_commands.admin_app, name="admin")
app.add_typer(audit_commands.audit_app, name="audit")
server_commands.admin_app.command("auditor-key")(recording_commands.auditor_key)
app.add_typer(recording_commands.recording_app, name="recording")


def _policy_app() -> typer.Typer:
    from auxilio.policy.cli import app as policy_app

    # simulate needs the database, so it lives with the server commands.
    policy_app.command("simulate")(server_commands.policy_simulate)
    return policy_app


app.add_typer(_policy_app(), name="policy", help="Check, explain, list templates, simulate.")


def _agent_app() -> typer.Typer:
    from auxilio.agent.cli import app as agent_app

    return agent_app


app.add_typer(_agent_app(), name="agent",
              help="The agent on the person's device: join, receipts; enroll, access, run, log "
                   "(unattended).")


def _register_client() -> None:
    from auxilio.client.cli import register

    register(app)  # login, logout, connect: the technician client


_register_client()


def main() -> None:
    app()
