"""Diagnostics on the device: the real report, its bounds, and the person's choice to send it."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from auxilio.agent.capabilities import diagnostics_sections as sections
from auxilio.agent.capabilities.diagnostics import DiagnosticsHandler, summary_lines
from auxilio.agent.capabilities.diagnostics_sections import (
    collect_report,
    default_gateway,
    report_bytes,
)
from auxilio.agent.i18n import CATALOGUE, ES
from auxilio.protocol.app import (
    DiagnosticsError,
    DiagnosticsReport,
    DiagnosticsRequest,
    decode_app_message,
    encode_app_message,
)
from auxilio.protocol.binary import MAX_FRAME_PLAINTEXT
from auxilio.protocol.frames import ActivityKind
from auxilio.protocol.types import Capability, ConsentDecision

from .capability_services import Recorder, make_recorder

SECTIONS = (
    "os", "cpu", "memory", "disks", "network", "connectivity", "processes", "services",
    "recent_errors",
)  # fmt: skip


@pytest.fixture
def listener() -> Iterator[int]:
    """A loopback port that accepts connections: the "Auxilio server" of the connectivity check."""
    server = socket.create_server(("127.0.0.1", 0))
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


@pytest.fixture
def recorder(
    tmp_path: Path, server_key: Ed25519PrivateKey, technician_key: X25519PrivateKey
) -> Recorder:
    return make_recorder(
        tmp_path, server_key, technician_key, capabilities=[Capability.DIAGNOSTICS]
    )


def small_report(server_url: str | None) -> dict[str, Any]:
    return {"schema": 1, "os": {"available": True, "system": "Linux", "release": "6.1",
            "hostname": "pc-12", "uptime_seconds": 7260}, "services": {
            "available": False, "why": "systemd is not present"}}  # fmt: skip


# -- the report ---------------------------------------------------------------------------------


def test_the_real_report_has_every_section_and_reaches_the_server(listener: int) -> None:
    report = collect_report(f"http://127.0.0.1:{listener}")

    for name in SECTIONS:
        section = report[name]
        assert section["available"] in (True, False)
        if not section["available"]:
            assert section["why"]
    assert report["connectivity"]["server"] == {
        "host": "127.0.0.1", "port": listener, "reachable": True,
        "ms": report["connectivity"]["server"]["ms"],
    }  # fmt: skip
    assert report["connectivity"]["dns"]["ok"] is True
    assert report["memory"]["total"] > 0
    assert any(i["name"] == "lo" or "127.0.0.1" in str(i) for i in report["network"]["interfaces"])
    assert len(report_bytes(report)) < 512 * 1024


def test_processes_carry_no_command_lines(listener: int) -> None:
    report = collect_report(f"http://127.0.0.1:{listener}")

    rows = report["processes"]["by_cpu"] + report["processes"]["by_memory"]
    assert rows
    assert all(set(row) == {"pid", "name", "user", "cpu_percent", "memory_percent"} for row in rows)
    # This test's own command line (pytest's options) appears nowhere in the report.
    assert b"no:cacheprovider" not in report_bytes(report)
    assert b"cmdline" not in report_bytes(report)


def test_an_unreachable_server_is_reported_not_raised() -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()

    section = sections.connectivity_section(f"https://localhost:{port}/")

    assert section["server"]["reachable"] is False
    assert section["server"]["error"]
    assert section["dns"]["name"] == "localhost"


def test_without_a_server_url_the_server_check_says_why() -> None:
    section = sections.connectivity_section(None)

    assert section["server"] == {"available": False, "why": "no Auxilio server address is known"}


def test_the_default_gateway_is_read_from_the_routing_table(tmp_path: Path) -> None:
    table = tmp_path / "route"
    table.write_text(
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\n"
        "eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\n"
        "eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\n"
    )

    assert default_gateway(str(table)) == "192.168.1.1"


def test_a_routing_table_without_a_default_route_has_no_gateway(tmp_path: Path) -> None:
    table = tmp_path / "route"
    table.write_text("Iface\tDestination\tGateway\tFlags\neth0\t0000A8C0\t00000000\t0001\n")

    assert default_gateway(str(table)) is None


def test_without_systemd_the_services_section_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)

    assert sections.services_section() == {"available": False, "why": "systemd is not present"}
    assert sections.recent_errors_section()["available"] is False


def test_a_failing_section_costs_only_itself() -> None:
    def broken() -> dict[str, Any]:
        raise PermissionError(13, "Permission denied")

    report = collect_report(None, sections={"disks": broken, "memory": sections.memory_section})

    assert report["disks"]["available"] is False
    assert "Permission denied" in report["disks"]["why"]
    assert report["memory"]["available"] is True


def test_a_section_that_overruns_its_time_is_cut_off() -> None:
    release = threading.Event()

    def hung() -> dict[str, Any]:
        release.wait(30)
        return {"available": True}

    try:
        report = collect_report(
            None,
            timeout_seconds=0.2,
            sections={"connectivity": hung, "cpu": sections.os_section},
        )
    finally:
        release.set()

    assert report["connectivity"] == {"available": False, "why": "took longer than 0.2 s"}
    assert report["cpu"]["available"] is True


def test_a_report_too_large_drops_its_largest_section() -> None:
    report = collect_report(
        None,
        sections={
            "recent_errors": lambda: {"available": True, "lines": ["x" * 300] * 2000},
            "os": sections.os_section,
        },
    )

    assert report["recent_errors"] == {"available": False, "why": "too large to send"}
    assert report["os"]["available"] is True


def test_the_summary_has_one_line_per_section(listener: int) -> None:
    report = collect_report(f"http://127.0.0.1:{listener}")

    lines = summary_lines(report)

    labels = [line.split(":", 1)[0] for line in lines]
    assert labels == [
        "System", "CPU", "Memory", "Disks", "Network", "Connectivity", "Processes", "Services",
        "Recent errors",
    ]  # fmt: skip
    assert "server reachable" in lines[5]


def test_the_summary_says_why_a_section_is_missing() -> None:
    lines = summary_lines(small_report(None))

    assert lines == [
        "System: Linux 6.1 on pc-12, up 2 h 1 min",
        "Services: not available (systemd is not present)",
    ]


def test_every_section_of_the_real_report_is_described_in_both_languages(listener: int) -> None:
    report = collect_report(f"http://127.0.0.1:{listener}")

    for texts in CATALOGUE.values():
        words = texts.diagnostics
        lines = summary_lines(report, words)
        assert [line.split(":", 1)[0] for line in lines] == [
            words.section_names[key] for key in SECTIONS
        ]
        # A template with a wrong placeholder would fall back to "included": none does.
        for line, key in zip(lines, SECTIONS, strict=True):
            assert line != f"{words.section_names[key]}: {words.included}"
    assert "servidor accesible" in summary_lines(report, ES.diagnostics)[5]


def test_the_report_travels_as_an_application_message(listener: int) -> None:
    report = collect_report(f"http://127.0.0.1:{listener}")
    message = DiagnosticsReport(request_id=3, collected_at=datetime.now(UTC), report=report)

    data = encode_app_message(message)

    assert len(data) < MAX_FRAME_PLAINTEXT
    decoded = decode_app_message(data)
    assert isinstance(decoded, DiagnosticsReport)
    assert report_bytes(decoded.report) == report_bytes(report)


# -- the handler --------------------------------------------------------------------------------


async def test_a_report_the_person_sends_reaches_the_technician(
    recorder: Recorder, listener: int
) -> None:
    handler = DiagnosticsHandler(recorder.services(), server_url=f"http://127.0.0.1:{listener}")

    await handler.handle(DiagnosticsRequest(request_id=7, reason="the printer is slow"))
    sent = await recorder.next_sent()

    assert isinstance(sent, DiagnosticsReport)
    assert sent.request_id == 7
    (question,) = recorder.questions
    assert question.kind == "diagnostics"
    assert (question.allow_label, question.refuse_label) == ("Send", "Don't send")
    assert question.lines[0] == "Reason given: the printer is slow"
    assert list(question.lines[1:]) == summary_lines(sent.report)
    body = report_bytes(sent.report)
    (activity,) = recorder.activities
    assert activity.kind is ActivityKind.DIAGNOSTICS_COLLECTED
    assert (activity.size, activity.sha256) == (len(body), hashlib.sha256(body).hexdigest())
    assert recorder.used == [Capability.DIAGNOSTICS]
    assert "diagnostics_sent" in recorder.events()
    assert "Diagnostics report sent" in recorder.feed_text()


async def test_a_journal_line_is_sent_as_the_person_was_shown_it(recorder: Recorder) -> None:
    # A journal line may carry what a program logged verbatim (a file name, a terminal title):
    # its control characters are neither shown nor sent; the line the person read is the one
    # that leaves the device.
    raw = "app[12]: cannot open /tmp/x\x1b[2K\x1b[1Aok: Permission denied"
    report = {"recent_errors": {"available": True, "lines": [raw, "kernel: usb 1-1: reset"]}}
    handler = DiagnosticsHandler(recorder.services(), collect=lambda _: report)

    await handler.handle(DiagnosticsRequest(request_id=4))
    sent = await recorder.next_sent()

    assert isinstance(sent, DiagnosticsReport)
    journal = sent.report["recent_errors"]["lines"]
    assert journal == ["app[12]: cannot open /tmp/x?[2K?[1Aok: Permission denied",
                       "kernel: usb 1-1: reset"]  # fmt: skip
    (question,) = recorder.questions
    assert question.lines == (
        "Recent errors: 2 recent error lines from the system journal",
        *(f"    {line}" for line in journal),
    )


async def test_a_spanish_session_is_asked_about_the_report_in_spanish(
    recorder: Recorder,
) -> None:
    services = recorder.services()
    services.feed.texts = ES
    recorder.answers.append(ConsentDecision.REFUSED)
    handler = DiagnosticsHandler(services, collect=small_report)

    await handler.handle(DiagnosticsRequest(request_id=9, reason="la impresora va lenta"))
    sent = await recorder.next_sent()

    # The technician's side stays as it is: a code and an English message.
    assert sent == DiagnosticsError(
        ref=9, code="diagnostics.withheld", message="the person did not send it"
    )
    (question,) = recorder.questions
    assert question.title == f"{recorder.grant.technician_name} pide este informe del sistema"
    assert (question.allow_label, question.refuse_label) == ("Enviar", "No enviar")
    assert question.lines == (
        "Motivo: la impresora va lenta",
        "Sistema: Linux 6.1 en pc-12, encendido desde hace 2 h 1 min",
        "Servicios: no disponible (systemd is not present)",  # the report's own words
    )
    feed = recorder.feed_text()
    assert "El técnico pidió un informe de diagnóstico; se está recopilando." in feed
    assert "El informe de diagnóstico no se envió." in feed


@pytest.mark.parametrize("answer", [ConsentDecision.REFUSED, ConsentDecision.TIMED_OUT])
async def test_a_report_the_person_withholds_never_leaves(
    recorder: Recorder, answer: ConsentDecision
) -> None:
    recorder.answers.append(answer)
    handler = DiagnosticsHandler(recorder.services(), collect=small_report)

    await handler.handle(DiagnosticsRequest(request_id=8))
    sent = await recorder.next_sent()

    assert sent == DiagnosticsError(
        ref=8, code="diagnostics.withheld", message="the person did not send it"
    )
    assert [a.kind for a in recorder.activities] == [ActivityKind.DIAGNOSTICS_WITHHELD]
    assert recorder.used == []
    assert recorder.sent.empty()


async def test_diagnostics_outside_the_grant_are_refused_unasked(recorder: Recorder) -> None:
    recorder.allowed.clear()
    handler = DiagnosticsHandler(recorder.services(), collect=small_report)

    await handler.handle(DiagnosticsRequest(request_id=9))
    sent = await recorder.next_sent()

    assert isinstance(sent, DiagnosticsError)
    assert sent.code == "diagnostics.not_allowed"
    assert recorder.questions == []
    assert "diagnostics is not allowed" in recorder.feed_text()


async def test_revoked_while_the_person_decides_nothing_is_sent(recorder: Recorder) -> None:
    recorder.answer_gate = asyncio.Event()
    handler = DiagnosticsHandler(recorder.services(), collect=small_report)
    await handler.handle(DiagnosticsRequest(request_id=10))
    await recorder.question_asked()

    recorder.allowed.clear()  # the person revoked diagnostics, then pressed "Send"
    recorder.answer_gate.set()
    sent = await recorder.next_sent()

    assert isinstance(sent, DiagnosticsError)
    assert sent.code == "diagnostics.withheld"


async def test_closing_drops_a_pending_report(recorder: Recorder) -> None:
    recorder.answer_gate = asyncio.Event()
    handler = DiagnosticsHandler(recorder.services(), collect=small_report)
    await handler.handle(DiagnosticsRequest(request_id=11))
    await recorder.question_asked()

    await handler.close()
    recorder.answer_gate.set()
    await asyncio.sleep(0)

    assert recorder.sent.empty()
    assert recorder.activities == []


async def test_a_second_request_while_one_is_pending_is_busy(recorder: Recorder) -> None:
    recorder.answer_gate = asyncio.Event()
    handler = DiagnosticsHandler(recorder.services(), collect=small_report)
    await handler.handle(DiagnosticsRequest(request_id=12))

    await handler.handle(DiagnosticsRequest(request_id=13))
    busy = await recorder.next_sent()
    recorder.answer_gate.set()
    report = await recorder.next_sent()

    assert isinstance(busy, DiagnosticsError)
    assert (busy.ref, busy.code) == (13, "diagnostics.busy")
    assert isinstance(report, DiagnosticsReport)
    assert report.request_id == 12


async def test_an_internal_error_is_answered_and_shown(recorder: Recorder) -> None:
    def broken(server_url: str | None) -> dict[str, Any]:
        raise RuntimeError("a bug")

    handler = DiagnosticsHandler(recorder.services(), collect=broken)

    await handler.handle(DiagnosticsRequest(request_id=14))
    sent = await recorder.next_sent()

    assert isinstance(sent, DiagnosticsError)
    assert (sent.ref, sent.code) == (14, "diagnostics.failed")
    assert "internal error stopped the report" in recorder.feed_text()
    assert "handler_failed" in recorder.events()
