"""Migrations go up, down and up again, and the models match what they build."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.ext.asyncio import create_async_engine

from auxilio.server.db.migrate import downgrade, upgrade
from auxilio.server.db.models import Base
from tests.conftest import worker_postgres_url


def urls(tmp_path: Path) -> list[str]:
    """SQLite in tmp_path, and PostgreSQL when configured: under pytest-xdist this worker's own
    database (tests/conftest.py), so that no other worker's tables vanish in the downgrade."""
    found = [f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"]
    if postgres := worker_postgres_url():
        found.append(postgres)
    return found


async def tables_and_diff(url: str) -> tuple[set[str], list[object]]:
    engine = create_async_engine(url)
    async with engine.connect() as conn:

        def inspect_it(sync_conn: object) -> tuple[set[str], list[object]]:
            names = set(inspect(sync_conn).get_table_names()) - {"alembic_version"}
            ctx = MigrationContext.configure(sync_conn, opts={"compare_type": True})
            return names, compare_metadata(ctx, Base.metadata)

        result = await conn.run_sync(inspect_it)
    await engine.dispose()
    return result


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_migrations_go_up_down_and_up_again(tmp_path: Path, backend: str) -> None:
    candidates = urls(tmp_path)
    url = candidates[0] if backend == "sqlite" else (candidates[1] if len(candidates) > 1 else None)
    if url is None:
        pytest.skip("AUXILIO_TEST_POSTGRES_URL is not set")
    upgrade(url)
    tables, diff = await tables_and_diff(url)
    assert tables == set(Base.metadata.tables)
    assert diff == [], f"models and migrations differ: {diff}"
    downgrade(url, "base")
    assert (await tables_and_diff(url))[0] == set()
    upgrade(url)
    assert (await tables_and_diff(url))[0] == set(Base.metadata.tables)


def test_the_heads_read_from_the_files_are_alembics_heads() -> None:
    from alembic.script import ScriptDirectory

    from auxilio.server.db.migrate import alembic_config, head_revisions

    script = ScriptDirectory.from_config(alembic_config("sqlite+aiosqlite://"))
    assert head_revisions() == frozenset(script.get_heads())


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_a_database_at_head_is_not_migrated_again_and_one_behind_is(
    tmp_path: Path, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The start-up fast path: one query when the database is at the newest revision, Alembic
    whenever it is not (new, behind, or unreadable this way)."""
    from auxilio.server.db import migrate as m
    from auxilio.server.settings import Settings

    candidates = urls(tmp_path)
    url = candidates[0] if backend == "sqlite" else (candidates[1] if len(candidates) > 1 else None)
    if url is None:
        pytest.skip("AUXILIO_TEST_POSTGRES_URL is not set")
    settings = Settings(data_dir=tmp_path / "data", database_url=url)
    calls: list[str] = []
    real_upgrade = m.upgrade
    monkeypatch.setattr(m, "upgrade", lambda u, **kw: (calls.append(u), real_upgrade(u, **kw)))

    if backend == "postgres":
        downgrade(url, "base")  # this worker's database holds the tables of the test before
    assert not m.current_revisions(url)  # new: no version table, or an empty one
    m.migrate(settings)
    assert m.current_revisions(url) == m.head_revisions()
    m.migrate(settings)
    assert len(calls) == 1  # at head: not migrated again

    (head,) = m.head_revisions()
    downgrade(url, "-1")
    assert m.current_revisions(url) not in (None, m.head_revisions())
    m.migrate(settings)
    assert len(calls) == 2
    assert m.current_revisions(url) == frozenset({head})
    assert (await tables_and_diff(url))[1] == []
