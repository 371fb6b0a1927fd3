"""The single-file agent's size and cold start, next to ``python -m auxilio agent --help`` in the
same run. Goals (issue 12): at most 60 MB and at most 2 s.

Cold start: the median (and min, max) of ``--runs`` runs of ``--help`` (and ``--version``) in an
empty environment (``env -i`` with only PATH and a fresh HOME, cwd a temporary directory), each
run a new process, as the person's first start is. The binary is the one ``scripts/build-agent``
wrote (``--binary``, default ``dist/agent/auxilio-agent-<os>-<arch>``); ``--build`` builds it
first and reports the build's own JSON too.

Prints one JSON object. Run: ``.venv/bin/python bench/bench_agent_binary.py [--runs 7]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_BYTES = 60_000_000
GOAL_SECONDS = 2.0


def _default_binary() -> Path:
    system = {"linux": "linux", "win32": "windows", "darwin": "macos"}.get(sys.platform)
    machine = platform.machine().lower()
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    return ROOT / "dist" / "agent" / f"auxilio-agent-{system}-{arch}"


def _timed(command: list[str], runs: int, env: dict[str, str], cwd: str) -> dict[str, float]:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run(command, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=120)  # fmt: skip
        times.append(time.perf_counter() - began)
    return {
        "median_s": round(statistics.median(times), 3),
        "min_s": round(min(times), 3),
        "max_s": round(max(times), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", type=Path, default=_default_binary())
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--build", action="store_true", help="run scripts/build-agent first")
    args = parser.parse_args()
    built = None
    if args.build:
        done = subprocess.run([str(ROOT / "scripts" / "build-agent"), "--out",
                               str(args.binary.parent)], capture_output=True, text=True,
                              check=True, cwd=ROOT)  # fmt: skip
        built = json.loads(done.stdout)
    if not args.binary.is_file():
        raise SystemExit(f"{args.binary} does not exist: run scripts/build-agent (or --build)")
    with tempfile.TemporaryDirectory() as home:
        clean = {"PATH": "/usr/bin:/bin", "HOME": home}
        binary = str(args.binary)
        # The warm-up run unpacks nothing for later ones (onefile unpacks every time), but it
        # brings the file into the page cache, as a download just written is.
        subprocess.run([binary, "--version"], env=clean, cwd=home, check=True,
                       capture_output=True, timeout=120)  # fmt: skip
        python = [sys.executable, "-m", "auxilio", "agent", "--help"]
        python_env = {**clean, "PYTHONPATH": os.pathsep.join(sys.path)}
        subprocess.run(python, env=python_env, cwd=home, check=True, capture_output=True,
                       timeout=120)  # fmt: skip
        report = {
            "bench": "agent_binary",
            "binary": binary,
            "size_bytes": args.binary.stat().st_size,
            "size_mb": round(args.binary.stat().st_size / 1_000_000, 1),
            "size_goal_mb": GOAL_BYTES / 1_000_000,
            "runs": args.runs,
            "binary_help": _timed([binary, "--help"], args.runs, clean, home),
            "binary_version": _timed([binary, "--version"], args.runs, clean, home),
            "python_m_auxilio_agent_help": _timed(python, args.runs, python_env, home),
            "cold_start_goal_s": GOAL_SECONDS,
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
        }
    report["meets_goals"] = (
        report["size_bytes"] <= GOAL_BYTES
        and report["binary_help"]["median_s"] <= GOAL_SECONDS  # type: ignore[index]
    )
    if built is not None:
        report["build"] = {k: built[k] for k in ("size_bytes", "build_seconds",
                                                 "cold_start_help_seconds")}  # fmt: skip
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
