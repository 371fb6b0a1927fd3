"""``auxilio audit verify`` and ``auxilio audit export``: offline, with only the public key."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer

from auxilio.server.commands import Config, DataDir, DbUrl, console, settings_from_cli
from auxilio.server.settings import Settings

audit_app = typer.Typer(
    help="Verify and export the tamper-evident audit log.", no_args_is_help=True
)


@audit_app.command("verify")
def audit_verify(
    export_file: Annotated[
        Path | None,
        typer.Option(
            "--export",
            help="Verify an export file instead of the database.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    public_key: Annotated[
        Path | None,
        typer.Option(help="The server's public key (PEM). Default: the one in the data directory."),
    ] = None,
    witness: Annotated[
        list[Path] | None,
        typer.Option(
            "--witness",
            help="A witness directory to check against (repeat for one per node). Default: the "
            "configured audit_witness_dir when it exists.",
            file_okay=False,
        ),
    ] = None,
    no_witness: Annotated[
        bool, typer.Option("--no-witness", help="Check the chains alone, without a witness.")
    ] = False,
    data_dir: DataDir = None,
    config: Config = None,
    database_url: DbUrl = None,
) -> None:
    """Check every chain; exit 0 when intact, 1 naming the first broken event, 2 when the
    input (key, export, witness) cannot be read."""
    from auxilio.server.audit.export import ExportFileInvalid, verify_export
    from auxilio.server.audit.witness import WitnessInvalid, read_witness
    from auxilio.server.keys import load_public_key, public_path

    settings = settings_from_cli(config, data_dir=data_dir, database_url=database_url)
    key_path = public_key or public_path(settings.signing_key_path)
    if not key_path.exists():
        console.print(f"[red]no public key at {key_path}[/red]; give --public-key")
        raise typer.Exit(2)
    key = load_public_key(key_path)
    directories = _witness_directories(settings, witness, no_witness)
    try:
        seen = read_witness(directories)
    except WitnessInvalid as exc:
        console.print(f"[red]witness unreadable:[/red] {exc}")
        raise typer.Exit(2) from exc
    for directory in directories:
        typer.echo(f"witness: {directory}")
    if export_file is not None:
        try:
            with export_file.open("rb") as fh:
                reports = verify_export(fh, public_key=key, witness=seen)
        except ExportFileInvalid as exc:
            console.print(f"[red]not a valid export:[/red] {exc}")
            raise typer.Exit(2) from exc
    else:
        reports = asyncio.run(_verify_db(settings, key, seen))
    broken = [r for r in reports if not r.ok]
    for report in reports:
        state = (
            "intact"
            if report.broken is None
            else f"BROKEN at event {report.broken.seq}: {report.broken.reason} "
            f"[{report.broken.code}]"
        )
        name = f"{report.chain} ({report.organisation})" if report.organisation else report.chain
        witnessed = f", {report.witnessed} witnessed" if directories else ""
        typer.echo(
            f"chain {name}: {report.events} events, "
            f"{report.checkpoints} signed checkpoints{witnessed}: {state}"
        )
    if broken:
        raise typer.Exit(1)
    typer.echo(
        f"audit log intact: {sum(r.events for r in reports)} events in {len(reports)} chains"
    )


def _witness_directories(
    settings: Settings, given: list[Path] | None, no_witness: bool
) -> list[Path]:
    if no_witness:
        if given:
            console.print("[red]--witness and --no-witness exclude each other[/red]")
            raise typer.Exit(2)
        return []
    if given:
        return given
    configured = settings.audit_witness_path
    # Only an explicitly configured witness must exist; the default one appears with the
    # first checkpoint.
    if configured.is_dir() or settings.audit_witness_dir is not None:
        return [configured]
    return []


async def _verify_db(settings: Settings, key: Any, witness: Any) -> Any:
    from auxilio.server.audit.reading import verify_database
    from auxilio.server.db.engine import READ_ONLY_OPTS, create_engine

    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            await conn.execution_options(**READ_ONLY_OPTS)
            return await verify_database(conn, public_key=key, witness=witness)
    finally:
        await engine.dispose()


@audit_app.command("export")
def audit_export(
    output: Annotated[Path, typer.Option("--output", "-o", help="The JSON Lines file to write.")],
    org: Annotated[str | None, typer.Option(help="Only this organisation's chain.")] = None,
    data_dir: DataDir = None,
    config: Config = None,
    database_url: DbUrl = None,
) -> None:
    """Export chains as JSON Lines, verifiable with `auxilio audit verify --export`."""
    settings = settings_from_cli(config, data_dir=data_dir, database_url=database_url)
    count = asyncio.run(_export(settings, output, org))
    typer.echo(f"exported {count} events to {output}")


async def _export(settings: Settings, output: Path, org_slug: str | None) -> int:
    from sqlalchemy import select

    from auxilio.server.audit.chain import chain_for
    from auxilio.server.audit.export import export_chain
    from auxilio.server.audit.reading import list_chains
    from auxilio.server.db.engine import READ_ONLY_OPTS, create_engine
    from auxilio.server.identity.models import Organisation
    from auxilio.server.keys import load_or_create_signing_key

    key = load_or_create_signing_key(settings.signing_key_path).public_key()
    engine = create_engine(settings)
    try:
        async with engine.connect() as conn:
            await conn.execution_options(**READ_ONLY_OPTS)
            if org_slug:
                org_id = (
                    await conn.execute(select(Organisation.id).where(Organisation.slug == org_slug))
                ).scalar_one_or_none()
                if org_id is None:
                    console.print(f"[red]no organisation {org_slug!r}[/red]")
                    raise typer.Exit(2)
                chains = [chain_for(org_id)]
            else:
                chains = await list_chains(conn)
            total = 0
            with output.open("wb") as fh:
                for chain in chains:
                    total += await export_chain(conn, chain, fh, public_key=key)
            return total
    finally:
        await engine.dispose()
