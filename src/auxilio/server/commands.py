"""Server-side commands: ``auxilio serve``, ``auxilio admin ...``, ``auxilio audit ...``."""

from __future__ import annotations

import asyncio
import shlex
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from sqlalchemy.engine import make_url

from auxilio.server.settings import Settings, load_settings

# No emoji codes: a fingerprint such as 80:AB:85 printed as 80🆎85 (":ab:").
console = Console(stderr=True, emoji=False)

DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Where the database and keys live.")
]
Config = Annotated[Path | None, typer.Option("--config", help="A TOML settings file.", exists=True)]
DbUrl = Annotated[
    str | None, typer.Option("--database-url", help="Overrides AUXILIO_DATABASE_URL.")
]


def settings_from_cli(config: Path | None, **overrides: Any) -> Settings:
    try:
        return load_settings(config, **overrides)
    except ValueError as exc:
        console.print(f"[red]invalid settings:[/red] {exc}")
        raise typer.Exit(2) from exc


def _with_self_signed(settings: Any, extra_names: list[str]) -> Any:
    from urllib.parse import urlsplit

    from auxilio.server.tls import default_names, ensure_self_signed

    if settings.tls_cert or settings.tls_key:
        console.print("[red]tls_conflict:[/red] --tls-self-signed or --tls-cert/--tls-key, "
                      "not both")
        raise typer.Exit(2)
    hosts = [settings.host] if settings.host not in ("0.0.0.0", "::") else []  # noqa: S104
    if settings.public_url:
        hosts.append(urlsplit(settings.public_url).hostname or "")
    made = ensure_self_signed(settings.data_dir, default_names([*hosts, *extra_names]))
    console.print(
        f"HTTPS with a self-signed certificate ({'made now' if made.created else 'kept'}: "
        f"{made.cert}) for {', '.join(made.names)}\n  SHA-256 fingerprint {made.fingerprint}\n"
        "  Compare it with what the browser shows before you accept the certificate.",
        soft_wrap=True, markup=False,
    )
    return settings.model_copy(update={"tls_cert": made.cert, "tls_key": made.key})


def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    data_dir: DataDir = None,
    config: Config = None,
    database_url: DbUrl = None,
    tls_cert: Annotated[Path | None, typer.Option(help="PEM certificate for HTTPS/WSS.")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key for HTTPS/WSS.")] = None,
    tls_self_signed: Annotated[bool, typer.Option(
        "--tls-self-signed",
        help="Serve HTTPS with a self-signed certificate kept in the data dir (made on first "
             "use; its fingerprint is printed). Browsers need HTTPS for the console on any "
             "address but 127.0.0.1.")] = False,
    tls_name: Annotated[list[str] | None, typer.Option(
        "--tls-name", help="Another host name or address for --tls-self-signed (repeat).")
    ] = None,
    log_json: Annotated[bool | None, typer.Option("--log-json/--no-log-json")] = None,
) -> None:
    """Run the server: migrate, make the signing key on first start, then serve."""
    import uvicorn

    from auxilio.server.app import create_app, prepare
    from auxilio.server.keys import key_id
    from auxilio.server.middleware import configure_logging
    from auxilio.server.serving import connection_options

    settings = settings_from_cli(
        config,
        host=host,
        port=port,
        data_dir=data_dir,
        database_url=database_url,
        tls_cert=tls_cert,
        tls_key=tls_key,
        log_json=log_json,
    )
    if tls_self_signed:
        settings = _with_self_signed(settings, tls_name or [])
    configure_logging(json_logs=settings.log_json, level=settings.log_level)
    prepared = prepare(settings)
    users = asyncio.run(_count_users(settings))
    console.print(
        f"Auxilio data in [bold]{settings.data_dir.resolve()}[/bold]; "
        f"signing key {key_id(prepared.signing_key.public_key())}",
        soft_wrap=True,
    )
    if users == 0:
        console.print(
            "No users yet. Create the first admin (the 2FA enrolment URI is printed):\n  "
            + first_admin_command(settings, config=config, database_url=database_url),
            soft_wrap=True,
            markup=False,
        )
    console.print(f"Serving on {listen_url(settings)} (API docs at /docs)", markup=False)
    app = create_app(settings, signing_key=prepared.signing_key)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        ssl_certfile=str(settings.tls_cert) if settings.tls_cert else None,
        ssl_keyfile=str(settings.tls_key) if settings.tls_key else None,
        timeout_graceful_shutdown=10,
        # docs/adr/0003: the sans-I/O websockets implementation relays fastest; deflate would
        # spend CPU compressing ciphertext, which does not compress.
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        **proxy_options(settings),
        # Header, keep-alive and WebSocket ping timeouts (server/serving.py).
        **connection_options(settings),
    )


def listen_url(settings: Settings) -> str:
    scheme = "https" if settings.tls_cert else "http"
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    return f"{scheme}://{host}:{settings.port}"


def first_admin_command(
    settings: Settings, *, config: Path | None, database_url: str | None
) -> str:
    """The exact command that creates the first admin against the database this server uses:
    the same program, data directory, configuration file and database URL (its password
    masked: the terminal is no place for it)."""
    # The path this command was started by, so the hint works from a virtualenv too.
    started_as = sys.argv[0] if sys.argv and sys.argv[0].endswith("auxilio") else "auxilio"
    parts = [shlex.quote(started_as), "admin", "create-user", "admin@example.org",
             "--role", "admin", "--org", "my-org", "--password-stdin",
             "--data-dir", shlex.quote(str(settings.data_dir))]  # fmt: skip
    if config is not None:
        parts += ["--config", shlex.quote(str(config))]
    if database_url:
        parts += ["--database-url", shlex.quote(_masked(database_url))]
    return "echo 'a long password' | " + " ".join(parts)


def _masked(url: str) -> str:
    parsed = make_url(url)
    return parsed.render_as_string(hide_password=True) if parsed.password else url


def proxy_options(settings: Settings) -> dict[str, Any]:
    """Forwarded headers believed only from ``trusted_proxies`` (none by default). uvicorn's own
    default believes X-Forwarded-For from 127.0.0.1, so any local client could pick the address
    that the lockout and the rate limits count."""
    trusted = settings.trusted_proxy_list
    if not trusted:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": trusted}


async def _count_users(settings: Settings) -> int:
    from auxilio.server.db.engine import create_engine, create_sessionmaker
    from auxilio.server.identity.service import count_users

    engine = create_engine(settings)
    try:
        async with create_sessionmaker(engine)() as db:
            return await count_users(db)
    finally:
        await engine.dispose()


admin_app = typer.Typer(help="Administration from the server's own machine.", no_args_is_help=True)


def _add_feature_groups() -> None:
    # The runbook group imports this module's helpers only inside its commands: no cycle.
    from auxilio.server.runbooks.commands import runbooks_app

    admin_app.add_typer(runbooks_app, name="runbooks")


_add_feature_groups()


@admin_app.command("create-org")
def create_org(
    slug: str,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    data_dir: DataDir = None,
    config: Config = None,
    database_url: DbUrl = None,
) -> None:
    """Create an organisation."""
    settings = settings_from_cli(config, data_dir=data_dir, database_url=database_url)
    asyncio.run(_create_org(settings, slug, name or slug))


async def _create_org(settings: Settings, slug: str, name: str) -> None:
    from auxilio.server.errors import DomainError
    from auxilio.server.identity import service

    async with _cli_db(settings) as db:
        try:
            org = await service.create_organisation(db, slug=slug, name=name, actor=_cli_actor())
        except DomainError as exc:
            _fail(exc)
        await db.commit()
    typer.echo(f"created organisation {org.slug} ({org.id})")


@admin_app.command("create-user")
def create_user(
    email: str,
    role: Annotated[
        str,
        typer.Option(help="end_user, technician, senior_technician, supervisor, admin or auditor."),
    ],
    org: Annotated[str, typer.Option(help="Organisation slug; created when it does not exist.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    skills: Annotated[
        str, typer.Option(help="Comma-separated skills, e.g. hardware,network.")
    ] = "",
    timezone: Annotated[str, typer.Option(help="IANA time zone.")] = "UTC",
    hours: Annotated[str, typer.Option(help='Working hours, e.g. "mon-fri 09:00-17:00".')] = "",
    data_dir: DataDir = None,
    config: Config = None,
    database_url: DbUrl = None,
) -> None:
    """Create a user; prints the TOTP provisioning URI where 2FA is required."""
    from auxilio.policy.roles import Role

    if not password_stdin:
        console.print("[red]give the password on standard input with --password-stdin[/red]")
        raise typer.Exit(2)
    password = sys.stdin.readline().rstrip("\n")
    try:
        role_value = Role(role)
    except ValueError as exc:
        console.print(
            f"[red]unknown role {role!r}[/red]; one of {', '.join(r.value for r in Role)}"
        )
        raise typer.Exit(2) from exc
    settings = settings_from_cli(config, data_dir=data_dir, database_url=database_url)
    asyncio.run(
        _create_user(
            settings,
            email=email,
            role=role_value,
            org_slug=org,
            name=name,
            password=password,
            skills=[s for s in skills.split(",") if s],
            timezone=timezone,
            hours=_parse_hours(hours),
        )
    )


def _parse_hours(text: str) -> dict[str, list[str]]:
    """Read 'mon-fri 09:00-17:00; sat 10:00-14:00' into {"mon": ["09:00-17:00"], ...}."""
    days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    result: dict[str, list[str]] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        try:
            span, window = part.split()
            first, _, last = span.partition("-")
            chosen = days[days.index(first) : days.index(last or first) + 1]
        except ValueError as exc:
            console.print(
                f"[red]cannot read working hours {part!r}[/red] (like 'mon-fri 09:00-17:00')"
            )
            raise typer.Exit(2) from exc
        for day in chosen:
            result.setdefault(day, []).append(window)
    return result


async def _create_user(
    settings: Settings,
    *,
    email: str,
    role: Any,
    org_slug: str,
    name: str | None,
    password: str,
    skills: list[str],
    timezone: str,
    hours: dict[str, list[str]],
) -> None:
    from auxilio.server.errors import DomainError
    from auxilio.server.identity import auth, service

    async with _cli_db(settings) as db:
        try:
            org = await service.get_organisation_by_slug(db, slug=org_slug)
            if org is None:
                org = await service.create_organisation(
                    db, slug=org_slug, name=org_slug, actor=_cli_actor()
                )
                typer.echo(f"created organisation {org.slug}")
            user = await service.create_user(
                db,
                organisation=org,
                email=email,
                display_name=name or email,
                role=role,
                password=password,
                actor=_cli_actor(org.id),
                skills=skills,
                timezone=timezone,
                working_hours=hours,
            )
            uri = None
            if await service.mfa_required(db, org=org, role=role):
                uri = await auth.start_totp_enrolment(db, user=user, actor=_cli_actor(org.id))
        except DomainError as exc:
            _fail(exc)
        await db.commit()
    typer.echo(f"created {role.value} {user.email} in {org.slug} ({user.id})")
    if uri:
        typer.echo("Two-factor authentication is required. Add this to an authenticator app;")
        typer.echo("the first login with a code from it completes the enrolment:")
        typer.echo(uri)


@admin_app.command("generate-activity")
def generate_activity(
    month: Annotated[str, typer.Option(help="The month to fill, e.g. 2026-11 (UTC).")],
    tickets_per_day: Annotated[int, typer.Option(help="Tickets opened each day.")] = 40,
    seed: Annotated[int, typer.Option(help="The same seed makes the same activity.")] = 1,
    data_dir: DataDir = None,
    config: Config = None,
    database_url: DbUrl = None,
) -> None:
    """Fill a new demo organisation with a month of generated support activity (not audited:
    for demos and trials, never on a production database) and an admin to look at its KPIs."""
    settings = settings_from_cli(config, data_dir=data_dir, database_url=database_url)
    asyncio.run(_generate_activity(settings, month=month, tickets_per_day=tickets_per_day,
                                   seed=seed))


async def _generate_activity(
    settings: Settings, *, month: str, tickets_per_day: int, seed: int
) -> None:
    import secrets

    from auxilio.policy.roles import Role
    from auxilio.server.demo import activity
    from auxilio.server.errors import DomainError
    from auxilio.server.identity import auth, service

    database = _cli_db(settings)
    async with database as db:
        try:
            start = activity.utc_month_start(month)
            slug = activity.demo_slug(start, seed)
            summary = await activity.generate_activity(
                database.engine, start=start, days=activity.days_in_month(start),
                tickets_per_day=tickets_per_day, seed=seed, slug=slug,
            )
            org = await service.get_organisation_by_slug(db, slug=slug)
            assert org is not None  # noqa: S101 -- generate_activity has just made it
            password = secrets.token_urlsafe(18)
            admin = await service.create_user(
                db, organisation=org, email=f"admin@{slug}.example", display_name="Demo admin",
                role=Role.ADMIN, password=password, actor=_cli_actor(org.id),
            )
            uri = None
            if await service.mfa_required(db, org=org, role=Role.ADMIN):
                uri = await auth.start_totp_enrolment(db, user=admin, actor=_cli_actor(org.id))
        except DomainError as exc:
            _fail(exc)
        await db.commit()
    typer.echo(
        f"generated organisation {summary.slug} ({summary.organisation_id}) for "
        f"{summary.start:%Y-%m-%d} to {summary.end:%Y-%m-%d}: {summary.tickets} tickets, "
        f"{summary.sessions} support sessions, {summary.surveys} surveys, "
        f"{summary.time_entries} time entries, {summary.technicians} technicians, "
        f"{summary.requesters} requesters; policy versions {', '.join(summary.policy_versions)}"
        f" ({summary.policy_versions[-1]} piloted on device group {summary.pilot_group})"
    )
    typer.echo("This data is generated and not audited: use it for demos, never in production.")
    typer.echo(f"Log in at {settings.public_url or listen_url(settings)}/login as "
               f"{admin.email} with the password {password}")
    if uri:
        typer.echo("Two-factor authentication is required. Add this to an authenticator app;")
        typer.echo("the first login with a code from it completes the enrolment:")
        typer.echo(uri)


@admin_app.command("audit-events-doc")
def audit_events_doc(
    output: Annotated[Path, typer.Option(help="Where to write the Markdown.")] = Path(
        "docs/audit-events.md"
    ),
) -> None:
    """Generate docs/audit-events.md from the AuditAction enum."""
    from auxilio.server.audit.docs import render_audit_events

    output.write_text(render_audit_events(), encoding="utf-8")
    typer.echo(f"wrote {output}")


# ---- helpers ---------------------------------------------------------------------------------


def _cli_actor(organisation_id: Any = None) -> Any:
    import getpass

    from auxilio.server.context import Actor

    return Actor(id=None, display_name=f"cli:{getpass.getuser()}", organisation_id=organisation_id)


def _fail(exc: Any) -> NoReturn:
    console.print(f"[red]{exc.code}:[/red] {exc.message}")
    raise typer.Exit(1)


class _cli_db:
    """A database session for one CLI command, migrated and able to sign checkpoints."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def __aenter__(self) -> Any:
        from auxilio.server.audit.service import make_audit_signer
        from auxilio.server.context import RequestInfo, set_request
        from auxilio.server.db.engine import create_engine, create_sessionmaker
        from auxilio.server.prepare import prepare

        await asyncio.to_thread(prepare, self.settings)
        from auxilio.server.keys import load_or_create_signing_key

        key = load_or_create_signing_key(self.settings.signing_key_path)
        set_request(RequestInfo(client_addr="cli"))
        self.engine = create_engine(self.settings)
        maker = create_sessionmaker(self.engine)
        maker.configure(info={"audit_signer": make_audit_signer(self.settings, key)})
        self.db = maker()
        return self.db

    async def __aexit__(self, *exc: object) -> None:
        await self.db.close()
        await self.engine.dispose()


def policy_simulate(
    draft: Annotated[
        Path, typer.Argument(help="The draft policy (YAML).", exists=True, dir_okay=False)
    ],
    since: Annotated[
        str,
        typer.Option(
            help="Replay decisions recorded since this date (YYYY-MM-DD or ISO time, UTC)."
        ),
    ],
    org: Annotated[str, typer.Option(help="Organisation slug.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    data_dir: DataDir = None,
    config: Config = None,
    database_url: DbUrl = None,
) -> None:
    """Replay recorded decisions against a draft policy and list what would change."""
    from datetime import UTC, datetime

    try:
        moment = datetime.fromisoformat(since)
    except ValueError as exc:
        console.print(f"[red]--since {since!r} is not a date or ISO time[/red]")
        raise typer.Exit(2) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    settings = settings_from_cli(config, data_dir=data_dir, database_url=database_url)
    asyncio.run(_simulate(settings, draft.read_text(encoding="utf-8"), moment, org, as_json))


async def _simulate(
    settings: Settings, draft: str, since: Any, org_slug: str, as_json: bool
) -> None:
    import json
    from dataclasses import asdict

    from auxilio.server.errors import DomainError
    from auxilio.server.identity import service as identity
    from auxilio.server.policies import service

    async with _cli_db(settings) as db:
        org = await identity.get_organisation_by_slug(db, slug=org_slug)
        if org is None:
            console.print(f"[red]no organisation {org_slug!r}[/red]")
            raise typer.Exit(2)
        try:
            result = await service.simulate(db, organisation_id=org.id, draft=draft, since=since)
        except DomainError as exc:
            for problem in exc.details.get("errors", []):
                console.print(f"{problem['path']}: {problem['message']} (line {problem['line']})")
            _fail(exc)
    if as_json:
        typer.echo(
            json.dumps(
                {**asdict(result), "changes": [asdict(c) for c in result.changes]},
                default=str,
                indent=2,
            )
        )
        return
    typer.echo(
        f"replayed {result.replayed} decisions: {result.unchanged} unchanged, "
        f"{len(result.changes)} would change, {result.skipped} skipped"
    )
    for c in result.changes:
        typer.echo(
            f"  event {c.seq} {c.occurred_at:%Y-%m-%d %H:%M} {c.request_kind}: "
            f"{c.was_effect} ({c.was_rule}) -> {c.now_effect} ({c.now_rule}): {c.now_reason}"
        )
