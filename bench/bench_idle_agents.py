"""Idle enrolled agents held by one server node (issue 13; goal: 20,000 at <= 50 KiB each), next
to a bare WebSocket server holding the same connections in the same run.

Prints one JSON object. Run: ``.venv/bin/python bench/bench_idle_agents.py [--agents 20000]``,
``--short`` for CI (500 agents).

* ``reference``: ``websockets.serve`` (the websockets library's asyncio server, in a process of
  its own) echoing every message, pinging every 20 s like ``auxilio serve``.
* ``auxilio``: a real ``auxilio serve`` (SQLite) with N enrolled devices written into its
  database (an organisation, an owner, N devices with their Ed25519 keys in the group
  ``bench``). Each simulated agent does what ``auxilio agent run`` does on the wire:
  ``agent.hello`` with its device id, ``agent.auth`` (the challenge signed with its device key),
  waits for ``device.ready``, then sends ``agent.heartbeat`` every 25 s (staggered).

The simulated agents are asyncio + websockets clients in a few worker processes (no pings of
their own, no compression, like the agent), each bound to its own 127.0.0.x source address so
the ephemeral port range never runs out. The open-files limit is raised to what N connections
need. For each server: RSS before the agents connect and once all are connected and idle (per
connection: the difference over N), the time to connect them all, and the server's CPU time
(user + system) over one heartbeat period with every agent idle.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import resource
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve()
VENV_BIN = Path(sys.executable).parent
HEARTBEAT_SECONDS = 25.0
GOAL_KIB = 50
PER_WORKER = 5000
CONCURRENCY = 16  # handshakes in flight per worker
RAISED_WS_RATE = 10_000_000
# File descriptors a server needs besides its connections (database, log, listening socket).
FD_MARGIN = 300


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raise_open_files(need: int) -> dict[str, int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(soft, need)
    if want > hard:
        try:  # root may raise the hard limit, up to fs.nr_open
            nr_open = int(Path("/proc/sys/fs/nr_open").read_text())
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, nr_open), min(want, nr_open)))
        except (OSError, ValueError):
            want = hard
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    else:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return {"soft": soft, "hard": hard}


def port_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999


# -- the worker: N simulated agents ---------------------------------------------------------------


def heartbeat_text() -> str:
    now = datetime.now(UTC).isoformat()
    return json.dumps({"type": "agent.heartbeat", "id": uuid.uuid4().hex[:16], "sent_at": now})


def closed_as(ws: Any) -> str:
    """How a connection ended, as the worker reports it: the server's close code and reason."""
    frame = ws.close_rcvd
    return f"{frame.code} {frame.reason}" if frame is not None else "no close frame"


async def hold(ws: Any, period: float, closes: dict[str, int]) -> None:
    """Idle: a heartbeat every ``period`` seconds (the first at a random offset), reading and
    dropping whatever the server sends; how it ended is counted in ``closes``."""

    async def reader() -> None:
        with contextlib.suppress(Exception):
            async for _ in ws:
                pass
        name = closed_as(ws)
        closes[name] = closes.get(name, 0) + 1

    task = asyncio.ensure_future(reader())
    try:
        await asyncio.sleep(random.uniform(0, period))
        while True:
            await ws.send(heartbeat_text())
            await asyncio.sleep(period)
    finally:
        task.cancel()


async def agent_handshake(ws: Any, device_id: str, key: Any) -> None:
    from auxilio.crypto.keys import encode_public_key
    from auxilio.crypto.signing import sign_agent_challenge

    await ws.send(json.dumps({
        "type": "agent.hello", "id": uuid.uuid4().hex[:16], "device_id": device_id,
        "device_public_key": encode_public_key(key.public_key()), "agent_version": "bench",
        "platform": "linux", "protocol_version": 1, "min_protocol_version": 1,
        "capabilities": ["chat", "diagnostics", "runbooks"],
    }))  # fmt: skip
    hello = json.loads(await ws.recv())
    if hello.get("type") != "server.hello":
        raise RuntimeError(f"expected server.hello, got {hello.get('type')}: {hello}")
    signature = sign_agent_challenge(key, challenge=hello["challenge"],
                                     server_fingerprint=hello["server_fingerprint"])
    await ws.send(json.dumps({"type": "agent.auth", "id": uuid.uuid4().hex[:16],
                              "signature": signature}))
    ready = json.loads(await ws.recv())
    if ready.get("type") != "device.ready":
        raise RuntimeError(f"expected device.ready, got {ready}")


async def worker(args: argparse.Namespace) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from websockets.asyncio.client import connect

    from auxilio.crypto.keys import b64url_decode

    devices: list[tuple[str, Any]] = []
    if args.keys:
        text = await asyncio.to_thread(Path(args.keys).read_text)
        rows = json.loads(text)[args.start:args.start + args.count]
        devices = [(d, Ed25519PrivateKey.from_private_bytes(b64url_decode(k))) for d, k in rows]
    count = args.count
    gate = asyncio.Semaphore(CONCURRENCY)
    sockets: list[Any] = []
    errors: dict[str, int] = {}
    closes: dict[str, int] = {}
    holders: list[asyncio.Task[None]] = []

    async def one(index: int) -> None:
        async with gate:
            try:
                ws = await connect(args.url, ping_interval=None, compression=None,
                                   open_timeout=120, close_timeout=1,
                                   local_addr=(args.source, 0))  # fmt: skip
                if devices:
                    device_id, key = devices[index]
                    await asyncio.wait_for(agent_handshake(ws, device_id, key), 120)
            except Exception as exc:  # counted and reported; the run goes on
                name = f"{type(exc).__name__}: {str(exc)[:120]}"
                errors[name] = errors.get(name, 0) + 1
                return
        sockets.append(ws)
        holders.append(asyncio.ensure_future(hold(ws, args.period, closes)))

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    seconds = time.perf_counter() - started
    print(json.dumps({"connected": len(sockets), "errors": errors,
                      "seconds": round(seconds, 2)}), flush=True)  # fmt: skip
    # Each line on stdin asks how many are still open; the end of stdin ends the worker.
    loop = asyncio.get_running_loop()
    while await loop.run_in_executor(None, sys.stdin.readline):
        alive = sum(1 for ws in sockets if ws.state.name == "OPEN")
        print(json.dumps({"open": alive, "closed": closes}), flush=True)
    os._exit(0)  # closing 5,000 sockets politely is not what is measured


async def echo_server(port: int) -> None:
    from websockets.asyncio.server import serve

    async def echo(ws: Any) -> None:
        with contextlib.suppress(Exception):
            async for message in ws:
                await ws.send(message)

    async with serve(echo, "127.0.0.1", port, ping_interval=20, ping_timeout=20,
                     compression=None, backlog=4096):  # fmt: skip
        print("listening", flush=True)
        await asyncio.Future()


# -- the parent ------------------------------------------------------------------------------------


def start_workers(url: str, count: int, keys: Path | None, period: float) -> list[Any]:
    workers = []
    parts = max(1, math.ceil(count / PER_WORKER))
    low, high = port_range()
    if (high - low) * 0.9 <= PER_WORKER:
        raise RuntimeError("the ephemeral port range cannot hold one worker's connections")
    for part in range(parts):
        start, size = part * PER_WORKER, min(PER_WORKER, count - part * PER_WORKER)
        argv = [sys.executable, str(HERE), "--worker", "--url", url, "--start", str(start),
                "--count", str(size), "--source", f"127.0.0.{2 + part}", "--period", str(period)]
        if keys is not None:
            argv += ["--keys", str(keys)]
        workers.append(subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True))  # fmt: skip
    return workers


def wait_ready(workers: list[Any]) -> dict[str, Any]:
    connected, errors, seconds = 0, {}, 0.0
    for proc in workers:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError("a worker died before connecting")
        report = json.loads(line)
        connected += report["connected"]
        seconds = max(seconds, report["seconds"])
        for name, n in report["errors"].items():
            errors[name] = errors.get(name, 0) + n
    return {"connected": connected, "errors": errors, "connect_seconds": seconds}


def still_open(workers: list[Any]) -> tuple[int, dict[str, int]]:
    """How many connections the workers still hold, and how the others were closed."""
    total, closes = 0, {}
    for proc in workers:
        proc.stdin.write("count\n")
        proc.stdin.flush()
    for proc in workers:
        report = json.loads(proc.stdout.readline())
        total += report["open"]
        for name, n in report["closed"].items():
            closes[name] = closes.get(name, 0) + n
    return total, closes


def stop_workers(workers: list[Any]) -> None:
    for proc in workers:
        with contextlib.suppress(BrokenPipeError):
            proc.stdin.close()
    for proc in workers:
        proc.wait(timeout=60)


def tree(proc: psutil.Process) -> list[psutil.Process]:
    return [proc, *proc.children(recursive=True)]


def rss(proc: psutil.Process) -> int:
    return sum(p.memory_info().rss for p in tree(proc))


def cpu(proc: psutil.Process) -> float:
    total = 0.0
    for p in tree(proc):
        times = p.cpu_times()
        total += times.user + times.system
    return total


def measure(server: psutil.Process, url: str, count: int, keys: Path | None,
            period: float) -> dict[str, Any]:  # fmt: skip
    time.sleep(2)
    before = rss(server)
    workers = start_workers(url, count, keys, period)
    try:
        ready = wait_ready(workers)
        time.sleep(3)  # let the last handshakes' work settle
        held, _ = still_open(workers)
        after = rss(server)
        cpu_start, wall_start = cpu(server), time.perf_counter()
        time.sleep(period)
        cpu_seconds = cpu(server) - cpu_start
        wall = time.perf_counter() - wall_start
        after_period = rss(server)
        held_after, closes = still_open(workers)
    finally:
        stop_workers(workers)
    # Per connection open when the RSS was read (memory freed by those closed before is
    # seldom given back to the system, so this leans high, never low).
    per = (after - before) / held if held else None
    return {
        **ready, "open_when_measured": held, "open_after_period": held_after,
        "closed_by_server": closes,
        "rss_before_mib": round(before / 2**20, 1), "rss_after_mib": round(after / 2**20, 1),
        "rss_after_period_mib": round(after_period / 2**20, 1),
        "rss_per_connection_kib": round(per / 1024, 2) if per is not None else None,
        "heartbeat_period_seconds": round(wall, 1),
        "cpu_seconds_over_period": round(cpu_seconds, 3),
        "cpu_percent_over_period": round(100 * cpu_seconds / wall, 2),
        "cpu_ms_per_1000_agents_per_period": round(1000 * cpu_seconds / held_after * 1000, 2)
        if held_after else None,
    }  # fmt: skip


def reference(count: int, period: float) -> dict[str, Any]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(HERE), "--echo-server", str(port)],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "listening"
        import websockets

        result = measure(psutil.Process(proc.pid), f"ws://127.0.0.1:{port}/", count, None, period)
        return {"server": f"websockets {websockets.__version__} asyncio serve (echo)", **result}
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def enrol_devices(data_dir: Path, count: int) -> list[tuple[str, str]]:
    """An organisation, an owner and ``count`` enrolled devices, written straight into the
    database (enrolment itself is not what is measured); their ids and private keys."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )
    from sqlalchemy import insert

    from auxilio.crypto.keys import b64url_encode, encode_public_key, fingerprint
    from auxilio.policy.roles import Role
    from auxilio.server.app import prepare
    from auxilio.server.audit.service import make_audit_signer
    from auxilio.server.context import Actor
    from auxilio.server.db.engine import create_engine, create_sessionmaker
    from auxilio.server.devices.models import Device
    from auxilio.server.identity import service
    from auxilio.server.settings import load_settings

    settings = load_settings(data_dir=data_dir)
    server_key = prepare(settings).signing_key
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    sessionmaker.configure(info={"audit_signer": make_audit_signer(settings, server_key)})
    now = datetime.now(UTC)
    rows, keys = [], []
    async with sessionmaker() as db, db.begin():
        org = await service.create_organisation(db, slug="bench", name="Bench",
                                                actor=Actor.system())  # fmt: skip
        owner = await service.create_user(
            db, organisation=org, email="owner@bench.example", display_name="Owner",
            role=Role.END_USER, password="a long enough password", actor=Actor.system(org.id))
        for i in range(count):
            key = Ed25519PrivateKey.generate()
            device_id = uuid.uuid4()
            rows.append({
                "id": device_id, "organisation_id": org.id, "owner_id": owner.id,
                "name": f"bench-{i}", "platform": "linux", "device_group": "bench",
                "public_key": encode_public_key(key.public_key()),
                "fingerprint": fingerprint(key.public_key()), "created_at": now,
                "enrolled_at": now, "agent_version": "bench",
            })  # fmt: skip
            raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
            keys.append((str(device_id), b64url_encode(raw)))
        for chunk in range(0, count, 1000):
            await db.execute(insert(Device), rows[chunk:chunk + 1000])
    await engine.dispose()
    return keys


def refusals(log_text: str) -> dict[str, int]:
    """The server's refusals of agent connections by code (``refused: <code> ...`` lines)."""
    found: dict[str, int] = {}
    for line in log_text.splitlines():
        _, marker, rest = line.partition("refused: ")
        if marker:
            code = rest.split(" ", 1)[0]
            found[code] = found.get(code, 0) + 1
    return found


def auxilio(count: int, period: float) -> dict[str, Any]:
    import httpx

    with tempfile.TemporaryDirectory(prefix="auxilio-bench-idle-") as tmp:
        data_dir = Path(tmp) / "data"
        started = time.perf_counter()
        keys = asyncio.run(enrol_devices(data_dir, count))
        enrol_seconds = time.perf_counter() - started
        keys_path = Path(tmp) / "keys.json"
        keys_path.write_text(json.dumps(keys))
        port = free_port()
        log_path = Path(tmp) / "server.log"
        # Every simulated agent comes from 127.0.0.x: the per-address and node-wide limits on
        # unauthenticated WebSockets (120 and 6,000 a minute) would spread the connections over
        # minutes, which is not what is measured; raised here, reported in the result.
        env = {**os.environ, "AUXILIO_AUDIT_CHECKPOINT_SECONDS": "3600",
               "AUXILIO_RATE_WS_PER_ADDRESS_PER_MINUTE": str(RAISED_WS_RATE),
               "AUXILIO_RATE_WS_GLOBAL_PER_MINUTE": str(RAISED_WS_RATE)}
        with log_path.open("w") as log:
            proc = subprocess.Popen(
                [str(VENV_BIN / "auxilio"), "serve", "--port", str(port), "--data-dir",
                 str(data_dir)], stdout=log, stderr=subprocess.STDOUT, env=env)  # fmt: skip
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                        break
                time.sleep(0.2)
            else:
                raise RuntimeError(f"server did not start: {log_path.read_text()}")
            result = measure(psutil.Process(proc.pid), f"ws://127.0.0.1:{port}/ws/agent", count,
                             keys_path, period)  # fmt: skip
        finally:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=60)
            if proc.poll() is None:
                proc.kill()
        log_text = log_path.read_text(errors="replace")
    return {"server": "auxilio serve (SQLite, uvicorn websockets-sansio)",
            "ws_rate_limits_per_minute": {"per_address": RAISED_WS_RATE,
                                          "node_wide": RAISED_WS_RATE},
            "devices_written_seconds": round(enrol_seconds, 1), **result,
            "tracebacks_in_log": log_text.count("Traceback"),
            "refusals_in_log": refusals(log_text)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=20_000)
    parser.add_argument("--short", action="store_true", help="500 agents (CI)")
    parser.add_argument("--period", type=float, default=HEARTBEAT_SECONDS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--echo-server", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--keys", help=argparse.SUPPRESS)
    parser.add_argument("--start", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--source", default="127.0.0.1", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        raise_open_files(args.count + 256)
        asyncio.run(worker(args))
        return
    if args.echo_server:
        asyncio.run(echo_server(args.echo_server))
        return
    asked = 500 if args.short else args.agents
    limits = raise_open_files(asked + FD_MARGIN)  # inherited by the servers and the workers
    # One server process holds every connection: where the hard limit cannot be raised (a
    # container without CAP_SYS_RESOURCE), as many as it allows.
    count = min(asked, limits["soft"] - FD_MARGIN)
    result: dict[str, Any] = {
        "agents": count, "agents_asked": asked,
        "limited_by_open_files": count < asked,
        "python": sys.version.split()[0], "cpus": os.cpu_count(),
        "open_files_limit": limits, "ip_local_port_range": list(port_range()),
        "agents_per_worker_process": PER_WORKER,
    }  # fmt: skip
    result["reference"] = reference(count, args.period)
    result["auxilio"] = auxilio(count, args.period)
    ref, aux = result["reference"], result["auxilio"]
    per = aux["rss_per_connection_kib"]
    result["goal_kib_per_connection"] = GOAL_KIB
    result["goal_met"] = (aux["open_after_period"] == count and per is not None
                          and per <= GOAL_KIB)
    if ref["rss_per_connection_kib"] and per:
        result["rss_per_connection_vs_reference"] = round(per / ref["rss_per_connection_kib"], 2)
    print(json.dumps(result, indent=2))
    # Slow figures never fail; a connection the server lost or a traceback in its log does.
    if aux["open_after_period"] != count or aux["tracebacks_in_log"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
