"""An engine on the migrated test database (tests/conftest.py's ``database_url``, both
backends) and the hand-computed fixture written into it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from tests.server.reporting.rows import Fixture, hand_fixture


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def reporting_db(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    async with AsyncSession(engine) as db:
        yield db


@pytest.fixture
async def fixture_rows(engine: AsyncEngine) -> Fixture:
    async with engine.begin() as conn:
        return await hand_fixture(conn)
