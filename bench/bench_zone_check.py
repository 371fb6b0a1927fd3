"""Cost of the device's personal-data zone check per path (``agent.capabilities.zones_local``).

Runs standalone and prints one JSON object. The default Linux zones, this device's accounts
and bind mounts, plus a person's home made in a temporary folder (so zone roots exist and the
identity walk has work to do). The mix: paths in and out of zones, traversal, repeated slashes,
case variants, a symlink into Documents and a hard-linked file.

Figures:
* ``string_check``: ``normalise`` + ``zone_of``, the pure-string fast path (the goal: p99 <= 20 us);
* ``resolve``: the whole check the files capability runs once per request (``~``, realpath,
  bind mounts, zone-root identities, hard links): the string check plus system calls;
* references measured in the same run on the same paths: ``posixpath.normpath`` (what a naive
  check costs), ``os.path.realpath`` and one ``os.stat`` (what the file system part costs here).
"""

from __future__ import annotations

import gc
import json
import os
import platform
import posixpath
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from auxilio.agent.capabilities.zones_local import ZoneChecker, local_homes
from auxilio.protocol.types import CapabilityLimits

N = 100_000


def make_home(root: Path) -> Path:
    home = root / "people" / "ana"
    for folder in ("Documents/2025", "Desktop", "Pictures", "Projects/app", ".ssh", "Public"):
        (home / folder).mkdir(parents=True)
    (home / "Documents" / "2025" / "taxes.txt").write_text("income")
    (home / "Projects" / "app" / "main.py").write_text("print()")
    (home / "shortcut").symlink_to(home / "Documents")
    os.link(home / "Documents" / "2025" / "taxes.txt", home / "Projects" / "copy.txt")
    return home


def mix(home: Path) -> list[str]:
    h = str(home)
    return [
        f"{h}/Documents/2025/taxes.txt",  # in
        f"{h}/Projects/app/main.py",  # out
        f"{h}/Public/../Documents/2025/taxes.txt",  # traversal into
        f"{h}//Projects///app/./main.py",  # repeated slashes, out
        f"{h}/shortcut/2025/taxes.txt",  # symlink into
        f"{h}/Projects/copy.txt",  # hard link
        f"{h}/DOCUMENTS/2025",  # case variant
        "/home/ana/Documents/cv.pdf",  # default pattern, absent
        "/home/bob/.mozilla/firefox/profile/cookies.sqlite",
        "/root/.ssh/id_ed25519",  # a home outside /home
        "/etc/passwd",
        "/usr/lib/python3/dist-packages/README.txt",
        "/var/log/syslog",
        "/srv/upload/driver.bin",
        "/home/ana/Projects/report/final.docx",
        "/opt/app/config.yaml",
    ]


def measure(call: Callable[[int], Any], n: int) -> dict[str, float]:
    """Per-call latency with perf_counter_ns around each call."""
    samples = [0] * n
    clock = time.perf_counter_ns
    gc.disable()  # a collection landing in one sample would measure the collector
    try:
        for i in range(n):
            start = clock()
            call(i)
            samples[i] = clock() - start
    finally:
        gc.enable()
    samples.sort()
    return {
        "p50_us": round(samples[n // 2] / 1000, 2),
        "p99_us": round(samples[int(n * 0.99)] / 1000, 2),
        "max_us": round(samples[-1] / 1000, 2),
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = make_home(Path(tmp))
        limits = CapabilityLimits(platform="linux", on_zone_access="require_consent")
        homes = [*local_homes(), str(home)]
        started = time.perf_counter()
        zones = ZoneChecker(limits, homes=homes)
        compile_ms = (time.perf_counter() - started) * 1000
        paths = mix(home)
        size = len(paths)
        in_zone = sum(zones.resolve(p).zone is not None for p in paths)
        existing = str(home / "Projects" / "app" / "main.py")
        results: dict[str, Any] = {
            "python": sys.version.split()[0],
            "machine": platform.machine(),
            "n_per_figure": N,
            "paths": size,
            "paths_in_a_zone": in_zone,
            "local_homes": len(homes),
            "compile_ms": round(compile_ms, 2),
            "reference": {
                "posixpath_normpath": measure(lambda i: posixpath.normpath(paths[i % size]), N),
                "os_path_realpath": measure(lambda i: os.path.realpath(paths[i % size]), N),
                "os_stat": measure(lambda i: os.stat(existing), N),
            },
            "string_check": measure(lambda i: zones.zone_of(zones.normalise(paths[i % size])), N),
            "resolve": measure(lambda i: zones.resolve(paths[i % size]), N),
        }
    p99 = results["string_check"]["p99_us"]
    results["goal"] = {"string_check_p99_us_max": 20, "met": p99 <= 20}
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
