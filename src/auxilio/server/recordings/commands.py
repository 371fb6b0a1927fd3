"""``auxilio admin auditor-key`` and ``auxilio recording export | purge``.

Run on the server's machine with access to its database (like the other admin commands). The
auditor key's private half is written once, to a 0600 file the operator then moves offline; the
server stores only the public half. Exporting needs that private file back, and is audited
before anything is opened.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Annotated, Any

import typer

from auxilio.server.commands import (
    Config,
    DataDir,
    DbUrl,
    _cli_actor,
    _cli_db,
    _fail,
    console,
    settings_from_cli,
)
from auxilio.server.settings import Settings

recording_app = typer.Typer(
    help="Export recordings with the auditor key; delete those past retention.",
    no_args_is_help=True,
)


def auditor_key(
    org: Annotated[str, typer.Option("--org", help="Organisation slug.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Where to write the private key (default auditor-SLUG.pem)."),
    ] = None,
    rotate: Annotated[
        bool, typer.Option("--rotate", help="Replace the organisation's current auditor key.")
    ] = False,
    data_dir: DataDir = None,
    config: Config = None,
    database_url: DbUrl = None,
) -> None:
    """Make the organisation's X25519 auditor key pair: the private half to a 0600 file, the
    public half to the server (sessions and activity are sealed to it from now on)."""
    settings = settings_from_cli(config, data_dir=data_dir, database_url=database_url)
    path = out or Path(f"auditor-{org}.pem")
    if path.exists():
        # Never overwrite a private key: it may be the only copy that opens old recordings.
        console.print(f"[red]{path} exists[/red]; give another --out")
        raise typer.Exit(2)
    asyncio.run(_auditor_key(settings, org, path, rotate))


async def _auditor_key(settings: Settings, slug: str, path: Path, rotate: bool) -> None:
    from auxilio.crypto.keys import fingerprint, generate_auditor_key, save_private_key
    from auxilio.server.errors import DomainError
    from auxilio.server.identity import service as identity
    from auxilio.server.recordings import service

    async with _cli_db(settings) as db:
        organisation = await identity.get_organisation_by_slug(db, slug=slug)
        if organisation is None:
            console.print(f"[red]organisation_not_found:[/red] no organisation {slug!r}")
            raise typer.Exit(1)
        current = await service.get_current_auditor_key(db, organisation_id=organisation.id)
        if current is not None and not rotate:
            console.print(
                f"[red]auditor_key_exists:[/red] {slug} has the auditor key {current.fingerprint};"
                " give --rotate to replace it (recordings made so far keep needing the old one)",
                soft_wrap=True,
            )
            raise typer.Exit(1)
        private = generate_auditor_key()
        # The file first: a key the server knows but nobody holds would seal data to no one.
        save_private_key(private, path)
        try:
            key = await service.set_auditor_key(
                db,
                organisation_id=organisation.id,
                public_key=private.public_key(),
                actor=_cli_actor(organisation.id),
            )
            await db.commit()
        except DomainError as exc:
            await asyncio.to_thread(path.unlink, missing_ok=True)
            _fail(exc)
        except BaseException:
            await asyncio.to_thread(path.unlink, missing_ok=True)
            raise
    verb = "rotated" if current is not None else "created"
    typer.echo(f"auditor key {verb} for {slug}: {fingerprint(private.public_key())}")
    typer.echo(
        f"private key written to {path} (mode 0600); keep it offline: the server "
        "cannot open recordings or activity details without it"
    )
    assert key.fingerprint == fingerprint(private.public_key())  # noqa: S101 -- same key


@recording_app.command("export")
def recording_export(
    support_session: Annotated[str, typer.Argument(help="The support session id.")],
    key: Annotated[
        Path,
        typer.Option(
            "--key", help="The auditor private key (PEM, mode 0600).", exists=True, dir_okay=False
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Directory for chat.txt, the casts and the screen videos.")
    ],
    data_dir: DataDir = None,
    config: Config = None,
    database_url: DbUrl = None,
) -> None:
    """Write the chat transcript, an asciinema v2 cast per terminal and the screen as WebM
    (audited first)."""
    from auxilio.crypto.errors import CryptoError
    from auxilio.crypto.keys import load_auditor_key

    settings = settings_from_cli(config, data_dir=data_dir, database_url=database_url)
    try:
        sid = uuid.UUID(support_session)
    except ValueError:
        console.print(f"[red]recording_not_found:[/red] {support_session!r} is not a session id")
        raise typer.Exit(1) from None
    try:
        auditor = load_auditor_key(key)
    except CryptoError as exc:
        console.print(f"[red]{exc.code}:[/red] {exc}")
        raise typer.Exit(2) from exc
    result = asyncio.run(_export(settings, sid, auditor, out))
    typer.echo(f"recording of {sid}: {result.epochs} epoch(s), {result.frames} frames")
    typer.echo(f"  {out / 'chat.txt'}: {len(result.chat_lines)} line(s)")
    for cast in result.casts:
        typer.echo(f"  {cast}")
    for video in result.videos:
        dropped = f", {video.dropped} before a keyframe left out" if video.dropped else ""
        typer.echo(
            f"  {video.path}: screen {video.width}x{video.height} ({video.codec}), "
            f"{video.frames} frame(s){dropped}"
        )


async def _export(settings: Settings, sid: uuid.UUID, auditor: Any, out: Path) -> Any:
    from auxilio.crypto.keys import fingerprint
    from auxilio.server.errors import DomainError
    from auxilio.server.recordings import service
    from auxilio.server.recordings.errors import RecordingKeyWrong
    from auxilio.server.recordings.export import export_recording

    async with _cli_db(settings) as db:
        try:
            recording = await service.get_recording_or_raise(db, support_session_id=sid)
            sealed_to = await service.get_auditor_key_of(db, recording=recording)
            await service.record_export(
                db,
                recording=recording,
                destination=str(out),
                actor=_cli_actor(recording.organisation_id),
            )
            await db.commit()
            given = fingerprint(auditor.public_key())
            if given != sealed_to.fingerprint:
                raise RecordingKeyWrong(
                    f"this recording is sealed to the auditor key {sealed_to.fingerprint}; "
                    f"the key file given is {given}"
                )
            sealed = await service.list_recording_keys(db, recording=recording)
            path = service.recording_path(service.recordings_dir(settings), recording)
            if not path.exists():
                console.print(f"[red]recording_missing:[/red] {path} does not exist")
                raise typer.Exit(1)
            with path.open("rb") as handle:
                return export_recording(
                    handle,
                    auditor=auditor,
                    sealed_keys=sealed,
                    support_session_id=str(sid),
                    out_dir=out,
                )
        except DomainError as exc:
            _fail(exc)


@recording_app.command("purge")
def recording_purge(
    data_dir: DataDir = None,
    config: Config = None,
    database_url: DbUrl = None,
) -> None:
    """Delete the recordings past privacy.retention.recordings (audited); run it daily."""
    settings = settings_from_cli(config, data_dir=data_dir, database_url=database_url)
    count = asyncio.run(_purge(settings))
    typer.echo(f"deleted {count} recording(s) past their retention")


async def _purge(settings: Settings) -> int:
    from auxilio.server.db.base import utcnow
    from auxilio.server.recordings import service

    async with _cli_db(settings) as db:
        deleted = await service.expire_recordings(db, now=utcnow(), actor=_cli_actor())
        await db.commit()
    service.remove_files(service.recordings_dir(settings), deleted)
    return len(deleted)
