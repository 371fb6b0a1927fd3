"""Shared fixtures: a migrated database per backend, the real app, an HTTP client.

Every database test runs on SQLite, and on PostgreSQL too when AUXILIO_TEST_POSTGRES_URL is
set (scripts/test sets it when a server answers on 127.0.0.1:5432). Each backend is migrated
once per run; each test then starts from empty tables.

Under pytest-xdist (scripts/test runs ``-n 2``) each worker has a PostgreSQL database of its own,
``<database>_<run id>_<worker id>`` beside the one the URL names, created for the run and dropped
at its end: two workers, or two runs on one machine, truncating or migrating one database would
wipe each other's rows.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from argon2 import PasswordHasher
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from auxilio.server.app import create_app
from auxilio.server.db.migrate import downgrade, upgrade
from auxilio.server.db.models import Base
from auxilio.server.identity import secrets as identity_secrets
from auxilio.server.settings import Settings, load_settings

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def worker_postgres_url() -> str:
    """AUXILIO_TEST_POSTGRES_URL, or under pytest-xdist this worker's own database next to it
    (created when missing); "" when no PostgreSQL is configured."""
    base = os.environ.get("AUXILIO_TEST_POSTGRES_URL", "")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not base or not worker:
        return base
    url = make_url(base)
    name = _worker_database_name(url.database or url.username or "postgres", worker)
    # The configured database exists (scripts/test checked it); CREATE DATABASE runs from it.
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if found is None:
            with contextlib.suppress(psycopg.errors.DuplicateDatabase):
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return url.set(database=name).render_as_string(hide_password=False)


def _worker_database_name(base: str, worker: str) -> str:
    """<base>_<run id>_<worker>: the run id (pytest-xdist's, the same in every worker of a run)
    keeps a second run on the machine, a CI run beside a developer's, off this run's tables."""
    run = "".join(c for c in os.environ.get("PYTEST_XDIST_TESTRUNUID", "") if c.isalnum())[:8]
    return f"{base}_{run}_{worker}" if run else f"{base}_{worker}"


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A worker drops the database it made for the run (worker_postgres_url)."""
    base = os.environ.get("AUXILIO_TEST_POSTGRES_URL", "")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not base or not worker:
        return
    url = make_url(base)
    name = _worker_database_name(url.database or url.username or "postgres", worker)
    admin = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with (
        contextlib.suppress(psycopg.Error),
        psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn,
    ):
        drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
        conn.execute(drop.format(sql.Identifier(name)))


SCHEDULING_LOG = Path(__file__).resolve().parent.parent / "test-scheduling.log"


def _normal_scheduling(when: str) -> None:
    """Back to the normal time-sharing policy if this process was found under a real-time one.

    A CI run was once found with one xdist worker, and every server and browser it had started
    since, under SCHED_FIFO 99: chromium's idle processes then spun in the kernel at real-time
    priority and starved both cores for the rest of the run. The cause was SVT-AV1 (the test
    pictures of tests/web/js_harness/screen_media.py, which now set the policy back themselves):
    run as root it raises the thread driving it. Nothing in Auxilio asks for a real-time policy;
    should anything else, the tests run under the normal one, and SCHEDULING_LOG (which .ci/run
    prints) says when it was found.
    """
    if not hasattr(os, "sched_getscheduler") or not os.path.isdir("/proc/self/task"):
        return
    found = []
    # Every thread of this worker (the policy is a thread's; what it starts inherits it). Read
    # from /proc, not psutil: a test may hide psutil from sys.modules while this runs.
    for name in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):
            thread = int(name)
            policy = os.sched_getscheduler(thread)
            if policy != os.SCHED_OTHER:
                os.sched_setscheduler(thread, os.SCHED_OTHER, os.sched_param(0))
                found.append(f"thread {thread} policy {policy}")
    if found:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        with SCHEDULING_LOG.open("a", encoding="utf-8") as log:
            log.write(f"{worker}: {', '.join(found)} found {when}; set back to normal\n")


def pytest_configure(config: pytest.Config) -> None:
    _normal_scheduling("as the run started")


def pytest_runtest_setup(item: pytest.Item) -> None:
    _normal_scheduling(f"before {item.nodeid}")


def pytest_runtest_teardown(item: pytest.Item) -> None:
    _normal_scheduling(f"after {item.nodeid}")


# Files of minutes each (a browser and a live server, or real processes), handed out first.
SLOW_FIRST = ("tests/web/", "tests/e2e/")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist (--dist loadfile) the slow files run first, so that the last files
    handed out are short ones and no worker is left alone with a long one at the end. The sort
    is stable: each file keeps its order, and a run without xdist keeps collection order."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=lambda item: not item.nodeid.startswith(SLOW_FIRST))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "auxilio.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """This worker's PostgreSQL URL (see worker_postgres_url); skips when none is configured."""
    url = worker_postgres_url()
    if not url:
        pytest.skip("AUXILIO_TEST_POSTGRES_URL is not set")
    return url


@pytest.fixture(scope="session")
def postgres_migrated(postgres_url: str) -> str:
    downgrade(postgres_url, "base")
    upgrade(postgres_url)
    return postgres_url


async def _truncate_postgres(url: str) -> None:
    engine = create_async_engine(url)
    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    await engine.dispose()


@pytest.fixture(params=BACKENDS)
async def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> str:
    if request.param == "sqlite":
        path = tmp_path / "data" / "auxilio.db"
        path.parent.mkdir()
        shutil.copy(sqlite_template, path)
        return f"sqlite+aiosqlite:///{path}"
    url: str = request.getfixturevalue("postgres_migrated")
    await _truncate_postgres(url)
    return url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return load_settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        audit_checkpoint_every=50,
        audit_checkpoint_seconds=3600,
        # Tests that wait for the agent's socket to close do not wait two minutes for a summary.
        report_wait_seconds=2,
    )


@pytest.fixture(scope="session")
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
async def app(settings: Settings, signing_key: Ed25519PrivateKey) -> AsyncIterator[FastAPI]:
    application = create_app(settings, signing_key=signing_key)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


@pytest.fixture
async def db(app: FastAPI) -> AsyncIterator[AsyncSession]:
    """A database session for arranging and checking state; the test commits what it arranges."""
    async with app.state.sessionmaker() as session:
        yield session


@pytest.fixture(autouse=True)
def _cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """argon2id at its cheapest in this process: the algorithm, the encoding and every code path
    stay the real ones, only the cost drops (0.17 s a hash on this machine, and the suite makes
    thousands of people). The servers the end-to-end tests start run with the real parameters;
    tests/server/identity/test_password_parameters.py checks those."""
    monkeypatch.setattr(
        identity_secrets, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )
    monkeypatch.setattr(identity_secrets, "_DUMMY_HASH", None)
    yield


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Tests talk to 127.0.0.1 only; a proxy variable must never reroute them.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    yield
