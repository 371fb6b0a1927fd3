"""Diagnostics on the device (R15): a system report the person sees before it leaves.

``diagnostics.request`` is gated, the report gathered in a thread (``diagnostics_sections``:
psutil and the standard library, each section under its own time limit, no command lines, no
file contents), and shown to the person as one summary line per section, in their language,
with every journal error line that will be sent written out under its summary.
It is sent only if they choose "Send"; otherwise the technician gets ``diagnostics.withheld``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from auxilio.agent.capabilities.base import Activity, Question, SessionServices
from auxilio.agent.capabilities.diagnostics_sections import Section, collect_report, report_bytes
from auxilio.agent.feed import one_line
from auxilio.agent.i18n_capabilities import DIAGNOSTICS_EN, DiagnosticsTexts
from auxilio.protocol.app import AppMessage, DiagnosticsError, DiagnosticsReport, DiagnosticsRequest
from auxilio.protocol.frames import ActivityKind
from auxilio.protocol.types import Capability, ConsentDecision

logger = logging.getLogger(__name__)

# How many disks, interfaces and processes a summary line names.
_SHOWN = 6
_BUSIEST = 5


# -- the summary the person reads ---------------------------------------------------------------


def _gib(value: float) -> str:
    return f"{value / 2**30:.1f} GB"


def _percent(value: float) -> str:
    return f"{value:.0f}"


def _system(t: DiagnosticsTexts, s: Section) -> str:
    hours, minutes = divmod(int(s["uptime_seconds"]) // 60, 60)
    return t.system.format(
        system=s["system"], release=s["release"], hostname=s["hostname"],
        hours=hours, minutes=minutes,
    )  # fmt: skip


def _cpu(t: DiagnosticsTexts, s: Section) -> str:
    load = " ".join(f"{x:.2f}" for x in s["load_average"] or []) or t.unknown
    return t.cpu.format(cores=s["logical"], percent=_percent(s["percent"]), load=load)


def _memory(t: DiagnosticsTexts, s: Section) -> str:
    return t.memory.format(
        used=_gib(s["used"]), total=_gib(s["total"]), percent=_percent(s["percent"]),
        swap_used=_gib(s["swap_used"]), swap_total=_gib(s["swap_total"]),
    )  # fmt: skip


def _disks(t: DiagnosticsTexts, s: Section) -> str:
    parts = [
        t.disk.format(mountpoint=p["mountpoint"], percent=_percent(p["percent"]))
        for p in s["partitions"][:_SHOWN]
    ]
    return ", ".join(parts) or t.none_readable


def _network(t: DiagnosticsTexts, s: Section) -> str:
    names = [
        (t.interface_up if i.get("up") else t.interface_down).format(name=i["name"])
        for i in s["interfaces"][:_SHOWN]
    ]
    return t.network.format(count=len(s["interfaces"]), names=", ".join(names))


def _connectivity(t: DiagnosticsTexts, s: Section) -> str:
    dns, server = s["dns"], s["server"]
    if not server.get("available", True):
        reach = t.server_unknown
    else:
        reach = t.server_reachable if server["reachable"] else t.server_unreachable
    return t.connectivity.format(
        dns=t.dns_works if dns["ok"] else t.dns_fails,
        name=dns["name"],
        gateway=s["gateway"].get("address") or t.no_gateway,
        server=reach,
    )


def _processes(t: DiagnosticsTexts, s: Section) -> str:
    top = ", ".join(p["name"] for p in s["by_cpu"][:_BUSIEST])
    return t.processes.format(count=s["count"], top=top)


def _services(t: DiagnosticsTexts, s: Section) -> str:
    units = [u["unit"] for u in s["failed"]]
    if not units:
        return t.services_none
    return t.services_failed.format(count=len(units), units=", ".join(units[:_BUSIEST]))


def _errors(t: DiagnosticsTexts, s: Section) -> str:
    return t.errors.format(count=len(s["lines"]))


# Each journal line is shown under its section's summary, as it will be sent: the journal
# names files, accounts and addresses, which the person must see before they leave.
JOURNAL_INDENT = "    "


def _journal_lines(section: Mapping[str, Any]) -> list[str]:
    lines = section.get("lines")
    if not section.get("available") or not isinstance(lines, list):
        return []
    return [JOURNAL_INDENT + str(line) for line in lines]


def as_shown(report: dict[str, Any]) -> dict[str, Any]:
    """``report`` with its journal lines as the person reads them (``feed.one_line``): what
    is sent is then exactly what was shown, never a control character the question hid."""
    section = report.get("recent_errors")
    if isinstance(section, dict) and isinstance(section.get("lines"), list):
        lines = [one_line(str(line)) for line in section["lines"]]
        report = {**report, "recent_errors": {**section, "lines": lines}}
    return report


# In the order the person reads them; the keys are the report's sections.
_SUMMARIES: dict[str, Callable[[DiagnosticsTexts, Section], str]] = {
    "os": _system, "cpu": _cpu, "memory": _memory, "disks": _disks, "network": _network,
    "connectivity": _connectivity, "processes": _processes, "services": _services,
    "recent_errors": _errors,
}  # fmt: skip


def summary_lines(report: Mapping[str, Any], texts: DiagnosticsTexts = DIAGNOSTICS_EN) -> list[str]:
    """One readable line per section, and under the recent errors each journal line: what the
    person is shown before deciding to send."""
    lines: list[str] = []
    for key, describe in _SUMMARIES.items():
        section = report.get(key)
        if not isinstance(section, dict):
            continue
        label = texts.section_names[key]
        if not section.get("available"):
            why = section.get("why", texts.unknown)
            lines.append(f"{label}: {texts.not_available.format(why=why)}")
            continue
        try:
            lines.append(f"{label}: {describe(texts, section)}")
        except (KeyError, TypeError, ValueError):  # a section of another shape: name it only
            lines.append(f"{label}: {texts.included}")
        if key == "recent_errors":
            lines.extend(_journal_lines(section))
    return lines


# -- the handler --------------------------------------------------------------------------------


class DiagnosticsHandler:
    """``diagnostics.request`` -> gate, collect (in a thread), ask the person, send or withhold.

    The work runs in a task of its own so that the session keeps reading messages while the
    person decides; one request at a time (another meanwhile is ``diagnostics.busy``).
    """

    def __init__(
        self,
        services: SessionServices,
        *,
        server_url: str | None = None,
        collect: Callable[[str | None], dict[str, Any]] = collect_report,
    ) -> None:
        self._services = services
        self._server_url = server_url
        self._collect = collect
        self._task: asyncio.Task[None] | None = None

    @property
    def _texts(self) -> DiagnosticsTexts:
        """The person's language, as the session's feed speaks it."""
        return self._services.feed.texts.diagnostics

    async def handle(self, message: AppMessage) -> None:
        if not isinstance(message, DiagnosticsRequest):
            self._services.log.append("ignored", what=f"{message.type} for diagnostics")
            return
        if not self._services.gate(Capability.DIAGNOSTICS):
            self._services.feed.alert(self._texts.not_allowed)
            await self._error(message.request_id, "diagnostics.not_allowed", "not in the grant")
            return
        if self._task is not None and not self._task.done():
            await self._error(message.request_id, "diagnostics.busy", "a report is being prepared")
            return
        self._task = asyncio.create_task(self._guarded(message), name="diagnostics")

    async def close(self) -> None:
        """Revoked or the session ended: a pending report is dropped, never sent."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            # wait() rather than await: the task's cancellation is not ours to raise.
            await asyncio.wait({task})

    async def wait_idle(self) -> None:
        """Until the request in progress is answered (tests and an orderly shutdown)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def _guarded(self, message: DiagnosticsRequest) -> None:
        try:
            await self._serve(message)
        except Exception:
            # The task's boundary (nobody awaits it), as in dispatch: the traceback in the
            # agent's log, a line for the person, a failed answer. Cancellation passes.
            logger.exception("diagnostics request %s failed", message.request_id)
            self._services.feed.alert(self._texts.internal)
            self._services.log.append("handler_failed", capability="diagnostics", what=message.type)
            await self._error(message.request_id, "diagnostics.failed", "internal error")

    async def _serve(self, message: DiagnosticsRequest) -> None:
        services, texts = self._services, self._texts
        services.feed.activity(texts.collecting)
        collected_at = services.clock()
        report = as_shown(await asyncio.to_thread(self._collect, self._server_url))
        lines = summary_lines(report, texts)
        if message.reason:
            lines.insert(0, texts.reason.format(reason=message.reason))
        answer = await services.ask(
            Question(
                kind="diagnostics",
                title=texts.title.format(technician=services.grant().technician_name),
                lines=tuple(lines),
                allow_label=texts.send,
                refuse_label=texts.dont_send,
            )
        )
        if answer is not ConsentDecision.GRANTED or not services.gate(Capability.DIAGNOSTICS):
            await self._withhold(message, answer)
            return
        await self._send(message, collected_at, report)

    async def _send(
        self, message: DiagnosticsRequest, collected_at: datetime, report: dict[str, Any]
    ) -> None:
        services = self._services
        body = report_bytes(report)
        digest = hashlib.sha256(body).hexdigest()
        await services.mark_used(Capability.DIAGNOSTICS)
        # Reported before it is sent, on the same connection: the server has the digest when
        # the technician's client attaches the report to the ticket (``verified``).
        await services.report(
            Activity(
                capability=Capability.DIAGNOSTICS,
                kind=ActivityKind.DIAGNOSTICS_COLLECTED,
                subject="diagnostics report",
                size=len(body),
                sha256=digest,
            )
        )
        await services.send(
            DiagnosticsReport(
                request_id=message.request_id, collected_at=collected_at, report=report
            )
        )
        services.feed.activity(self._texts.sent.format(size=len(body)))
        services.log.append("diagnostics_sent", size=len(body), sha256=digest)

    async def _withhold(self, message: DiagnosticsRequest, answer: ConsentDecision) -> None:
        services = self._services
        services.feed.activity(self._texts.withheld)
        services.log.append("diagnostics_withheld", answer=str(answer))
        await self._error(message.request_id, "diagnostics.withheld", "the person did not send it")
        await services.report(
            Activity(capability=Capability.DIAGNOSTICS, kind=ActivityKind.DIAGNOSTICS_WITHHELD)
        )

    async def _error(self, ref: int, code: str, text: str) -> None:
        self._services.log.append("diagnostics_error", code=code)
        await self._services.send(DiagnosticsError(ref=ref, code=code, message=text))
