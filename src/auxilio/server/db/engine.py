"""Engine and session factory for the configured database."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import event
from sqlalchemy.dialects import registry
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

# Every domain's models, whoever opens a session: a model's foreign-key column takes its type
# from the table it refers to, and with that table not imported (a CLI command that loads one
# domain) it stayed untyped and a UUID came back as the stored text (the recording export then
# looked for the file under the wrong name).
from auxilio.server.db import models as _all_models  # noqa: F401
from auxilio.server.db.sqlite_inline import sqlite3_connection
from auxilio.server.settings import Settings

# Execution option for connections that only read: `await conn.execution_options(**READ_ONLY_OPTS)`.
READ_ONLY = "auxilio_read_only"
READ_ONLY_OPTS = {READ_ONLY: True}


def create_engine(settings: Settings) -> AsyncEngine:
    url = settings.effective_database_url
    if url.startswith("sqlite"):
        registry.register(
            "sqlite.inline", "auxilio.server.db.sqlite_inline", "SQLiteDialect_inline"
        )
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        # sqlite+aiosqlite URLs (the documented form) run on the inline driver: docs/adr/0002.
        url = url.replace("sqlite+aiosqlite://", "sqlite+inline://", 1)
        engine = create_async_engine(
            url,
            # Every transaction here ends in a commit or an explicit rollback (sessions and
            # connections are used as context managers), so the pool's extra rollback on
            # check-in would be a wasted call on the hot path.
            pool_reset_on_return=None,
            connect_args={"timeout": 10},
            pool_size=1,
            max_overflow=0,
            pool_timeout=60,
            json_serializer=_json_dumps,
            json_deserializer=orjson.loads,
        )
        _configure_sqlite(engine)
        return engine
    return create_async_engine(
        url,
        pool_size=10,
        max_overflow=20,
        pool_pre_ping=True,
        json_serializer=_json_dumps,
        json_deserializer=orjson.loads,
    )


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, issue BEGIN (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # IMMEDIATE takes the write lock up front: two transactions that read the audit head
        # and then write can never deadlock on a lock upgrade, they queue on busy_timeout.
        # Read-only work (verify, export) asks for READ_ONLY and never waits for writers (WAL).
        read_only = conn.get_execution_options().get(READ_ONLY, False)
        statement = "BEGIN" if read_only else "BEGIN IMMEDIATE"
        raw = sqlite3_connection(conn.connection.driver_connection)
        if raw is not None:
            raw.execute(statement)  # no cursor and execution context for a bare BEGIN
        else:
            conn.exec_driver_sql(statement)


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
