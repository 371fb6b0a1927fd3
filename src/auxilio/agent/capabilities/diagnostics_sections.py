"""The diagnostics report's sections (R15): what is gathered, each under its own time limit.

Gathered with psutil and the standard library only, in threads, one section at a time under its
own time limit: a hung DNS lookup or a slow ``journalctl`` costs that section (``"available":
false, "why": ...``), never the whole report, and never the event loop. Nothing needs
elevation; what an ordinary user cannot read is said to be unreadable.

What is left out on purpose: process command lines (they carry passwords and tokens), file
contents, environment variables. The report is data for the technician: its keys and its
``why`` texts stay English; the person reads it through the summary (``diagnostics.py``).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import psutil  # type: ignore[import-untyped]  # no stubs among the dev dependencies

# The whole report stays far below the 512 KiB an application message may carry.
MAX_REPORT_BYTES = 256 * 1024
SECTION_TIMEOUT_SECONDS = 5.0
CONNECT_TIMEOUT_SECONDS = 3.0
CPU_SAMPLE_SECONDS = 0.3
TOP_PROCESSES = 10
MAX_PARTITIONS = 32
MAX_INTERFACES = 32
MAX_ADDRESSES = 8
MAX_FAILED_UNITS = 50
JOURNAL_LINES = 50
MAX_LINE_CHARS = 300
# Resolved when no server is known (the server's own host name is the useful check otherwise).
DEFAULT_DNS_NAME = "example.com"

Section = dict[str, Any]


def unavailable(why: str) -> Section:
    return {"available": False, "why": why}


# -- sections -----------------------------------------------------------------------------------


def os_section() -> Section:
    boot = psutil.boot_time()
    return {
        "available": True,
        "system": platform.system(),
        "release": platform.release(),
        "version": platform.version()[:MAX_LINE_CHARS],
        "machine": platform.machine(),
        "hostname": socket.gethostname(),
        "boot_time": datetime.fromtimestamp(boot, UTC).isoformat(),
        "uptime_seconds": max(0, int(time.time() - boot)),
    }


def cpu_section() -> Section:
    load = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    return {
        "available": True,
        "logical": psutil.cpu_count(logical=True),
        "physical": psutil.cpu_count(logical=False),
        "load_average": load,
        "percent": psutil.cpu_percent(interval=CPU_SAMPLE_SECONDS),
    }


def memory_section() -> Section:
    memory = psutil.virtual_memory()
    swap = psutil.swap_memory()
    return {
        "available": True,
        "total": memory.total,
        "available_bytes": memory.available,
        "used": memory.used,
        "percent": memory.percent,
        "swap_total": swap.total,
        "swap_used": swap.used,
        "swap_percent": swap.percent,
    }


def disks_section() -> Section:
    partitions: list[dict[str, Any]] = []
    skipped = 0
    for part in psutil.disk_partitions(all=False):
        if len(partitions) >= MAX_PARTITIONS:
            skipped += 1
            continue
        try:
            usage = psutil.disk_usage(part.mountpoint)
        except OSError:  # a removable drive gone, a mount the user may not stat
            skipped += 1
            continue
        partitions.append(
            {
                "device": part.device,
                "mountpoint": part.mountpoint,
                "fstype": part.fstype,
                "total": usage.total,
                "used": usage.used,
                "free": usage.free,
                "percent": usage.percent,
            }
        )
    return {"available": True, "partitions": partitions, "skipped": skipped}


def _family(family: int) -> str:
    if family == socket.AF_INET:
        return "ipv4"
    if family == socket.AF_INET6:
        return "ipv6"
    return "link" if family == psutil.AF_LINK else str(family)


def network_section() -> Section:
    addresses = psutil.net_if_addrs()
    stats = psutil.net_if_stats()
    counters = psutil.net_io_counters(pernic=True)
    interfaces: list[dict[str, Any]] = []
    for name in sorted(set(addresses) | set(stats))[:MAX_INTERFACES]:
        entry: dict[str, Any] = {
            "name": name,
            "addresses": [
                {"family": _family(a.family), "address": a.address, "netmask": a.netmask}
                for a in addresses.get(name, [])[:MAX_ADDRESSES]
            ],
        }
        if name in stats:
            entry.update(up=stats[name].isup, speed_mbps=stats[name].speed, mtu=stats[name].mtu)
        if name in counters:
            io = counters[name]
            entry["counters"] = {
                "bytes_sent": io.bytes_sent, "bytes_recv": io.bytes_recv,
                "errors_in": io.errin, "errors_out": io.errout,
                "drops_in": io.dropin, "drops_out": io.dropout,
            }  # fmt: skip
        interfaces.append(entry)
    return {"available": True, "interfaces": interfaces}


def default_gateway(route_table: str = "/proc/net/route") -> str | None:
    """The IPv4 default gateway from the kernel's routing table (Linux; no elevation needed).
    psutil does not expose routes; other platforms report it as unreadable."""
    with open(route_table, encoding="ascii") as handle:
        lines = handle.read().splitlines()[1:]
    for line in lines:
        fields = line.split()
        # Iface Destination Gateway Flags ...: destination 0 with the gateway flag (0x2) set.
        if len(fields) >= 4 and fields[1] == "00000000" and int(fields[3], 16) & 0x2:
            return socket.inet_ntoa(int(fields[2], 16).to_bytes(4, "little"))
    return None


def server_address(server_url: str) -> tuple[str, int] | None:
    parts = urlsplit(server_url)
    if not parts.hostname:
        return None
    default = 443 if parts.scheme in ("https", "wss") else 80
    try:
        return parts.hostname, parts.port or default
    except ValueError:  # a port out of range
        return None


def _resolve(name: str) -> Section:
    started = time.monotonic()
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        return {"name": name, "ok": False, "error": str(exc)[:MAX_LINE_CHARS]}
    found = sorted({str(info[4][0]) for info in infos})[:MAX_ADDRESSES]
    elapsed = int((time.monotonic() - started) * 1000)
    return {"name": name, "ok": True, "addresses": found, "ms": elapsed}


def _connect(host: str, port: int) -> Section:
    started = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_SECONDS):
            pass
    except OSError as exc:
        return {"host": host, "port": port, "reachable": False, "error": str(exc)[:MAX_LINE_CHARS]}
    elapsed = int((time.monotonic() - started) * 1000)
    return {"host": host, "port": port, "reachable": True, "ms": elapsed}


def connectivity_section(server_url: str | None) -> Section:
    address = server_address(server_url) if server_url else None
    out: Section = {"available": True, "dns": _resolve(address[0] if address else DEFAULT_DNS_NAME)}
    try:
        out["gateway"] = {"available": True, "address": default_gateway()}
    except OSError:
        out["gateway"] = unavailable("the routing table is not readable on this system")
    if address is None:
        out["server"] = unavailable("no Auxilio server address is known")
    else:
        out["server"] = _connect(*address)
    return out


def _process_row(info: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "pid": info["pid"],
        "name": info.get("name") or "?",
        "user": info.get("username"),
        "cpu_percent": round(float(info.get("cpu_percent") or 0.0), 1),
        "memory_percent": round(float(info.get("memory_percent") or 0.0), 1),
    }


def processes_section() -> Section:
    """Top processes by CPU and by memory: name, pid, user, percentages. Never the command
    line. CPU needs two samples: the first call primes every process's counter."""
    primed = list(psutil.process_iter())
    for proc in primed:
        try:
            proc.cpu_percent(None)
        except psutil.Error:
            continue
    time.sleep(CPU_SAMPLE_SECONDS)
    rows: list[dict[str, Any]] = []
    for proc in primed:
        try:
            with proc.oneshot():
                info = {
                    "pid": proc.pid,
                    "name": proc.name(),
                    "cpu_percent": proc.cpu_percent(None),
                    "memory_percent": proc.memory_percent(),
                }
                try:
                    info["username"] = proc.username()
                except psutil.Error:
                    info["username"] = None
        except psutil.Error:  # gone, or not ours to read
            continue
        rows.append(_process_row(info))
    by_cpu = sorted(rows, key=lambda r: r["cpu_percent"], reverse=True)[:TOP_PROCESSES]
    by_memory = sorted(rows, key=lambda r: r["memory_percent"], reverse=True)[:TOP_PROCESSES]
    return {"available": True, "count": len(rows), "by_cpu": by_cpu, "by_memory": by_memory}


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 -- an absolute path from shutil.which, fixed arguments
        argv,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=SECTION_TIMEOUT_SECONDS - 1,
        stdin=subprocess.DEVNULL,
        env={"PATH": os.environ.get("PATH", os.defpath), "LANG": "C", "SYSTEMD_COLORS": "0"},
        check=False,
    )


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0][:200] if lines else "no reason given"


def services_section() -> Section:
    systemctl = shutil.which("systemctl")
    if systemctl is None:
        return unavailable("systemd is not present")
    done = _run([systemctl, "--failed", "--no-legend", "--plain", "--no-pager"])
    if done.returncode != 0:
        return unavailable(f"systemctl could not list units: {_first_line(done.stderr)}")
    failed: list[dict[str, str]] = []
    for line in done.stdout.splitlines():
        fields = line.split(None, 4)
        if len(fields) >= 4 and len(failed) < MAX_FAILED_UNITS:
            description = fields[4] if len(fields) > 4 else ""
            failed.append({
                "unit": fields[0], "load": fields[1], "active": fields[2], "sub": fields[3],
                "description": description[:MAX_LINE_CHARS],
            })  # fmt: skip
    return {"available": True, "failed": failed}


def recent_errors_section() -> Section:
    journalctl = shutil.which("journalctl")
    if journalctl is None:
        return unavailable("the system journal is not present")
    done = _run([journalctl, "-p", "err", "-n", str(JOURNAL_LINES), "--no-pager", "-q"])
    if done.returncode != 0:
        return unavailable(f"the journal is not readable: {_first_line(done.stderr)}")
    lines = [line[:MAX_LINE_CHARS] for line in done.stdout.splitlines() if line.strip()]
    return {"available": True, "lines": lines[-JOURNAL_LINES:]}


# -- the report ---------------------------------------------------------------------------------


def default_sections(server_url: str | None) -> dict[str, Callable[[], Section]]:
    """Every section of the report by its key, in the order the person reads their summary."""
    return {
        "os": os_section,
        "cpu": cpu_section,
        "memory": memory_section,
        "disks": disks_section,
        "network": network_section,
        "connectivity": lambda: connectivity_section(server_url),
        "processes": processes_section,
        "services": services_section,
        "recent_errors": recent_errors_section,
    }


def report_bytes(report: Mapping[str, Any]) -> bytes:
    """The report's canonical JSON (sorted keys, no spaces): what its size and hash are of."""
    return json.dumps(report, sort_keys=True, separators=(",", ":"), default=str).encode()


def _bounded(report: dict[str, Any]) -> dict[str, Any]:
    """Drop the largest sections until the report fits (it never should come close)."""
    while len(report_bytes(report)) > MAX_REPORT_BYTES:
        sections = [k for k, v in report.items() if isinstance(v, dict) and v.get("available")]
        if not sections:
            break
        largest = max(sections, key=lambda k: len(report_bytes(report[k])))
        report[largest] = unavailable("too large to send")
    return report


def collect_report(
    server_url: str | None,
    *,
    timeout_seconds: float = SECTION_TIMEOUT_SECONDS,
    sections: Mapping[str, Callable[[], Section]] | None = None,
) -> dict[str, Any]:
    """Every section, gathered in parallel threads, each within ``timeout_seconds``. Blocking:
    call it in a thread. A section that fails or overruns says so; the others are kept."""
    chosen = sections if sections is not None else default_sections(server_url)
    report: dict[str, Any] = {"schema": 1, "collected_at": datetime.now(UTC).isoformat()}
    pool = ThreadPoolExecutor(max_workers=len(chosen), thread_name_prefix="diagnostics")
    try:
        futures = {name: pool.submit(check) for name, check in chosen.items()}
        deadline = time.monotonic() + timeout_seconds
        for name, future in futures.items():
            try:
                report[name] = future.result(timeout=max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                report[name] = unavailable(f"took longer than {timeout_seconds:g} s")
            except (OSError, ValueError, subprocess.SubprocessError, psutil.Error) as exc:
                report[name] = unavailable(f"{type(exc).__name__}: {exc}"[:MAX_LINE_CHARS])
    finally:
        # An overrunning check's thread is left to finish on its own; nobody waits for it.
        pool.shutdown(wait=False, cancel_futures=True)
    return _bounded(report)
