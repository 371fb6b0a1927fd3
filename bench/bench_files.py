"""File transfer through the real relay, next to the raw relay throughput in the same run.

Prints one JSON object. Run: ``.venv/bin/python bench/bench_files.py [--mib 256] [--rounds 3]``.

One ``auxilio serve`` subprocess and one real support session (``_relay_auxilio.auxilio_pipe``:
real keys, consent receipt and E2E handshake); both ends run in this process and seal with the
E2E sessions the handshake gave them. Cases, alternated round by round, best of the rounds:

* ``raw``: E2E-sealed frames of exactly a full file chunk's plaintext (the encoded ``FileChunk``
  of ``FILE_CHUNK_SIZE`` bytes), agent end -> technician end, each opened on arrival: what the
  relay and the crypto allow. ``raw_reverse`` is the same, technician -> agent (the upload's way).
* ``download``: the real agent ``FileHandler`` reads a real temporary file and its
  ``services.send`` seals each message with the agent's session and sends it on the agent end;
  the technician is the real client (``client.files.FileTransfers``): it opens each frame, decodes
  the chunk, writes it to ``<local>.part`` and hashes it until ``files.done``, whose hash it
  checks. MB/s from sending ``files.download`` to the verified file in place.
* ``upload``: the other way: the client sends ``files.upload`` and the chunks (pipelined); the
  agent end opens each frame and feeds the message to the handler, which writes, hashes, fsyncs
  and renames; MB/s from sending ``files.upload`` to the technician holding ``files.done`` (the
  client's hash of its local file before the request is reported apart, ``prehash_s``).

The grant is built as the agent tests build one (``tests/agent/capability_services``): files,
direction both, the default Linux personal-data zones with ``require_consent``; the device's
folder is a temporary directory outside ``/home``, so no zone is in the way.

Where the time goes: per case, the CPU of this process (both ends) and of the relay process
tree, as a share of the wall time (near 1.0: a saturated core) and in µs per chunk;
``cpu_ratio_ceiling`` is the raw case's CPU per chunk over the file case's (ends and relay
summed): where both cases keep every core busy, the throughput ratio tends to it.
``ends_only`` repeats the cases with the two ends joined by in-process queues (no relay, no
sockets); ``per_chunk_us`` times each step a chunk goes through, alone;
``page_cache_write_mb_s`` is this machine's plain write speed; ``--profile`` adds a cProfile'd
download and upload (not timed) and lists the functions with the most own time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import dataclasses
import hashlib
import io
import itertools
import json
import os
import platform
import pstats
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))  # the agent tests' grant builder

from _relay_auxilio import auxilio_pipe  # noqa: E402
from bench_relay import End, free_port, tree_cpu  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey  # noqa: E402
from tests.agent.capability_services import Recorder, make_recorder  # noqa: E402

from auxilio.agent.capabilities.files import FileHandler  # noqa: E402
from auxilio.client.files import FileTransfers  # noqa: E402
from auxilio.crypto.e2e import E2ESession  # noqa: E402
from auxilio.protocol.app import (  # noqa: E402
    CHANNEL_OF,
    FILE_CHUNK_SIZE,
    AppMessage,
    FileChunk,
    FilesDownload,
    FilesUpload,
    decode_app_message,
    encode_app_message,
)
from auxilio.protocol.binary import ChannelId  # noqa: E402
from auxilio.protocol.types import Capability, CapabilityLimits  # noqa: E402

MIB = 1024 * 1024
GOAL_RATIO = 0.70
GOAL_MB_S = 100.0
FILES_LIMITS = CapabilityLimits(
    direction="both", platform="linux", on_zone_access="require_consent"
)


@dataclasses.dataclass
class Pipe:
    """The session's two ends with their E2E sessions, the agent's handler, the client."""

    agent: End
    technician: End
    agent_e2e: E2ESession
    technician_e2e: E2ESession
    recorder: Recorder
    handler: FileHandler
    client: FileTransfers
    requested_at: dict[type[Any], float]


# -- the two ends ------------------------------------------------------------------------------


def make_pipe(ends: tuple[End, End, E2ESession, E2ESession], device_dir: Path) -> Pipe:
    agent, technician, agent_e2e, technician_e2e = ends
    recorder = make_recorder(
        device_dir, Ed25519PrivateKey.generate(), X25519PrivateKey.generate(),
        capabilities=(Capability.FILES,), limits={Capability.FILES: FILES_LIMITS},
    )  # fmt: skip

    async def agent_send(message: AppMessage) -> None:
        # As agent.channel.E2EChannel.send: seal on the message's channel, send binary.
        await agent.send(agent_e2e.seal(CHANNEL_OF[type(message)], encode_app_message(message)))

    handler = FileHandler(dataclasses.replace(recorder.services(), send=agent_send))
    requested_at: dict[type[Any], float] = {}
    lock = asyncio.Lock()

    async def technician_send(message: AppMessage) -> None:
        # As client.session._send_app: seal and send under one lock.
        if isinstance(message, FilesDownload | FilesUpload):
            requested_at[type(message)] = time.perf_counter()
        async with lock:
            payload = encode_app_message(message)
            await technician.send(technician_e2e.seal(CHANNEL_OF[type(message)], payload))

    ids = itertools.count(1)
    client = FileTransfers(send=technician_send, new_id=lambda: next(ids))
    return Pipe(agent, technician, agent_e2e, technician_e2e, recorder, handler, client,
                requested_at)  # fmt: skip


async def agent_reader(pipe: Pipe) -> None:
    """As agent.session._on_frame: open, decode, check the channel, hand to the capability."""
    while True:
        channel, plaintext = pipe.agent_e2e.open(await pipe.agent.recv())
        message = decode_app_message(plaintext)
        if CHANNEL_OF[type(message)] is not channel:
            raise RuntimeError(f"{message.type} on {channel.name}")
        await pipe.handler.handle(message)


async def technician_reader(pipe: Pipe) -> None:
    """As client.session._on_frame / _on_tool_message: open, decode, route to the request."""
    while True:
        channel, plaintext = pipe.technician_e2e.open(await pipe.technician.recv())
        message = decode_app_message(plaintext)
        if CHANNEL_OF[type(message)] is not channel or not pipe.client.receive(message):
            raise RuntimeError(f"unexpected {message.type} on {channel.name}")


@contextlib.asynccontextmanager
async def readers(pipe: Pipe) -> Any:
    tasks = [asyncio.create_task(agent_reader(pipe)), asyncio.create_task(technician_reader(pipe))]
    try:
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def until_done(work: Awaitable[Any], tasks: list[asyncio.Task[None]]) -> Any:
    """``work``'s result; a reader that died (a bad frame) fails the run instead of hanging it."""
    job = asyncio.ensure_future(work)
    await asyncio.wait([job, *tasks], return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        if task.done():
            job.cancel()
            task.result()  # raises the reader's error
    return await job


# -- measurements ------------------------------------------------------------------------------


@dataclasses.dataclass
class Timed:
    seconds: float
    ends_cpu_s: float
    relay_cpu_s: float


@contextlib.contextmanager
def cpu_of(relay_pid: int | None) -> Iterator[dict[str, float]]:
    """CPU seconds of this process (both ends) and of the relay's process tree meanwhile."""
    me = psutil.Process()
    out: dict[str, float] = {}
    mine, relay = me.cpu_times(), tree_cpu(relay_pid) if relay_pid is not None else 0.0
    yield out
    after = me.cpu_times()
    out["ends"] = after.user + after.system - mine.user - mine.system
    out["relay"] = (tree_cpu(relay_pid) if relay_pid is not None else 0.0) - relay


def chunk_payload() -> bytes:
    """A full chunk's plaintext as the handler sends it (prefix and FILE_CHUNK_SIZE bytes)."""
    return encode_app_message(FileChunk(transfer_id=1, offset=0, data=os.urandom(FILE_CHUNK_SIZE)))


async def raw(pipe: Pipe, total: int, relay_pid: int | None, *, reverse: bool = False) -> Timed:
    """Sealed chunk-sized frames one way, opened on arrival; no file, no handler."""
    frames = total // FILE_CHUNK_SIZE
    payload = chunk_payload()
    sender, receiver = (pipe.technician, pipe.agent) if reverse else (pipe.agent, pipe.technician)
    sealer, opener = (
        (pipe.technician_e2e, pipe.agent_e2e) if reverse else (pipe.agent_e2e, pipe.technician_e2e)
    )

    async def produce() -> None:
        for _ in range(frames):
            await sender.send(sealer.seal(ChannelId.FILES, payload))

    async def consume() -> None:
        for _ in range(frames):
            opener.open(await receiver.recv())

    with cpu_of(relay_pid) as cpu:
        start = time.perf_counter()
        await asyncio.gather(produce(), consume())
        seconds = time.perf_counter() - start
    return Timed(seconds, cpu["ends"], cpu["relay"])


async def download(
    pipe: Pipe, source: Path, local: Path, sha256: str, relay_pid: int | None
) -> Timed:
    async with readers(pipe) as tasks:
        with cpu_of(relay_pid) as cpu:
            result = await until_done(pipe.client.download(str(source), str(local)), tasks)
            end = time.perf_counter()
    verify_and_remove("download", result.sha256, sha256, source, local)
    return Timed(end - pipe.requested_at[FilesDownload], cpu["ends"], cpu["relay"])


async def upload(
    pipe: Pipe, local: Path, target: Path, sha256: str, relay_pid: int | None
) -> tuple[Timed, float]:
    async with readers(pipe) as tasks:
        with cpu_of(relay_pid) as cpu:
            called = time.perf_counter()
            result = await until_done(pipe.client.upload(str(local), str(target)), tasks)
            end = time.perf_counter()
    verify_and_remove("upload", result.sha256, sha256, local, target)
    requested = pipe.requested_at[FilesUpload]
    return Timed(end - requested, cpu["ends"], cpu["relay"]), requested - called


def verify_and_remove(case: str, got: str, expected: str, original: Path, copy: Path) -> None:
    """The transfer's hash is the original's and the copy has its size; then the copy goes
    (the next round writes a new one; the disk holds one copy at a time)."""
    if got != expected or copy.stat().st_size != original.stat().st_size:
        raise RuntimeError(f"{case}: got {got} for {expected}")
    copy.unlink()


def write_random(path: Path, size: int) -> str:
    hasher = hashlib.sha256()
    with path.open("wb") as handle:
        for _ in range(size // MIB):
            block = os.urandom(MIB)
            hasher.update(block)
            handle.write(block)
    return hasher.hexdigest()


def figures(runs: list[Timed], size: int) -> dict[str, Any]:
    best = min(runs, key=lambda run: run.seconds)
    chunks = size / FILE_CHUNK_SIZE
    return {
        "mb_s": round(size / best.seconds / 1e6, 1),
        "runs_mb_s": [round(size / run.seconds / 1e6, 1) for run in runs],
        # CPU seconds per wall second of the best run: 1.0 is one core kept busy.
        "ends_cpu_share": round(best.ends_cpu_s / best.seconds, 2),
        "relay_cpu_share": round(best.relay_cpu_s / best.seconds, 2),
        # CPU µs per chunk in the best run: the work a chunk costs, whoever waits for whom.
        "ends_cpu_us_per_chunk": round(best.ends_cpu_s / chunks * 1e6, 1),
        "relay_cpu_us_per_chunk": round(best.relay_cpu_s / chunks * 1e6, 1),
    }


# -- where the time goes, per chunk, without the relay -----------------------------------------


def per_chunk_us(source: Path, scratch: Path, repeat: int = 200) -> dict[str, float]:
    """Each step of one chunk alone (median µs of ``repeat``), in the order a download takes
    them; ``seal``/``open`` are what the raw case does too, the rest is the files path's own."""
    from _relay_auxilio import session_pair

    agent, technician = session_pair()
    data = os.urandom(FILE_CHUNK_SIZE)
    chunk = FileChunk(transfer_id=1, offset=0, data=data)
    payload = encode_app_message(chunk)
    frames = [agent.seal(ChannelId.FILES, payload) for _ in range(repeat)]
    fd = os.open(source, os.O_RDONLY)
    out = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    opened = iter(frames)
    steps: dict[str, Callable[[], Any]] = {
        "agent_read": lambda: (os.lseek(fd, 0, 0), os.read(fd, FILE_CHUNK_SIZE)),
        "sha256": lambda: hashlib.sha256(data).digest(),
        "filechunk_model": lambda: FileChunk(transfer_id=1, offset=0, data=data),
        "encode": lambda: encode_app_message(chunk),
        "seal": lambda: agent.seal(ChannelId.FILES, payload),
        "open": lambda: technician.open(next(opened)),
        "decode": lambda: decode_app_message(payload),
        "write": lambda: (os.lseek(out, 0, 0), os.write(out, data)),
    }
    result: dict[str, float] = {}
    try:
        for name, step in steps.items():
            samples = []
            for _ in range(repeat):
                start = time.perf_counter_ns()
                step()
                samples.append(time.perf_counter_ns() - start)
            result[name] = round(sorted(samples)[repeat // 2] / 1000, 1)
    finally:
        os.close(fd)
        os.close(out)
        scratch.unlink()
    return result


async def profiled(pipe: Pipe, files: Files, pid: int) -> list[Any]:
    """One download and one upload under cProfile (both ends: they share this process)."""
    profile = cProfile.Profile()
    profile.enable()
    await download(pipe, files.source, files.technician / "p.bin", files.source_sha, pid)
    await upload(pipe, files.outgoing, files.device / "p.bin", files.outgoing_sha, pid)
    profile.disable()
    stream = io.StringIO()
    stats = pstats.Stats(profile, stream=stream)
    total = sum(row[2] for row in stats.stats.values())  # type: ignore[attr-defined]
    rows = sorted(stats.stats.items(), key=lambda item: -item[1][2])  # type: ignore[attr-defined]
    return [
        {
            "function": f"{Path(file).name}:{line}:{name}",
            "own_s": round(own, 3),
            "own_percent": round(100 * own / total, 1),
            "calls": calls,
        }
        for (file, line, name), (_, calls, own, _cum, _) in rows[:20]
    ]


# -- the run -----------------------------------------------------------------------------------


CASES = ("raw", "download", "raw_reverse", "upload")


@dataclasses.dataclass
class Files:
    """The files of one run: the device's file to download, the technician's to upload."""

    device: Path
    technician: Path
    source: Path
    source_sha: str
    outgoing: Path
    outgoing_sha: str


async def one_round(pipe: Pipe, files: Files, size: int, pid: int | None, n: int) -> dict[str, Any]:
    """The four cases once, in the same order every round."""
    out: dict[str, Any] = {"raw": await raw(pipe, size, pid)}
    down = files.technician / f"down-{n}.bin"
    out["download"] = await download(pipe, files.source, down, files.source_sha, pid)
    out["raw_reverse"] = await raw(pipe, size, pid, reverse=True)
    up = files.device / f"up-{n}.bin"
    out["upload"], out["prehash"] = await upload(pipe, files.outgoing, up, files.outgoing_sha, pid)
    return out


def in_process_ends() -> tuple[End, End, E2ESession, E2ESession]:
    """Both ends joined by bounded queues instead of the relay: what the ends alone cost."""
    from _relay_auxilio import session_pair

    agent_e2e, technician_e2e = session_pair()
    to_technician: asyncio.Queue[bytes] = asyncio.Queue(maxsize=8)
    to_agent: asyncio.Queue[bytes] = asyncio.Queue(maxsize=8)

    async def close() -> None:
        return None

    agent = End(to_technician.put, to_agent.get, close)
    technician = End(to_agent.put, to_technician.get, close)
    return agent, technician, agent_e2e, technician_e2e


def page_cache_write(path: Path, size: int) -> float:
    """Seconds to write ``size`` bytes in chunk-sized ``os.write`` calls to a new file (no
    fsync): what writing the received file costs on this machine before any protocol."""
    data = os.urandom(FILE_CHUNK_SIZE)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    start = time.perf_counter()
    try:
        for _ in range(size // FILE_CHUNK_SIZE):
            os.write(fd, data)
        return time.perf_counter() - start
    finally:
        os.close(fd)
        path.unlink()


def prepare(root: Path, size: int) -> Files:
    device, technician = root / "device", root / "technician"
    device.mkdir()
    technician.mkdir()
    source, outgoing = device / "source.bin", technician / "outgoing.bin"
    return Files(device, technician, source, write_random(source, size), outgoing,
                 write_random(outgoing, size))  # fmt: skip


async def run(args: argparse.Namespace) -> dict[str, Any]:
    size = args.mib * MIB
    relayed: dict[str, list[Any]] = {name: [] for name in (*CASES, "prehash")}
    alone: dict[str, list[Any]] = {name: [] for name in (*CASES, "prehash")}
    writes: list[float] = []
    profile = None
    with tempfile.TemporaryDirectory(prefix="auxilio-files-bench-") as tmp:
        files = prepare(Path(tmp), size)
        warm = files.device / "warm.bin"
        warm_sha = write_random(warm, 4 * MIB)
        ends_only = make_pipe(in_process_ends(), files.device)
        async with auxilio_pipe(free_port()) as (pid, open_pipe), open_pipe(e2e=True) as ends:
            pipe = make_pipe(ends, files.device)
            await raw(pipe, 4 * MIB, pid)  # warm-up: connections, buffers, code paths
            await download(pipe, warm, files.technician / "warm.bin", warm_sha, pid)
            for n in range(args.rounds):
                for name, timed in (await one_round(pipe, files, size, pid, n)).items():
                    relayed[name].append(timed)
                for name, timed in (await one_round(ends_only, files, size, None, n)).items():
                    alone[name].append(timed)
                writes.append(page_cache_write(files.technician / "reference.bin", size))
            if args.profile:
                profile = await profiled(pipe, files, pid)
            feed = pipe.recorder.feed_text()
        steps = per_chunk_us(files.source, files.technician / "scratch.bin")
    results: dict[str, Any] = {name: figures(relayed[name], size) for name in CASES}
    results["upload"]["prehash_s"] = round(min(relayed["prehash"]), 3)
    out: dict[str, Any] = {
        "benchmark": "files",
        "chunk_bytes": FILE_CHUNK_SIZE,
        "file_mib": args.mib,
        "rounds": args.rounds,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "results": results,
        "goals": goals(results),
        # Where the time goes: the same cases with the ends joined in-process (no relay), the
        # page cache's own write speed, and each step of one chunk alone.
        "ends_only": {name: figures(alone[name], size) for name in CASES},
        "page_cache_write_mb_s": round(size / min(writes) / 1e6, 1),
        "per_chunk_us": steps,
        "feed_lines": feed.count("\n"),
    }
    if profile is not None:
        out["profile_top_own_time"] = profile
    return out


def cpu_per_chunk(figures: dict[str, Any]) -> float:
    return float(figures["ends_cpu_us_per_chunk"] + figures["relay_cpu_us_per_chunk"])


def goals(results: dict[str, Any]) -> dict[str, Any]:
    reference = results["raw"]["mb_s"]
    out: dict[str, Any] = {"reference_raw_mb_s": reference}
    for case, same_way in (("download", "raw"), ("upload", "raw_reverse")):
        mb_s = results[case]["mb_s"]
        out[case] = {
            "ratio_vs_raw": round(mb_s / reference, 3),
            "ratio_vs_raw_same_direction": round(mb_s / results[same_way]["mb_s"], 3),
            "ratio_goal_met": mb_s >= GOAL_RATIO * reference,
            # Where every core is busy in both cases (the relay and both ends share them), the
            # ratio tends to the CPU of a raw chunk over that of a file chunk, all summed.
            "cpu_ratio_ceiling": round(
                cpu_per_chunk(results[same_way]) / cpu_per_chunk(results[case]), 3
            ),
            "mb_s_goal_met": mb_s >= GOAL_MB_S,
        }
    out["all_met"] = all(
        out[case]["ratio_goal_met"] and out[case]["mb_s_goal_met"]
        for case in ("download", "upload")
    )
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="MiB per file (and per raw run)")
    parser.add_argument("--rounds", type=int, default=3, help="alternated rounds; best is kept")
    parser.add_argument("--profile", action="store_true", help="add a cProfile'd round")
    print(json.dumps(asyncio.run(run(parser.parse_args())), indent=2))
