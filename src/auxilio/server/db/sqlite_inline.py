"""SQLite for the async engine without a thread hop per call (docs/adr/0002-sqlite-inline.md).

aiosqlite runs every cursor call on a thread of its own and wakes the event loop for each
result: about 90 µs a call on a small VM, five to fifteen calls a transaction, which caps an
audited write near 700/s. SQLite in WAL mode answers in microseconds, so this driver presents
the coroutine interface SQLAlchemy's aiosqlite adapter expects, but each coroutine runs the
stdlib ``sqlite3`` call at once and finishes without suspending.

The engine gets a pool of exactly one connection: coroutines queue for it asynchronously, so
the loop never blocks on a lock another coroutine of this process holds; only another
process's write (the CLI) can make it wait, for as long as that short transaction lasts,
bounded by ``busy_timeout``.
"""

from __future__ import annotations

import sqlite3
import types
from collections.abc import Generator, Sequence
from typing import Any

from sqlalchemy import pool
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_dbapi,
    SQLiteDialect_aiosqlite,
)
from sqlalchemy.engine.url import URL


class _Cursor:
    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Any = ()) -> _Cursor:
        self._cursor.execute(sql, parameters)
        return self

    async def executemany(self, sql: str, seq: Sequence[Any]) -> _Cursor:
        self._cursor.executemany(sql, seq)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size if size is not None else self._cursor.arraysize)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    async def __aenter__(self) -> _Cursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.close()


class _Connection:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._conn = connection
        # The aiosqlite adapter checks this attribute before commit and rollback.
        self._connection: sqlite3.Connection | None = connection

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> _Cursor:
        # aiosqlite's cursor() is entered with ``async with``, not awaited; the adapter does so.
        return _Cursor(self._conn.cursor())

    async def commit(self) -> None:
        self._conn.commit()

    async def rollback(self) -> None:
        self._conn.rollback()

    async def close(self) -> None:
        if self._connection is not None:
            self._connection = None
            self._conn.close()

    def stop(self) -> None:
        if self._connection is not None:
            self._connection = None
            self._conn.close()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._conn.create_function(*args, **kwargs)


class _Connecting:
    """Like ``aiosqlite.connect``'s result: awaitable, with a ``_thread`` the adapter marks."""

    def __init__(self, database: str, kwargs: dict[str, Any]) -> None:
        self._thread = types.SimpleNamespace(daemon=True)
        self._database = database
        self._kwargs = kwargs

    def __await__(self) -> Generator[Any, None, _Connection]:
        if False:  # pragma: no cover -- makes this a generator without suspending
            yield
        return _Connection(sqlite3.connect(self._database, **self._kwargs))


class _Module(types.ModuleType):
    Connection = _Connection

    def connect(self, database: str, **kwargs: Any) -> _Connecting:
        return _Connecting(database, kwargs)


def _module() -> _Module:
    module = _Module("auxilio_sqlite_inline")
    for name in (
        "DatabaseError",
        "Error",
        "IntegrityError",
        "NotSupportedError",
        "OperationalError",
        "ProgrammingError",
        "InterfaceError",
        "InternalError",
        "DataError",
        "Warning",
        "sqlite_version",
        "sqlite_version_info",
    ):
        setattr(module, name, getattr(sqlite3, name))
    return module


class _AdaptedConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()

    @property
    def isolation_level(self) -> str | None:
        return self._connection.isolation_level  # type: ignore[no-any-return]

    @isolation_level.setter
    def isolation_level(self, value: str | None) -> None:
        # No worker thread to hop to: set it directly on the sqlite3 connection.
        self._connection._conn.isolation_level = value


class _Dbapi(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *args: Any, **kwargs: Any) -> _AdaptedConnection:
        from sqlalchemy.util import await_

        kwargs.pop("async_creator_fn", None)
        kwargs["check_same_thread"] = False
        return _AdaptedConnection(self, await_(self.aiosqlite.connect(*args, **kwargs)))


class SQLiteDialect_inline(SQLiteDialect_aiosqlite):
    driver = "inline"
    supports_statement_cache = True

    @classmethod
    def import_dbapi(cls) -> Any:
        return _Dbapi(_module(), sqlite3)

    @classmethod
    def get_pool_class(cls, url: URL) -> type[pool.Pool]:
        return pool.AsyncAdaptedQueuePool


def sqlite3_connection(driver_connection: Any) -> sqlite3.Connection | None:
    """The stdlib connection behind a pooled connection of this dialect (None for others).

    For the hottest write path (the audit append), whose statements run in the transaction
    SQLAlchemy already began on this very connection: docs/adr/0002.
    """
    if isinstance(driver_connection, _Connection) and driver_connection._connection is not None:
        return driver_connection._conn
    return None
