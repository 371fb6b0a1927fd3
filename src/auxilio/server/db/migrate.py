"""Alembic driven from code: the server migrates on start, tests go up, down and up again.

Every CLI command and every server start migrates first. When the database is already at the
newest revision (the common case), that is one query: the revisions are read from the migration
files' ``revision = ...`` lines and compared with the ``alembic_version`` table, and Alembic (0.6 s
to import, 0.5 s to load its environment on the reference machine) is not loaded at all.
tests/server/db/test_migrations.py checks that this reading agrees with Alembic's own.
"""

from __future__ import annotations

import asyncio
import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

from auxilio.server.settings import Settings

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_REVISION = re.compile(r'^(down_revision|revision) = (None|"([^"]+)")$', re.MULTILINE)


@cache
def head_revisions() -> frozenset[str]:
    """The revisions no other migration file revises: Alembic's heads, read without Alembic."""
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        fields = {m[0]: m[2] for m in _REVISION.findall(path.read_text(encoding="utf-8"))}
        if "revision" not in fields:
            continue
        revisions.add(fields["revision"])
        if fields.get("down_revision"):
            revised.add(fields["down_revision"])
    return frozenset(revisions - revised)


def current_revisions(database_url: str) -> frozenset[str] | None:
    """The revisions the database is at; None when it has no version table (new) or cannot be
    read this way (Alembic then decides, and reports any error itself)."""
    sync_url = sa.engine.make_url(database_url)
    driver = {"sqlite+aiosqlite": "sqlite", "postgresql+asyncpg": "postgresql+psycopg"}
    sync_url = sync_url.set(drivername=driver.get(sync_url.drivername, sync_url.drivername))
    engine = sa.create_engine(sync_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            if not sa.inspect(connection).has_table("alembic_version"):
                return None
            rows = connection.execute(sa.text("SELECT version_num FROM alembic_version"))
            return frozenset(str(row[0]) for row in rows)
    except Exception:  # any doubt goes to Alembic, which reports it properly
        return None
    finally:
        engine.dispose()


def alembic_config(database_url: str, *, signing_key_path: Path | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    # Migration 0003 signs the audit heads that existed before heads were signed.
    config.attributes["auxilio_signing_key_path"] = signing_key_path
    return config


def _in_thread(fn: object, *args: object) -> None:
    # env.py drives the async engine with asyncio.run(); from inside a running loop it must run
    # in a thread of its own.
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        fn(*args)  # type: ignore[operator]
        return
    import threading

    errors: list[BaseException] = []

    def target() -> None:
        try:
            fn(*args)  # type: ignore[operator]
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def upgrade(
    database_url: str, revision: str = "head", *, signing_key_path: Path | None = None
) -> None:
    from alembic import command

    config = alembic_config(database_url, signing_key_path=signing_key_path)
    _in_thread(command.upgrade, config, revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    from alembic import command

    _in_thread(command.downgrade, alembic_config(database_url), revision)


def migrate(settings: Settings) -> None:
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = settings.effective_database_url
    if current_revisions(url) == head_revisions():
        return
    upgrade(url, signing_key_path=settings.signing_key_path)
