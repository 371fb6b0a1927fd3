"""The file, diagnostics and runbook steps: parsed from ``--send`` and from ``/commands``, run
through a real ``TechnicianSession`` against a fake agent, results attached to the ticket."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.server import serve

from auxilio.client.api import ApiClient
from auxilio.client.connect import request_details_problem
from auxilio.client.interactive import InteractiveDriver
from auxilio.client.output import InteractiveOutput, PrefixedOutput
from auxilio.client.runner import ScriptRunner
from auxilio.client.script import End, Expect, ScriptError, parse_action
from auxilio.client.session import EXIT_OK, TechnicianSession
from auxilio.client.steps import (
    Diagnose,
    GetFile,
    ListFiles,
    PutFile,
    RunRunbook,
    SetReason,
    StepError,
    parse_command,
)
from auxilio.client.tools import _scoped, coerce_parameters
from auxilio.crypto.grants import SignedGrant, issue_grant
from auxilio.crypto.runbooks import (
    ParameterInvalid,
    Runbook,
    RunbookParameter,
    runbook_digest,
    sign_runbook,
)
from auxilio.protocol.app import (
    CHANNEL_OF,
    DiagnosticsError,
    DiagnosticsReport,
    DiagnosticsRequest,
    RunbookResult,
    RunbookRun,
    decode_app_message,
    encode_app_message,
)
from auxilio.protocol.frames import SessionEnd, parse_message
from auxilio.protocol.types import (
    Capability,
    CapabilityGrant,
    CapabilityLimits,
    ConsentTerms,
    RunbookPin,
)

from .fakes import SESSION_ID, FakeAgentRelay, Keys, end_message

TICKET_ID = "0b4f7c3e-6a39-4f55-9d1e-2f8e8f0c1a11"

# -- the step parser -------------------------------------------------------------------------


def test_it_reads_every_new_step() -> None:
    assert parse_action("ls:/home/ana") == ListFiles("/home/ana")
    assert parse_action("get:/etc/hosts=>./hosts") == GetFile("/etc/hosts", "./hosts")
    assert parse_action("get:/etc/hosts") == GetFile("/etc/hosts", None)
    assert parse_action("put:fix.sh=>/tmp/fix.sh") == PutFile("fix.sh", "/tmp/fix.sh")
    assert parse_action("replace:fix.sh=>/tmp/fix.sh") == PutFile("fix.sh", "/tmp/fix.sh", True)
    assert parse_action("diag:") == Diagnose()
    assert parse_action("diag") == Diagnose()
    assert parse_action('runbook:collect-logs lines=50 note="two words"') == RunRunbook(
        "collect-logs", (("lines", "50"), ("note", "two words"))
    )
    assert parse_action("runbook:flush-dns") == RunRunbook("flush-dns")
    assert parse_action("reason:your printer settings are in Documents") == SetReason(
        "your printer settings are in Documents"
    )
    assert parse_action("reason:") == SetReason("")


def test_windows_paths_keep_their_backslashes_and_colons() -> None:
    assert parse_action(r"get:C:\Users\ana\a.txt=>a.txt") == GetFile(r"C:\Users\ana\a.txt", "a.txt")
    assert parse_command(r'/get "C:\Users\ana\My file.txt" here') == GetFile(
        r"C:\Users\ana\My file.txt", "here"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ls:", "ls needs a PATH"),
        ("ls", "ls needs a colon"),
        ("get:", "get needs REMOTE"),
        ("get:/a=>", "get needs REMOTE"),
        ("put:fix.sh", "put needs LOCAL=>REMOTE"),
        ("put:=>/tmp/x", "put needs LOCAL=>REMOTE"),
        ("replace:a=>", "replace needs LOCAL=>REMOTE"),
        ("diag:now", "diag takes nothing"),
        ("runbook:", "runbook needs an ID"),
        ("runbook:Flush DNS", "is not a runbook id"),
        ("runbook:flush-dns lines", "is not name=value"),
        ("runbook:flush-dns Lines=3", "is not name=value"),
        ("runbook:flush-dns a=1 a=2", "given twice"),
        ('runbook:flush-dns note="open', "cannot read"),
        ("reason:" + "x" * 2001, "at most 2000"),
    ],
)
def test_it_rejects_bad_steps_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(ScriptError, match=message) as raised:
        parse_action(text, where="--send #3")
    assert str(raised.value).startswith("--send #3: ")


def test_the_commands_mean_the_same_as_the_steps() -> None:
    assert parse_command("/ls /home/ana --reason 'the printer driver'") == ListFiles(
        "/home/ana", "the printer driver"
    )
    assert parse_command('/get "~/My Documents/a.txt"') == GetFile("~/My Documents/a.txt")
    assert parse_command("/put fix.sh /tmp/fix.sh") == PutFile("fix.sh", "/tmp/fix.sh")
    assert parse_command("/replace fix.sh /tmp/fix.sh") == PutFile("fix.sh", "/tmp/fix.sh", True)
    assert parse_command('/diag --reason "slow since Monday"') == Diagnose("slow since Monday")
    assert parse_command("/runbook collect-logs lines=10 --reason why") == RunRunbook(
        "collect-logs", (("lines", "10"),), "why"
    )
    assert parse_command("/reason it's where the invoice is") == SetReason(
        "it's where the invoice is"
    )
    assert parse_command("/term") is None
    assert parse_command("hello") is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("/ls", "usage: /ls PATH"),
        ("/get a b c", "usage: /get REMOTE"),
        ("/put onlyone", "usage: /put LOCAL REMOTE"),
        ("/diag extra", "usage: /diag"),
        ("/ls /x --reason", "--reason needs the text"),
        ("/reason", "usage: /reason TEXT"),
        ("/runbook", "runbook needs an ID"),
    ],
)
def test_bad_commands_say_how_to_write_them(line: str, message: str) -> None:
    with pytest.raises(StepError, match=message):
        parse_command(line)


def test_request_details_must_fit_the_capabilities() -> None:
    assert request_details_problem(["files"], "both", [], None) is None
    assert request_details_problem(["files"], "sideways", [], None) == (
        "--files-direction is upload, download or both"
    )
    assert request_details_problem(["chat"], "upload", [], None) == (
        "--files-direction needs --capability files"
    )
    assert request_details_problem(["chat"], None, ["flush-dns"], None) == (
        "--runbook needs --capability runbooks"
    )
    assert "not a runbook id" in str(request_details_problem(["runbooks"], None, ["X y"], None))
    assert request_details_problem(["chat"], None, [], "bash") == (
        "--shell needs --capability terminal"
    )


async def test_the_request_body_says_exactly_what_is_asked() -> None:
    seen: list[Any] = []

    def rest(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(201, json={"id": SESSION_ID})

    async with ApiClient(
        "http://127.0.0.1:9", "t" * 32, transport=httpx.MockTransport(rest)
    ) as api:
        await api.request_support_session(
            ticket_id=TICKET_ID, mode="attended", capabilities=["files", "runbooks", "terminal"],
            technician_e2e_key="k" * 43, terminal_shell="bash", files_direction="download",
            runbooks=["flush-dns"],
        )  # fmt: skip
        await api.request_support_session(
            ticket_id=TICKET_ID, mode="attended", capabilities=["chat"], technician_e2e_key="k" * 43
        )

    assert seen[0]["terminal_shell"] == "bash"
    assert (seen[0]["files_direction"], seen[0]["runbooks"]) == ("download", ["flush-dns"])
    assert {"terminal_shell", "files_direction", "runbooks"}.isdisjoint(seen[1])


# -- runbook parameters ----------------------------------------------------------------------


def _runbook(version: int = 2) -> Runbook:
    return Runbook(
        organisation_id="org-7", runbook_id="collect-logs", version=version, name="Collect logs",
        platforms=("linux",), interpreter="sh", script='tail -n "$AUXILIO_PARAM_LINES" x.log',
        parameters=(
            RunbookParameter(name="lines", type="integer", minimum=1, maximum=5000, default=200),
            RunbookParameter(name="verbose", type="boolean", required=False),
        ),
        timeout_seconds=60, author_id="u-1", author_name="Ana", approved_by_id="u-2",
        approved_by_name="Bea", approved_at=datetime.now(UTC),
    )  # fmt: skip


def test_parameters_are_typed_by_the_runbooks_declaration() -> None:
    runbook = _runbook()

    assert coerce_parameters(runbook, {"lines": "50", "verbose": "true"}) == {
        "lines": 50, "verbose": True,
    }  # fmt: skip
    for texts, message in (
        ({"lines": "fifty"}, "must be an integer"),
        ({"lines": "0"}, "at least 1"),
        ({"verbose": "yes"}, "true or false"),
        ({"lines": "5; rm -rf ~"}, "must be an integer"),
        ({"path": "/etc"}, "is not a parameter"),
    ):
        with pytest.raises(ParameterInvalid, match=message):
            coerce_parameters(runbook, texts)


# -- through a session -----------------------------------------------------------------------


def _grant(keys: Keys, signed_runbook: Any) -> SignedGrant:
    now = datetime.now(UTC)
    later = now + timedelta(minutes=30)
    pin = RunbookPin(id="collect-logs", version=2, sha256=runbook_digest(signed_runbook))
    return issue_grant(
        keys.server, support_session_id=SESSION_ID, organisation_id="org-7",
        organisation_name="Escuela", technician_id="tech-42", technician_name="Ana López",
        technician_e2e_key=keys.technician.public_key(), device_id="dev-9",
        device_public_key=keys.device.public_key(),
        capabilities=[
            CapabilityGrant(capability=Capability.CHAT, expires_at=later),
            CapabilityGrant(capability=Capability.DIAGNOSTICS, expires_at=later),
            CapabilityGrant(capability=Capability.RUNBOOKS, expires_at=later,
                            limits=CapabilityLimits(runbooks=(pin,))),
        ],
        policy_version="test-1", issued_at=now, not_after=now + timedelta(hours=1),
        terms=ConsentTerms(legal_text="t", timeout_seconds=60, answer_by=later),
    )  # fmt: skip


async def _agent(relay: FakeAgentRelay) -> None:
    """Withholds the first diagnostics, sends the second, runs the runbook, confirms the end."""
    assert relay.agent is not None and relay.connection is not None
    withheld = False
    while True:
        data = await relay.connection.recv()
        if isinstance(data, str):
            if isinstance(relay.received_control(data), SessionEnd):
                await relay.connection.send(end_message("technician", "technician_ended"))
                return
            continue
        channel, plaintext = relay.agent.open(data)
        message = decode_app_message(plaintext)
        relay.app_messages.append(message)
        answer: Any
        if isinstance(message, DiagnosticsRequest) and not withheld:
            withheld = True
            answer = DiagnosticsError(ref=message.request_id, code="diagnostics.withheld")
        elif isinstance(message, DiagnosticsRequest):
            answer = DiagnosticsReport(request_id=message.request_id,
                                       collected_at=datetime(2026, 12, 1, 12, tzinfo=UTC),
                                       report={"os": {"name": "Linux"}, "disks": []})  # fmt: skip
        elif isinstance(message, RunbookRun):
            answer = RunbookResult(
                run_id=message.run_id,
                runbook_id="collect-logs",
                version=2,
                exit_code=0,
                duration_ms=42,
                stdout="line 1\nline 2\n",
            )
        else:
            continue
        assert CHANNEL_OF[type(message)] == channel
        payload = encode_app_message(answer)
        await relay.connection.send(relay.agent.seal(CHANNEL_OF[type(answer)], payload))


class _Relay(FakeAgentRelay):
    """The fake agent of fakes.py, keeping the application messages it opened."""

    app_messages: list[Any]

    def received_control(self, data: str) -> Any:
        message = parse_message(data)
        self.received.append(message)
        return message


@asynccontextmanager
async def _serving(relay: _Relay, signed_runbook: Any, posted: list[Any]) -> AsyncIterator[Any]:
    def rest(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith(f"/support-sessions/{SESSION_ID}"):
            grant = relay.grant.model_dump()
            return httpx.Response(200, json={"id": SESSION_ID, "grant": grant,
                                             "ticket_id": TICKET_ID})  # fmt: skip
        if path.endswith("/runbooks/collect-logs"):
            return httpx.Response(200, json={"runbook_id": "collect-logs", "version": 2,
                                             "signed": signed_runbook.model_dump()})  # fmt: skip
        if path.endswith(f"/tickets/{TICKET_ID}/attachments") and request.method == "POST":
            posted.append(json.loads(request.content))
            return httpx.Response(201, json={"id": f"att-{len(posted)}",
                                             "name": posted[-1]["name"]})  # fmt: skip
        return httpx.Response(404, json={"error": {"code": "not_found", "message": "no"}})

    async with serve(relay.handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        api = ApiClient(f"http://127.0.0.1:{port}", "t" * 32, transport=httpx.MockTransport(rest))
        async with api:
            yield api
        server.close()


async def test_diagnostics_and_a_runbook_run_and_their_results_go_to_the_ticket() -> None:
    keys = Keys()
    signed = sign_runbook(keys.server, _runbook())
    relay = _Relay(keys, _grant(keys, signed), after_confirm=_agent)
    relay.app_messages = []
    posted: list[Any] = []
    stream = io.StringIO()
    steps = [
        parse_action("diag:"),
        Expect("diagnostics.withheld"),
        parse_action("reason:the network is slow"),
        parse_action("diag:"),
        parse_action("runbook:collect-logs lines=20"),
        parse_action("runbook:collect-logs lines=many"),
        End(),
    ]

    async with _serving(relay, signed, posted) as api:
        session = TechnicianSession(
            api=api, token="t" * 32, support_session_id=SESSION_ID,
            technician_key=keys.technician, server_key=keys.server.public_key(),
            output=PrefixedOutput(stream),
        )  # fmt: skip
        outcome = await session.run(ScriptRunner(steps))

    lines = stream.getvalue().splitlines()
    assert outcome.exit_code == EXIT_OK, stream.getvalue()
    assert "error< diagnostics.withheld (the person chose not to send the report)" in lines
    assert "diag< report collected_at=2026-12-01T12:00:00+00:00 sections=os,disks" in lines
    assert (
        "diag< attached to the ticket as diagnostics-20261201T120000Z.json (attachment att-1)"
        in lines
    )
    assert "runbook< collect-logs v2 exit=0 duration_ms=42" in lines
    assert "runbook< stdout| line 2" in lines
    assert any(line.startswith("runbook< attached to the ticket as runbook-collect-logs-v2-")
               for line in lines)  # fmt: skip
    assert "error< runbook.parameter_invalid: parameter 'lines': must be an integer" in lines
    requests = [m for m in relay.app_messages if isinstance(m, DiagnosticsRequest)]
    assert [m.reason for m in requests] == ["", "the network is slow"]
    [run] = [m for m in relay.app_messages if isinstance(m, RunbookRun)]
    assert run.parameters == {"lines": 20} and run.runbook == signed
    assert [p["kind"] for p in posted] == ["diagnostics", "runbook_result"]
    assert all(p["support_session_id"] == SESSION_ID for p in posted)
    assert json.loads(posted[0]["content"])["report"] == {"os": {"name": "Linux"}, "disks": []}
    result = json.loads(posted[1]["content"])
    assert (result["exit_code"], result["parameters"]) == (0, {"lines": 20})


async def test_a_runbook_the_grant_does_not_pin_is_refused_before_it_is_sent() -> None:
    keys = Keys()
    pinned = sign_runbook(keys.server, _runbook(version=2))
    newer = sign_runbook(keys.server, _runbook(version=3))  # approved after the grant
    relay = _Relay(keys, _grant(keys, pinned), after_confirm=_agent)
    relay.app_messages = []
    stream = io.StringIO()

    async with _serving(relay, newer, []) as api:
        session = TechnicianSession(
            api=api, token="t" * 32, support_session_id=SESSION_ID,
            technician_key=keys.technician, server_key=keys.server.public_key(),
            output=PrefixedOutput(stream),
        )  # fmt: skip
        await session.run(ScriptRunner([parse_action("runbook:collect-logs"), End()]))

    refusal = (
        "error< runbook.not_in_grant: collect-logs v3 is not in this session's grant "
        "(granted: collect-logs v2); request a session with --runbook collect-logs"
    )
    assert refusal in stream.getvalue().splitlines()
    assert relay.app_messages == []


# -- the interactive loop --------------------------------------------------------------------


class _ChatSession:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.ended = False
        self.granted: tuple[str, ...] = ("chat", "files")
        self.revoked: dict[str, Any] = {}

    async def send_chat(self, text: str) -> None:
        self.sent.append(text)


async def test_interactive_commands_run_as_steps_and_bad_ones_send_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ran: list[Any] = []

    async def record(session: Any, action: Any) -> None:
        ran.append(action)

    monkeypatch.setattr("auxilio.client.interactive.run_step", record)
    with (tmp_path / "stdin").open("w+") as stdin:
        monkeypatch.setattr("sys.stdin", stdin)
        stream = io.StringIO()
        driver = InteractiveDriver(InteractiveOutput(stream))
        session = _ChatSession()
        for line in ('/ls /home/ana --reason "the printer driver"', "/get a b c", "/diag",
                     "/runbook Bad"):  # fmt: skip
            await driver._chat_input(session, line.encode() + b"\n")  # type: ignore[arg-type]
        await asyncio.gather(*driver.steps)

    assert ran == [ListFiles("/home/ana", "the printer driver"), Diagnose()]
    assert session.sent == []
    shown = stream.getvalue()
    assert "error< usage: /get REMOTE [LOCAL] [--reason TEXT] (nothing was sent)" in shown
    assert "is not a runbook id" in shown


def test_server_codes_become_dotted_codes_of_the_step() -> None:
    assert _scoped("runbook", "runbook.not_found") == "runbook.not_found"
    assert _scoped("attachment", "attachment_too_large") == "attachment.too_large"
    assert _scoped("attachment", "ticket_not_found") == "attachment.ticket_not_found"
    assert _scoped("runbook", "network") == "runbook.network"
