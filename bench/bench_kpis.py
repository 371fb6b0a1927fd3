"""KPI benchmark: the reporting's ``kpi_report`` over a large generated activity, next to a
plain aggregate scan of the same tables in the same run.

For each database (a temporary SQLite file, and PostgreSQL with ``--pg URL``, whose database is
dropped and created again: give it one of its own), the benchmark migrates an empty database,
writes ``--tickets`` tickets with their time entries, support sessions and surveys
(``auxilio.server.demo.activity.generate_activity``, 200 days from 2026-01-01), and then times,
best of ``--repeat``:

  - ``kpi_report``: every KPI over the whole generated period, no slice
  - ``kpi_report_by_policy_version``: the same with ``slice_by=policy_version``
  - ``reference_scan``: a plain aggregate scan of the same tables: one aggregate query per
    table (tickets, support_sessions, surveys, ticket_time_entries), no GROUP BY, no sort, no
    join, reading the columns the KPIs read with the same duration arithmetic
    (``queries.seconds_between``): on tickets the count, the sums of resolved_at - created_at
    and of first_response_at - created_at in seconds, of reopen_count and of contact_count; the
    count of activated sessions; the count of surveys and sum of their scores; the count of time
    entries and sum of their seconds (the time is the sum of the four queries)

Goal (issue 14): each KPI report <= 3x the reference scan. Slow figures are reported in
``goals_met``, never an exit code. On PostgreSQL the load is followed by ``VACUUM ANALYZE`` (what
autovacuum would do after such a load before anyone reads a report); SQLite gets no ANALYZE, as
the server never runs one.

    .venv/bin/python bench/bench_kpis.py [--tickets 1000000 | --short] [--pg URL]
        [--no-sqlite] [--repeat 3] [--out results.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import Select, func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from auxilio.server.db.engine import create_engine, create_sessionmaker
from auxilio.server.db.migrate import upgrade
from auxilio.server.db.models import Base
from auxilio.server.demo.activity import ActivitySummary, generate_activity
from auxilio.server.reporting.queries import seconds_between
from auxilio.server.reporting.schemas import Period, SliceBy
from auxilio.server.reporting.service import kpi_report
from auxilio.server.settings import load_settings

START = datetime(2026, 1, 1, tzinfo=UTC)
DAYS = 200
GOAL_RATIO = 3.0
REFERENCE_DESCRIPTION = (
    "plain aggregate scan of the same tables: one aggregate query per table, no GROUP BY, no "
    "sort, no join, with the KPIs' duration arithmetic (queries.seconds_between): tickets "
    "count(*), sum(resolved_at - created_at), sum(first_response_at - created_at) in seconds, "
    "sum(reopen_count), sum(contact_count); support_sessions count(activated_at); surveys "
    "count(*), sum(score); ticket_time_entries count(*), sum(seconds)"
)


def reference_queries() -> list[Select[Any]]:
    """The reference scan's four queries (REFERENCE_DESCRIPTION)."""
    tables = Base.metadata.tables
    t, ss = tables["tickets"], tables["support_sessions"]
    s, te = tables["surveys"], tables["ticket_time_entries"]
    return [
        select(func.count(), func.sum(seconds_between(t.c.resolved_at, t.c.created_at)),
               func.sum(seconds_between(t.c.first_response_at, t.c.created_at)),
               func.sum(t.c.reopen_count), func.sum(t.c.contact_count)),
        select(func.count(ss.c.activated_at)),
        select(func.count(), func.sum(s.c.score)),
        select(func.count(), func.sum(te.c.seconds)),
    ]


async def best_of(repeat: int, work: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = await work()
        best = min(best, time.perf_counter() - started)
    return best, result


async def reference_scan(engine: AsyncEngine) -> list[Any]:
    async with engine.connect() as conn:
        rows = [tuple((await conn.execute(q)).one()) for q in reference_queries()]
        await conn.rollback()
    return rows


async def measure(url: str, data_dir: Path, tickets: int, repeat: int, seed: int) -> dict[str, Any]:
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(load_settings(data_dir=data_dir, database_url=url))
    try:
        per_day = -(-tickets // DAYS)
        started = time.perf_counter()
        summary: ActivitySummary = await generate_activity(
            engine, start=START, days=DAYS, tickets_per_day=per_day, seed=seed
        )
        generate_seconds = time.perf_counter() - started
        if engine.dialect.name == "postgresql":
            async with engine.connect() as conn:
                autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await autocommit.exec_driver_sql("VACUUM ANALYZE")
        period = Period(start=summary.start, end=summary.end)
        maker = create_sessionmaker(engine)

        async def report(slice_by: SliceBy | None) -> Any:
            async with maker() as db:
                return await kpi_report(
                    db, organisation_id=summary.organisation_id, period=period,
                    slice_by=slice_by, now=summary.end,
                )

        scan_s, scanned = await best_of(repeat, lambda: reference_scan(engine))
        kpi_s, overall = await best_of(repeat, lambda: report(None))
        sliced_s, by_version = await best_of(repeat, lambda: report(SliceBy.POLICY_VERSION))
    finally:
        await engine.dispose()
    rows = summary.tickets + summary.sessions + summary.surveys + summary.time_entries
    created = overall.overall.kpis["tickets_created"].value
    return {
        "tickets": summary.tickets,
        "support_sessions": summary.sessions,
        "surveys": summary.surveys,
        "time_entries": summary.time_entries,
        "generate_seconds": round(generate_seconds, 1),
        "generate_rows_per_s": round(rows / generate_seconds),
        "reference_scan_s": round(scan_s, 4),
        "kpi_report_s": round(kpi_s, 4),
        "kpi_report_by_policy_version_s": round(sliced_s, 4),
        "kpi_report_ratio": round(kpi_s / scan_s, 2),
        "kpi_report_by_policy_version_ratio": round(sliced_s / scan_s, 2),
        # Sanity: the report counted every generated ticket, as the scan did.
        "report_tickets_created": created,
        "scan_tickets": scanned[0][0],
        "policy_version_rows": [row.key for row in by_version.rows],
    }


def recreate_postgres(url: str) -> None:
    parsed = make_url(url)
    name = parsed.database
    if not name or name in ("postgres", "template0", "template1"):
        raise SystemExit("--pg needs a database of its own (it is dropped and created again)")
    admin = parsed.set(drivername="postgresql", database="postgres")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def goals(result: dict[str, Any]) -> dict[str, bool]:
    met: dict[str, bool] = {}
    for backend in ("sqlite", "postgresql"):
        figures = result.get(backend)
        if figures is None:
            continue
        for kpi in ("kpi_report", "kpi_report_by_policy_version"):
            met[f"{backend}_{kpi}_le_3x_scan"] = figures[f"{kpi}_ratio"] <= GOAL_RATIO
        met[f"{backend}_counts_agree"] = (
            figures["report_tickets_created"] == figures["scan_tickets"] == figures["tickets"]
        )
    return met


async def main(args: argparse.Namespace) -> dict[str, Any]:
    tickets = 50_000 if args.short else args.tickets
    result: dict[str, Any] = {
        "benchmark": "kpis",
        "python": sys.version.split()[0],
        "tickets_asked": tickets,
        "days": DAYS,
        "repeat": args.repeat,
        "goal": f"kpi_report <= {GOAL_RATIO:g}x reference_scan",
        "reference": REFERENCE_DESCRIPTION,
    }
    if not args.no_sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
            result["sqlite"] = await measure(url, Path(tmp), tickets, args.repeat, args.seed)
    if args.pg:
        await asyncio.to_thread(recreate_postgres, args.pg)
        with tempfile.TemporaryDirectory() as tmp:
            result["postgresql"] = await measure(
                args.pg, Path(tmp), tickets, args.repeat, args.seed
            )
        if not args.keep:
            await asyncio.to_thread(recreate_postgres, args.pg)  # leaves it empty again
    result["goals_met"] = goals(result)
    return result


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--short", action="store_true", help="50,000 tickets")
    parser.add_argument("--pg", help="a PostgreSQL URL whose database this may drop and create")
    parser.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL data")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, help="also write the JSON to this file")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    report = asyncio.run(main(args))
    report["run_seconds"] = round(time.perf_counter() - started, 1)
    output = json.dumps(report, indent=2)
    print(output)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(output + "\n")
    # A slow figure never fails; a report that miscounts the tickets does (CI runs --short).
    agree = [ok for name, ok in report["goals_met"].items() if name.endswith("_counts_agree")]
    return 0 if all(agree) else 1


if __name__ == "__main__":
    sys.exit(run())
