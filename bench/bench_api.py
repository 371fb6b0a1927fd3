"""REST API throughput: ticket create and ticket list against ``GET /healthz`` in the same run.

Starts the real server (uvicorn, SQLite in a temporary data directory) in a subprocess on
127.0.0.1, seeds an organisation, a technician on duty around the clock (so every opening runs
the routing) and an end user through the service layer, then drives it with N concurrent
httpx clients for a fixed number of requests per scenario. Prints one JSON object.

    .venv/bin/python bench/bench_api.py [--concurrency 16] [--requests 1000]

The health check is the trivial reference: the ratios say what the API itself costs (auth,
validation, the transaction, the audit chain) on this machine, independent of its speed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from auxilio.policy.roles import Role
from auxilio.server.app import prepare
from auxilio.server.audit.service import make_audit_signer
from auxilio.server.context import Actor
from auxilio.server.db.engine import create_engine, create_sessionmaker
from auxilio.server.identity import auth, service
from auxilio.server.keys import load_or_create_signing_key
from auxilio.server.settings import Settings, load_settings

ALWAYS = {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
PASSWORD = "bench password not for production"


def _settings(data_dir: Path, port: int) -> Settings:
    return load_settings(data_dir=data_dir, port=port, log_level="WARNING")


async def _seed(settings: Settings) -> dict[str, str]:
    """Organisation, technician and end user with login tokens, made by the service layer."""
    engine = create_engine(settings)
    maker = create_sessionmaker(engine)
    # Every audit append signs its chain's head, with the key the server will then use.
    key = load_or_create_signing_key(settings.signing_key_path)
    maker.configure(info={"audit_signer": make_audit_signer(settings, key)})
    try:
        async with maker() as db, db.begin():
            org = await service.create_organisation(
                db, slug="bench", name="Bench", actor=Actor.system()
            )
            tech = await service.create_user(
                db,
                organisation=org,
                email="tech@bench.test",
                display_name="Tech",
                role=Role.TECHNICIAN,
                password=PASSWORD,
                actor=Actor.system(org.id),
                skills=["software"],
                working_hours=ALWAYS,
            )
            user = await service.create_user(
                db,
                organisation=org,
                email="user@bench.test",
                display_name="User",
                role=Role.END_USER,
                password=PASSWORD,
                actor=Actor.system(org.id),
            )
            tokens = {}
            for name, person in (("tech", tech), ("user", user)):
                # Minted directly, as the test factories do: the bench measures the API, not TOTP.
                tokens[name], _ = await auth.issue_token(
                    db,
                    user=person,
                    kind="login",
                    name="bench",
                    ttl=timedelta(hours=2),
                    mfa_verified=True,
                    actor=auth.actor_for(person),
                )
            return tokens
    finally:
        await engine.dispose()


def _serve(data_dir: str, port: int) -> None:
    """The child process: the real app under uvicorn."""
    import uvicorn

    from auxilio.server.app import create_app

    settings = _settings(Path(data_dir), port)
    uvicorn.run(
        create_app(settings), host="127.0.0.1", port=port, log_level="warning", access_log=False
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _wait_ready(base: str, proc: subprocess.Popen[bytes]) -> None:
    async with asyncio.timeout(30), httpx.AsyncClient(base_url=base) as client:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/readyz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)


Request = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]


async def _measure(
    base: str, make: Request, *, total: int, concurrency: int, headers: dict[str, str]
) -> dict[str, Any]:
    """Run ``total`` requests spread over ``concurrency`` clients, each waiting for its answer."""
    next_index = 0
    latencies: list[float] = []
    errors: dict[int, int] = {}

    async def worker() -> None:
        nonlocal next_index
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:
            while next_index < total:
                index = next_index
                next_index += 1
                started = time.perf_counter()
                response = await make(client, index)
                latencies.append(time.perf_counter() - started)
                if response.status_code >= 400:
                    errors[response.status_code] = errors.get(response.status_code, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    ordered = sorted(latencies)
    return {
        "requests": total,
        "seconds": round(elapsed, 3),
        "rps": round(total / elapsed, 1),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1] * 1000, 2),
        "errors": errors,
    }


async def _drive(
    base: str, proc: subprocess.Popen[bytes], tokens: dict[str, str], args: argparse.Namespace
) -> dict[str, dict[str, Any]]:
    await _wait_ready(base, proc)
    user = {"Authorization": f"Bearer {tokens['user']}"}
    tech = {"Authorization": f"Bearer {tokens['tech']}"}
    n, c = args.requests, args.concurrency

    async def health(client: httpx.AsyncClient, _i: int) -> httpx.Response:
        return await client.get("/healthz")

    async def create(client: httpx.AsyncClient, i: int) -> httpx.Response:
        return await client.post(
            "/api/v1/tickets",
            json={
                "title": f"Bench ticket {i}",
                "category": "software",
                "description": "Measured by bench_api.py",
            },
        )

    async def listing(client: httpx.AsyncClient, _i: int) -> httpx.Response:
        return await client.get("/api/v1/tickets", params={"limit": 50})

    await _measure(base, health, total=min(n, 200), concurrency=c, headers={})  # warm-up
    return {
        "healthz": await _measure(base, health, total=n, concurrency=c, headers={}),
        "ticket_create": await _measure(base, create, total=n, concurrency=c, headers=user),
        "ticket_list": await _measure(base, listing, total=n, concurrency=c, headers=tech),
    }


def _run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="auxilio-bench-") as tmp:
        port = _free_port()
        settings = _settings(Path(tmp), port)
        prepare(settings)
        tokens = asyncio.run(_seed(settings))
        proc = subprocess.Popen([sys.executable, __file__, "--serve", tmp, str(port)])
        try:
            results = asyncio.run(_drive(f"http://127.0.0.1:{port}", proc, tokens, args))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    reference = results["healthz"]["rps"]
    return {
        "benchmark": "api",
        "database": "sqlite",
        "concurrency": args.concurrency,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "results": results,
        "ratios_to_healthz": {
            name: round(r["rps"] / reference, 3) for name, r in results.items() if name != "healthz"
        },
    }


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--serve":
        _serve(sys.argv[2], int(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--requests",
        type=int,
        default=1000,
        help="requests per scenario (each scenario runs exactly this many)",
    )
    args = parser.parse_args()
    print(json.dumps(_run(args), indent=2))


if __name__ == "__main__":
    main()
