"""``auxilio policy ...``: check a document, explain a decision, list and print templates.

The CLI edge of the package: the only policy module that may import typer and rich.  It reads
files; the engine itself stays pure.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from auxilio.policy.engine import explain as explain_decision
from auxilio.policy.errors import PolicyInvalid
from auxilio.policy.loader import parse_policy
from auxilio.policy.requests import EvaluationContext, parse_request
from auxilio.policy.schema import Policy
from auxilio.policy.templates import list_templates, load_template

app = typer.Typer(
    help="Validate, explain and browse remote-support policies.", no_args_is_help=True
)
console = Console(emoji=False)
errors_out = Console(stderr=True, emoji=False)


def _load(file: Path) -> Policy:
    try:
        return parse_policy(file.read_text("utf-8"), version_label=file.name)
    except PolicyInvalid as exc:
        errors_out.print(f"[bold red]{file}: {len(exc.errors)} error(s)[/]")
        for error in exc.errors:
            errors_out.print(f"  {error}  [dim]\\[{error.code}][/]", highlight=False)
        raise typer.Exit(1) from None


@app.command()
def check(file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)]) -> None:
    """Validate FILE; exit 1 and print every located error if it is not a valid policy."""
    policy = _load(file)
    listed = ", ".join(policy.capabilities.listed()) or "none"
    hours = policy.support_hours.timezone if policy.support_hours else "any time"
    console.print(
        f"[green]ok[/] {file}: {policy.name!r} (schema v{policy.version})", highlight=False
    )
    console.print(f"  approved tools: {listed}", highlight=False)
    console.print(
        f"  support hours: {hours}; max session {policy.sessions.max_duration}", highlight=False
    )


def _read_request(value: str) -> dict[str, Any]:
    text = Path(value[1:]).read_text("utf-8") if value.startswith("@") else value
    data = json.loads(text)
    if not isinstance(data, dict):
        raise typer.BadParameter("the request must be a JSON object")
    return data


@app.command()
def explain(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    request: Annotated[
        str, typer.Option("--request", help='JSON or @file: {"kind": ..., "context": {...}}')
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show every rule considered for REQUEST under FILE and the decision.

    The request JSON may carry a "context" object (now, consented, ...); "now" defaults to the
    current time, which is read here at the edge and passed in.
    """
    policy = _load(file)
    try:
        data = _read_request(request)
        context_data = data.pop("context", {})
        context_data.setdefault("now", datetime.now(UTC).isoformat())
        parsed = parse_request(data)
        context = EvaluationContext.model_validate(context_data)
    except (ValidationError, json.JSONDecodeError, OSError) as exc:
        errors_out.print(f"[bold red]bad request:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    result = explain_decision(policy, parsed, context)
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2, ensure_ascii=False))
        return
    table = Table(title=f"{parsed.kind} under {policy.name}")
    table.add_column("#", justify="right")
    table.add_column("rule")
    table.add_column("outcome")
    table.add_column("reason")
    for index, outcome in enumerate(result.trail, start=1):
        effect = outcome.effect.value if outcome.effect else "pass"
        table.add_row(str(index), outcome.rule, effect, outcome.reason)
    console.print(table)
    decision = result.decision
    colour = "green" if decision.allowed else ("red" if decision.effect == "deny" else "yellow")
    console.print(
        f"decision: [bold {colour}]{decision.effect}[/] by {decision.rule}: {decision.reason}",
        highlight=False,
    )
    obligations = decision.obligations.as_dict()
    if obligations:
        console.print_json(json.dumps(obligations, ensure_ascii=False))


@app.command()
def templates(name: Annotated[str | None, typer.Argument()] = None) -> None:
    """List the policy templates, or print the template NAME."""
    if name is None:
        for template in list_templates():
            typer.echo(template)
        return
    try:
        typer.echo(load_template(name), nl=False)
    except KeyError as exc:
        errors_out.print(str(exc.args[0]), highlight=False)
        raise typer.Exit(1) from None
