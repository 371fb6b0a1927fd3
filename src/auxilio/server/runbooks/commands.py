"""``auxilio admin runbooks import-examples | approve | list``, on the server's machine.

The same service functions as the API, so the same checks: a draft is validated as a runbook,
and an approval needs an approver whose role the active policy names (and, with
``two_person``, who is not the author). The people are named by email, and they act: the audit
records them, from the address ``cli``.

The server's helpers (``auxilio.server.commands``) are imported inside the commands, because
that module registers this group: importing it here at load time would be a cycle.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer

runbooks_app = typer.Typer(
    help="The runbook catalogue: import the examples as drafts, approve (sign), list.",
    no_args_is_help=True,
)

# The same options as every admin command (auxilio.server.commands), spelled here for the
# reason above.
DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Where the database and keys live.")
]
Config = Annotated[Path | None, typer.Option("--config", help="A TOML settings file.", exists=True)]
DbUrl = Annotated[
    str | None, typer.Option("--database-url", help="Overrides AUXILIO_DATABASE_URL.")
]
Org = Annotated[str, typer.Option("--org", help="Organisation slug.")]


def _settings(config: Path | None, **overrides: Any) -> Any:
    from auxilio.server.commands import settings_from_cli

    return settings_from_cli(config, **overrides)


async def _person(db: Any, slug: str, email: str, what: str) -> Any:
    """The active user ``email`` of organisation ``slug`` as an actor, or exit naming why."""
    from auxilio.server.commands import console
    from auxilio.server.identity import auth
    from auxilio.server.identity import service as identity

    organisation = await identity.get_organisation_by_slug(db, slug=slug)
    if organisation is None:
        console.print(f"[red]organisation_not_found:[/red] no organisation {slug!r}")
        raise typer.Exit(1)
    user, _ = await identity.find_login_account(db, email=email, organisation=slug)
    if user is None or not user.is_active:
        console.print(f"[red]user_not_found:[/red] no active user {email!r} in {slug} ({what})")
        raise typer.Exit(1)
    return auth.actor_for(user)


@runbooks_app.command("import-examples")
def import_examples(
    org: Org,
    author: Annotated[str, typer.Option("--author", help="Email of the drafts' author.")],
    data_dir: DataDir = None,
    config: Config = None,
    database_url: DbUrl = None,
) -> None:
    """Write the example runbooks (clear-print-queue, flush-dns, collect-logs) as drafts; an id
    the catalogue already has is left alone."""
    settings = _settings(config, data_dir=data_dir, database_url=database_url)
    asyncio.run(_import(settings, org, author))


async def _import(settings: Any, slug: str, email: str) -> None:
    from auxilio.runbooks import load_examples
    from auxilio.server.commands import _cli_db, _fail
    from auxilio.server.errors import DomainError
    from auxilio.server.runbooks import service

    async with _cli_db(settings) as db:
        actor = await _person(db, slug, email, "the author")
        for example in load_examples():
            _, existing = await service.list_runbooks(
                db, organisation_id=actor.organisation_id, runbook_id=example.runbook_id, limit=1
            )
            if existing:
                typer.echo(f"{example.runbook_id}: already in the catalogue, left alone")
                continue
            try:
                row = await service.create_draft(
                    db, runbook_id=example.runbook_id, fields=example.fields, actor=actor
                )
            except DomainError as exc:
                _fail(exc)
            typer.echo(f"{row.runbook_id}: draft version {row.version} by {actor.display_name}")
        await db.commit()


@runbooks_app.command("approve")
def approve(
    org: Org,
    runbook_id: Annotated[str, typer.Option("--id", help="The runbook id.")],
    approver: Annotated[str, typer.Option("--approver", help="Email of the approver.")],
    version: Annotated[
        int | None, typer.Option("--version", help="The version (default: the newest draft).")
    ] = None,
    data_dir: DataDir = None,
    config: Config = None,
    database_url: DbUrl = None,
) -> None:
    """Approve a draft: the active policy's checks, then the server key signs it."""
    settings = _settings(config, data_dir=data_dir, database_url=database_url)
    asyncio.run(_approve(settings, org, runbook_id, approver, version))


async def _newest_draft(db: Any, organisation_id: Any, runbook_id: str) -> int | None:
    from auxilio.server.runbooks import service
    from auxilio.server.runbooks.models import RunbookState

    rows, _ = await service.list_runbooks(
        db, organisation_id=organisation_id, runbook_id=runbook_id, state=RunbookState.DRAFT,
        limit=1,
    )  # fmt: skip
    return rows[0].version if rows else None


async def _approve(
    settings: Any, slug: str, runbook_id: str, email: str, version: int | None
) -> None:
    from auxilio.server.commands import _cli_db, _fail, console
    from auxilio.server.errors import DomainError
    from auxilio.server.keys import load_or_create_signing_key
    from auxilio.server.runbooks import service

    key = await asyncio.to_thread(load_or_create_signing_key, settings.signing_key_path)
    async with _cli_db(settings) as db:
        actor = await _person(db, slug, email, "the approver")
        org = actor.organisation_id
        number = version or await _newest_draft(db, org, runbook_id)
        if number is None:
            console.print(f"[red]runbook.not_draft:[/red] {runbook_id!r} has no draft to approve")
            raise typer.Exit(1)
        try:
            row = await service.get_runbook_or_raise(
                db, organisation_id=org, runbook_id=runbook_id, version=number, lock=True
            )
            await service.approve_runbook(db, row=row, actor=actor, server_key=key)
        except DomainError as exc:
            if service.is_policy_refusal(exc):
                await db.rollback()
                await service.record_refusal(db, organisation_id=org, runbook_id=runbook_id,
                                             version=number, error=exc, actor=actor)  # fmt: skip
                await db.commit()
            _fail(exc)
        await db.commit()
    typer.echo(f"{runbook_id} version {number} approved by {actor.display_name}")
    typer.echo(f"sha256 of the signed document: {row.digest}")


@runbooks_app.command("list")
def list_command(
    org: Org,
    data_dir: DataDir = None,
    config: Config = None,
    database_url: DbUrl = None,
) -> None:
    """Every version of the organisation's runbooks: id, version, state, digest."""
    settings = _settings(config, data_dir=data_dir, database_url=database_url)
    asyncio.run(_list(settings, org))


async def _list(settings: Any, slug: str) -> None:
    from auxilio.server.commands import _cli_db, console
    from auxilio.server.identity import service as identity
    from auxilio.server.runbooks import service

    async with _cli_db(settings) as db:
        organisation = await identity.get_organisation_by_slug(db, slug=slug)
        if organisation is None:
            console.print(f"[red]organisation_not_found:[/red] no organisation {slug!r}")
            raise typer.Exit(1)
        rows, _ = await service.list_runbooks(db, organisation_id=organisation.id, limit=1000)
    for row in rows:
        typer.echo(f"{row.runbook_id}\tv{row.version}\t{row.state}\t{row.digest or '-'}")
