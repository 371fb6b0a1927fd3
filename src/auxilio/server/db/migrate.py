"""Alembic driven from code: the server migrates on start, tests go up, down and up again."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

from auxilio.server.settings import Settings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(database_url: str, *, signing_key_path: Path | None = None) -> Config:
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
    config = alembic_config(database_url, signing_key_path=signing_key_path)
    _in_thread(command.upgrade, config, revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    _in_thread(command.downgrade, alembic_config(database_url), revision)


def migrate(settings: Settings) -> None:
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.effective_database_url, signing_key_path=settings.signing_key_path)
