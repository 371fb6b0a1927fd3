"""Relay benchmark: Auxilio's relay against a plain TCP relay and websockify, in the same run.

Prints one JSON object. Run: ``.venv/bin/python bench/bench_relay.py [--mib 256]``.

Every relay runs in its own subprocess on 127.0.0.1 (so its CPU time can be read with psutil);
both endpoints run in this process. Cases:

* ``tcp``: a tiny asyncio relay that pairs two TCP connections and copies bytes both ways.
* ``websockify``: websockify from PyPI relaying a WebSocket client to a plain TCP endpoint.
* ``stack_*``: a minimal pairing relay (the shape of Auxilio's) on each candidate WebSocket
  stack: uvicorn with ``websockets``, ``websockets-sansio`` or ``wsproto``, and the websockets
  library's own server; with and without permessage-deflate on uvicorn/websockets. These
  decide docs/adr/0003-relay-websocket-stack.md.
* ``auxilio``: ``auxilio serve`` with a real support session (``_relay_auxilio.py``): a test agent
  and a test technician with real keys, frames ``/ws/agent`` -> ``/ws/technician``. Its
  ``recording`` figures compare, on the same server in the same run, that session with a
  recorded one (every frame appended to the session's recording file); goal <= 10 %.
  ``auxilio_sansio``: the same app on uvicorn's ``websockets-sansio`` without deflate (ADR 0003).

Per case: throughput (MB/s of 64 KiB frames, one direction), relay CPU seconds per GB
(user+system of the relay process tree), round-trip time of 100-byte messages (p50/p99 µs).
The E2E cost is the same transfer with ``E2ESession.seal``/``open`` at the ends.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

FRAME = 64 * 1024
PING = 100
# Every payload starts with a valid binary frame header (version 1, terminal channel, no flags):
# Auxilio's relay checks it, the others ignore it.
HEADER = bytes((1, 2, 0))
HERE = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent


# -- endpoints ---------------------------------------------------------------------------------


@dataclass
class End:
    """One side of a relayed pipe: ``send`` a message, ``recv`` whatever arrives next."""

    send: Callable[[bytes], Awaitable[None]]
    recv: Callable[[], Awaitable[bytes]]
    close: Callable[[], Awaitable[None]]


def tcp_end(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> End:
    async def send(data: bytes) -> None:
        writer.write(data)
        await writer.drain()

    async def recv() -> bytes:
        data = await reader.read(1 << 20)
        if not data:
            raise ConnectionError("closed")
        return data

    async def close() -> None:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()

    return End(send, recv, close)


def ws_end(ws: Any) -> End:
    async def recv() -> bytes:
        data = await ws.recv()
        return data if isinstance(data, bytes) else data.encode()

    return End(ws.send, recv, ws.close)


async def ws_connect(url: str, *, deflate: bool = False) -> Any:
    from websockets.asyncio.client import connect

    return await connect(
        url,
        max_size=None,
        compression="deflate" if deflate else None,
        open_timeout=10,
        ping_interval=None,
    )


# -- measurements ------------------------------------------------------------------------------


def tree_cpu(pid: int) -> float:
    """User+system CPU seconds of a process and its live children (websockify forks one per
    connection; sample before the connection closes)."""
    proc = psutil.Process(pid)
    total = 0.0
    for each in [proc, *proc.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = each.cpu_times()
            total += times.user + times.system
    return total


async def transfer(
    sender: End,
    receiver: End,
    total: int,
    *,
    seal: Callable[[bytes], bytes] | None = None,
    open_: Callable[[bytes], bytes] | None = None,
) -> float:
    """Seconds to move ``total`` bytes of 64 KiB frames from ``sender`` to ``receiver``."""
    payload = HEADER + os.urandom(FRAME - len(HEADER))
    frames = total // FRAME

    async def produce() -> None:
        for _ in range(frames):
            await sender.send(seal(payload) if seal else payload)

    async def consume() -> None:
        if open_ is not None:  # message transports only: one recv is one sealed frame
            for _ in range(frames):
                open_(await receiver.recv())
            return
        got = 0
        while got < frames * FRAME:
            got += len(await receiver.recv())

    start = time.perf_counter()
    await asyncio.gather(produce(), consume())
    return time.perf_counter() - start


async def round_trips(a: End, b: End, count: int) -> list[float]:
    """``a`` sends 100 bytes, ``b`` echoes them; microseconds per round trip."""
    message = HEADER + os.urandom(PING - len(HEADER))

    async def read_exact(end: End) -> bytes:
        data = b""
        while len(data) < PING:
            data += await end.recv()
        return data

    async def echo() -> None:
        for _ in range(count):
            await b.send(await read_exact(b))

    echoer = asyncio.create_task(echo())
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        await a.send(message)
        await read_exact(a)
        samples.append((time.perf_counter() - start) * 1e6)
    await echoer
    return samples


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def measure(
    pid: int,
    pipe: Callable[[], AsyncIterator[tuple[End, End]]],
    *,
    total: int,
    trips: int,
    e2e: bool = False,
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    async with pipe() as (a, b):
        await transfer(a, b, 8 * FRAME)  # warm-up: connections, buffers, JIT-free but caches
        cpu_before = tree_cpu(pid)
        seconds = await transfer(a, b, total)
        cpu = tree_cpu(pid) - cpu_before
        samples = await round_trips(a, b, trips)
        result.update(
            throughput_mb_s=round(total / seconds / 1e6, 1),
            relay_cpu_s_per_gb=round(cpu / (total / 1e9), 3),
            rtt_p50_us=round(percentile(samples, 0.50), 1),
            rtt_p99_us=round(percentile(samples, 0.99), 1),
        )
        if e2e:
            result["e2e"] = await e2e_cost(a, b, total)
    return result


async def e2e_cost(a: End, b: End, total: int) -> dict[str, Any]:
    """Same relay, same size: raw 64 KiB frames vs frames sealed and opened by E2ESession."""
    sys.path.insert(0, str(HERE))
    from _relay_auxilio import session_pair

    agent, technician = session_pair()
    from auxilio.protocol.binary import ChannelId

    # Alternated and best-of-three: on a small machine one run's noise exceeds the crypto cost.
    raws, sealeds = [], []
    for _ in range(3):
        raws.append(await transfer(a, b, total))
        sealeds.append(
            await transfer(
                a,
                b,
                total,
                seal=lambda p: agent.seal(ChannelId.TERMINAL, p),
                open_=lambda f: technician.open(f)[1],
            )
        )
    raw, sealed = min(raws), min(sealeds)
    return {
        "raw_mb_s": round(total / raw / 1e6, 1),
        "sealed_mb_s": round(total / sealed / 1e6, 1),
        "cost_percent": round((1 - raw / sealed) * 100, 1),
    }


# -- subprocesses ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_port(port: int, proc: subprocess.Popen[bytes], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"relay exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {seconds} s")


@contextlib.contextmanager
def started(command: list[str], port: int, **kwargs: Any) -> Any:
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)
    try:
        wait_port(port, proc)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- the relays under test (run as subprocesses of this script) --------------------------------


async def serve_tcp(port: int) -> None:
    """Pair connections two by two and copy bytes both ways."""
    waiting: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(1 << 20):
                writer.write(data)
                await writer.drain()
        writer.close()

    paired: list[asyncio.Future[None]] = []

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Each endpoint says one byte first; the readiness probe says nothing and is dropped.
        if not await reader.read(1):
            writer.close()
            return
        if not waiting:
            # Stay in the handler until paired: a returning handler lets its writer be
            # collected, and a collected StreamWriter closes its transport.
            waiting.append((reader, writer))
            done = asyncio.get_running_loop().create_future()
            paired.append(done)
            await done
            return
        other_reader, other_writer = waiting.pop()
        try:
            await asyncio.gather(pump(reader, other_writer), pump(other_reader, writer))
        finally:
            paired.pop().set_result(None)

    server = await asyncio.start_server(accept, "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def stack_app() -> Any:
    """A Starlette app pairing two WebSockets on ``/relay`` and forwarding binary both ways:
    the relay path of Auxilio minus the broker, to compare WebSocket stacks alone."""
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    waiting: list[tuple[WebSocket, asyncio.Future[WebSocket]]] = []

    async def relay(ws: WebSocket) -> None:
        await ws.accept()
        if waiting:
            other, future = waiting.pop()
            future.set_result(ws)
        else:
            future = asyncio.get_running_loop().create_future()
            waiting.append((ws, future))
            other = await future
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            while True:
                await other.send_bytes(await ws.receive_bytes())

    return Starlette(routes=[WebSocketRoute("/relay", relay)])


async def serve_websockets_lib(port: int, deflate: bool) -> None:
    from websockets.asyncio.server import ServerConnection, serve

    waiting: list[tuple[ServerConnection, asyncio.Future[ServerConnection]]] = []

    async def relay(ws: ServerConnection) -> None:
        if waiting:
            other, future = waiting.pop()
            future.set_result(ws)
        else:
            future = asyncio.get_running_loop().create_future()
            waiting.append((ws, future))
            other = await future
        with contextlib.suppress(Exception):
            async for message in ws:
                await other.send(message)

    async with serve(
        relay, "127.0.0.1", port, max_size=None, compression="deflate" if deflate else None
    ) as server:
        await server.serve_forever()


def serve(kind: str, port: int, data_dir: str | None = None) -> None:
    if kind == "auxilio-sansio":
        sys.path.insert(0, str(HERE))
        from _relay_auxilio import serve_sansio

        serve_sansio(Path(str(data_dir)), port)
    elif kind == "tcp":
        asyncio.run(serve_tcp(port))
    elif kind.startswith("websockets-lib"):
        asyncio.run(serve_websockets_lib(port, deflate=kind.endswith("deflate")))
    else:
        import uvicorn

        ws = kind.removeprefix("uvicorn-").removesuffix("-deflate")
        uvicorn.run(
            stack_app(),
            host="127.0.0.1",
            port=port,
            ws=ws,  # type: ignore[arg-type]
            ws_per_message_deflate=kind.endswith("-deflate"),
            ws_max_size=2 * 1024 * 1024,
            log_level="warning",
            lifespan="off",
        )


# -- cases -------------------------------------------------------------------------------------


async def case_tcp(total: int, trips: int) -> dict[str, Any]:
    port = free_port()
    with started([sys.executable, __file__, "--serve", "tcp", "--port", str(port)], port) as proc:

        @contextlib.asynccontextmanager
        async def pipe() -> AsyncIterator[tuple[End, End]]:
            ends = []
            for _ in range(2):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"!")  # the relay pairs connections that said hello, in order
                ends.append(tcp_end(reader, writer))
                await asyncio.sleep(0.05)
            a, b = ends
            try:
                yield a, b
            finally:
                await a.close()
                await b.close()

        return await measure(proc.pid, pipe, total=total, trips=trips)


async def case_websockify(total: int, trips: int) -> dict[str, Any]:
    target_port, port = free_port(), free_port()
    accepted: asyncio.Queue[End] = asyncio.Queue()

    async def on_target(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accepted.put(tcp_end(reader, writer))

    target = await asyncio.start_server(on_target, "127.0.0.1", target_port)
    command = [str(VENV_BIN / "websockify"), f"127.0.0.1:{port}", f"127.0.0.1:{target_port}"]
    async with target:
        with started(command, port) as proc:

            @contextlib.asynccontextmanager
            async def pipe() -> AsyncIterator[tuple[End, End]]:
                # websockify speaks binary frames only with the "binary" subprotocol or none.
                a = ws_end(await ws_connect(f"ws://127.0.0.1:{port}/"))
                b = await asyncio.wait_for(accepted.get(), 10)
                try:
                    yield a, b
                finally:
                    await a.close()
                    await b.close()

            return await measure(proc.pid, pipe, total=total, trips=trips)


async def case_stack(kind: str, total: int, trips: int, *, e2e: bool) -> dict[str, Any]:
    port = free_port()
    command = [sys.executable, __file__, "--serve", kind, "--port", str(port)]
    deflate = kind.endswith("deflate")
    with started(command, port) as proc:

        @contextlib.asynccontextmanager
        async def pipe() -> AsyncIterator[tuple[End, End]]:
            a_ws = await ws_connect(f"ws://127.0.0.1:{port}/relay", deflate=deflate)
            await asyncio.sleep(0.05)
            b_ws = await ws_connect(f"ws://127.0.0.1:{port}/relay", deflate=deflate)
            try:
                yield ws_end(a_ws), ws_end(b_ws)
            finally:
                await a_ws.close()
                await b_ws.close()

        return await measure(proc.pid, pipe, total=total, trips=trips, e2e=e2e)


async def recording_cost(pid: int, pipe: Any, total: int) -> dict[str, Any]:
    """One server, one run: an unrecorded and a recorded session open side by side, transfers
    alternated and best of three each (on a small shared machine one run's noise exceeds the
    cost of appending to a file). Relay CPU per GB is summed over the three runs of each."""
    plain: list[float] = []
    recorded: list[float] = []
    cpu = {"plain": 0.0, "recorded": 0.0}
    async with pipe(record=False) as (a, b), pipe(record=True) as (c, d):
        await transfer(a, b, 8 * FRAME)
        await transfer(c, d, 8 * FRAME)
        for _ in range(3):
            for name, ends, runs in (("plain", (a, b), plain), ("recorded", (c, d), recorded)):
                before = tree_cpu(pid)
                runs.append(await transfer(*ends, total))
                cpu[name] += tree_cpu(pid) - before
    best_plain, best_recorded = min(plain), min(recorded)
    gigabytes = 3 * total / 1e9
    return {
        "unrecorded_mb_s": round(total / best_plain / 1e6, 1),
        "recorded_mb_s": round(total / best_recorded / 1e6, 1),
        "overhead_percent": round((1 - best_plain / best_recorded) * 100, 1),
        "unrecorded_cpu_s_per_gb": round(cpu["plain"] / gigabytes, 3),
        "recorded_cpu_s_per_gb": round(cpu["recorded"] / gigabytes, 3),
        "runs_mb_s": {
            "unrecorded": [round(total / t / 1e6, 1) for t in plain],
            "recorded": [round(total / t / 1e6, 1) for t in recorded],
        },
    }


async def case_auxilio(total: int, trips: int, *, sansio: bool = False) -> dict[str, Any]:
    sys.path.insert(0, str(HERE))
    from _relay_auxilio import auxilio_pipe

    port = free_port()
    async with auxilio_pipe(port, sansio=sansio) as (pid, pipe):
        result = await measure(pid, pipe, total=total, trips=trips, e2e=True)
        result["recording"] = await recording_cost(pid, pipe, total)
        return result


STACKS = [
    "uvicorn-websockets",
    "uvicorn-websockets-sansio",
    "uvicorn-wsproto",
    "websockets-lib",
    "uvicorn-websockets-deflate",
    "websockets-lib-deflate",
]


def goals(results: dict[str, Any]) -> dict[str, Any]:
    tcp, ours = results.get("tcp"), results.get("auxilio")
    if not tcp or not ours or "error" in ours:
        return {"evaluated": False, "reason": "the auxilio case did not run"}
    return {
        "throughput_ratio_vs_tcp": round(ours["throughput_mb_s"] / tcp["throughput_mb_s"], 3),
        "throughput_goal_met": ours["throughput_mb_s"] >= 0.5 * tcp["throughput_mb_s"],
        "cpu_goal_met": ours["relay_cpu_s_per_gb"] <= 1.0,
        "rtt_p99_ratio_vs_tcp": round(ours["rtt_p99_us"] / tcp["rtt_p99_us"], 2),
        "rtt_goal_met": ours["rtt_p99_us"] <= 2 * tcp["rtt_p99_us"],
        "e2e_goal_met": ours["e2e"]["cost_percent"] <= 10.0,
        "recording_overhead_percent": ours["recording"]["overhead_percent"],
        "recording_goal_met": ours["recording"]["overhead_percent"] <= 10.0,
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    total, trips = args.mib * 1024 * 1024, args.round_trips
    results: dict[str, Any] = {}
    cases: list[tuple[str, Callable[[], Awaitable[dict[str, Any]]]]] = [
        ("tcp", lambda: case_tcp(total, trips)),
        ("websockify", lambda: case_websockify(total, trips)),
    ]
    for kind in STACKS:
        e2e = kind == "uvicorn-websockets"
        cases.append((f"stack_{kind}", lambda k=kind, e=e2e: case_stack(k, total, trips, e2e=e)))
    if not args.skip_auxilio:
        cases.append(("auxilio", lambda: case_auxilio(total, trips)))
        cases.append(("auxilio_sansio", lambda: case_auxilio(total, trips, sansio=True)))
    for name, run in cases:
        if args.only and name not in args.only:
            continue
        try:
            results[name] = await run()
        except Exception as exc:  # one broken case must not hide the others' figures
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
    return {
        "benchmark": "relay",
        "frame_bytes": FRAME,
        "total_mib": args.mib,
        "round_trips": trips,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "results": results,
        "goals": goals(results),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="MiB per throughput run")
    parser.add_argument("--round-trips", type=int, default=2000)
    parser.add_argument("--only", nargs="*", help="run only these cases")
    parser.add_argument("--skip-auxilio", action="store_true")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.serve:
        serve(arguments.serve, arguments.port, arguments.data_dir)
    else:
        print(json.dumps(asyncio.run(main(arguments)), indent=2))
