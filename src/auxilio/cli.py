"""The ``auxilio`` command line. Sub-commands import their modules lazily, so that starting the
agent never loads the server and ``--help`` stays fast."""

from __future__ import annotations

import typer

from auxilio.server import commands as server_commands

app = typer.Typer(
    help="Auxilio: remote technical support under an enforced, provable policy.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("serve")(server_commands.serve)
app.add_typer(server_commands.admin_app, name="admin")
app.add_typer(server_commands.audit_app, name="audit")


def _mount_optional() -> None:
    try:
        from auxilio.policy.cli import app as policy_app
    except ImportError:  # the policy CLI is being written alongside; absent, the rest still works
        return
    app.add_typer(policy_app, name="policy", help="Check, explain and simulate policies.")


_mount_optional()


def main() -> None:
    app()
