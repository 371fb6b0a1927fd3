"""Running a runbook's script: no shell, its own process group, output captured, a time limit.

The script runs from a private file (0o600 in a 0o700 directory) under the real interpreter,
without a shell in between: parameters are environment variables or separate arguments, so a
value such as ``$(touch /tmp/x)`` reaches the script as text. Stdin is empty, and the run has a
process group of its own so that the time limit, a revocation and the session's end stop
everything it started (what left the group with setsid is found as a descendant).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]  # no stubs among the dev dependencies

from auxilio.crypto.runbooks import Runbook
from auxilio.protocol.app import MAX_RUNBOOK_OUTPUT

# After SIGTERM at the time limit, how long the run has before SIGKILL.
KILL_GRACE_SECONDS = 2.0
# After the script exits, how long what it left behind may hold its output open.
DRAIN_GRACE_SECONDS = 1.0
# How often a run checks that the session still allows runbooks.
GATE_POLL_SECONDS = 0.25
_READ_CHUNK = 64 * 1024
_KILL = signal.SIGTERM if sys.platform == "win32" else signal.SIGKILL  # TERM is kill on Windows
_SCRIPT_SUFFIX = {"sh": ".sh", "bash": ".sh", "python": ".py", "powershell": ".ps1"}


@dataclass(frozen=True, slots=True)
class RunOutcome:
    exit_code: int | None  # None when it was stopped
    timed_out: bool
    stopped: bool  # the session stopped allowing runbooks mid-run
    duration_ms: int
    stdout: str
    stderr: str
    truncated: bool


class _Capture:
    """One output stream: the first MAX_RUNBOOK_OUTPUT bytes kept, the rest read and dropped
    (a full pipe would stall the script)."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.truncated = False

    async def read(self, stream: asyncio.StreamReader | None) -> None:
        if stream is None:
            return
        while chunk := await stream.read(_READ_CHUNK):
            room = MAX_RUNBOOK_OUTPUT - len(self.data)
            if len(chunk) > room:
                self.truncated = True
            self.data += chunk[: max(0, room)]

    def text(self) -> str:
        # Undecodable bytes become U+FFFD one for one: the text is never longer than the bytes.
        return self.data.decode("utf-8", errors="replace")[:MAX_RUNBOOK_OUTPUT]


def _signal_group(process: asyncio.subprocess.Process, sig: int) -> None:
    if sys.platform == "win32":
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        return
    # The group outlives its leader while anything the script started is still in it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def _descendants(process: asyncio.subprocess.Process) -> list[Any]:
    """What the script started, seen while it runs: one that left the group (setsid) is still
    its descendant."""
    try:
        return list(psutil.Process(process.pid).children(recursive=True))
    except psutil.Error:
        return []


def _signal_all(process: asyncio.subprocess.Process, others: list[Any], sig: int) -> None:
    _signal_group(process, sig)
    for other in others:
        # psutil checks the process is still the one it saw (no signal to a reused pid).
        with contextlib.suppress(psutil.Error):
            other.send_signal(sig)


async def _stop_group(process: asyncio.subprocess.Process) -> None:
    """SIGTERM to the whole group, SIGKILL after the grace period, then reap the leader."""
    others = _descendants(process)
    _signal_all(process, others, signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(process.wait(), KILL_GRACE_SECONDS)
    _signal_all(process, others, _KILL)
    await process.wait()


async def _spawn(argv: list[str], env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    if sys.platform == "win32":
        return await asyncio.create_subprocess_exec(
            *argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env, cwd=cwd, creationflags=subprocess.CREATE_NEW_PROCESS_GROUP,
        )  # fmt: skip
    return await asyncio.create_subprocess_exec(
        *argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=env, cwd=cwd, start_new_session=True,  # a session and process group of its own
    )  # fmt: skip


async def _drain(process: asyncio.subprocess.Process, readers: asyncio.Future[object]) -> None:
    """Let the output finish; what the script left running and holding it open is stopped."""
    try:
        await asyncio.wait_for(asyncio.shield(readers), DRAIN_GRACE_SECONDS)
        return
    except TimeoutError:
        _signal_group(process, _KILL)
    # Still open: held by something outside the group (it left with setsid); not waited for.
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(readers, KILL_GRACE_SECONDS)


async def run_script(
    argv: list[str],
    *,
    env: dict[str, str],
    cwd: Path,
    timeout_seconds: float,
    allowed: Callable[[], bool],
) -> RunOutcome:
    """Run ``argv`` (no shell) in its own process group with stdin empty and output captured.
    Past ``timeout_seconds``, or as soon as ``allowed()`` turns false, the whole group is
    stopped. Cancelled (the session ended), the group is killed at once."""
    started = time.monotonic()
    process = await _spawn(argv, env, cwd)
    out, err = _Capture(), _Capture()
    readers: asyncio.Future[object] = asyncio.ensure_future(
        asyncio.gather(out.read(process.stdout), err.read(process.stderr))
    )
    waiter = asyncio.ensure_future(process.wait())
    timed_out = stopped = False
    try:
        deadline = started + timeout_seconds
        while not waiter.done():
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            if not allowed():
                stopped = True
                break
            await asyncio.wait({waiter}, timeout=min(GATE_POLL_SECONDS, left))
        if timed_out or stopped:
            await _stop_group(process)
        await _drain(process, readers)
    except BaseException:
        # Cancelled (the session ended) or failed: nothing it started is left running.
        _signal_all(process, _descendants(process), _KILL)
        await asyncio.shield(process.wait())
        raise
    finally:
        waiter.cancel()
        readers.cancel()
    return RunOutcome(
        exit_code=None if (timed_out or stopped) else process.returncode,
        timed_out=timed_out,
        stopped=stopped,
        duration_ms=int((time.monotonic() - started) * 1000),
        stdout=out.text(),
        stderr=err.text(),
        truncated=out.truncated or err.truncated,
    )


def write_private_script(directory: Path, runbook: Runbook) -> Path:
    """The script in a file only this user can read (the directory is mkdtemp's 0o700)."""
    path = directory / f"runbook{_SCRIPT_SUFFIX[runbook.interpreter]}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(runbook.script)
    return path
