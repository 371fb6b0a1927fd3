"""A runbook from the technician's client to the agent's real ``RunbookHandler`` (a real ``sh``):
typed parameters, an injection attempt that arrives as text, the result attached to the ticket."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from auxilio.agent.capabilities.runbooks import RunbookHandler
from auxilio.client.api import ApiClient
from auxilio.client.tools import ToolError, ToolRequests
from auxilio.crypto.runbooks import Runbook, RunbookParameter, runbook_digest, sign_runbook
from auxilio.protocol.app import AppMessage
from auxilio.protocol.types import Capability, CapabilityLimits, RunbookPin
from tests.agent.capability_services import make_recorder

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the script is POSIX sh")

SCRIPT = 'printf "target=%s lines=%s\\n" "$AUXILIO_PARAM_TARGET" "$AUXILIO_PARAM_LINES"\n'


def _runbook() -> Runbook:
    return Runbook(
        organisation_id="org-7", runbook_id="rb-echo", version=1, name="Echo",
        platforms=("linux", "macos"), interpreter="sh", script=SCRIPT,
        parameters=(
            RunbookParameter(name="target", type="string", max_length=200),
            RunbookParameter(name="lines", type="integer", minimum=1, maximum=5000, default=200),
        ),
        timeout_seconds=30, author_id="tech-1", author_name="Rosa", approved_by_id="sup-1",
        approved_by_name="Luis", approved_at=datetime.now(UTC),
    )  # fmt: skip


async def test_a_runbook_runs_on_the_agent_and_its_result_is_attached(tmp_path: Path) -> None:
    server_key = Ed25519PrivateKey.generate()
    signed = sign_runbook(server_key, _runbook())
    pin = RunbookPin(id="rb-echo", version=1, sha256=runbook_digest(signed), consent=False)
    recorder = make_recorder(
        tmp_path, server_key, X25519PrivateKey.generate(), capabilities=[Capability.RUNBOOKS],
        limits={Capability.RUNBOOKS: CapabilityLimits(runbooks=(pin,))},
    )  # fmt: skip
    handler = RunbookHandler(recorder.services(), server_key.public_key())
    posted: list[Any] = []

    def rest(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/runbooks/rb-echo"):
            return httpx.Response(200, json={"signed": signed.model_dump(), "version": 1})
        if request.url.path.endswith("/support-sessions/ss-1"):
            return httpx.Response(200, json={"id": "ss-1", "ticket_id": "t-1"})
        posted.append((request.url.path, json.loads(request.content)))
        return httpx.Response(201, json={"id": "a-1", "name": "x"})

    tools: ToolRequests

    async def to_device(message: AppMessage) -> None:
        await handler.handle(message)

    async def to_technician() -> None:
        while True:
            tools.receive(await recorder.sent.get())

    async with ApiClient("http://127.0.0.1:9", "t" * 32,
                         transport=httpx.MockTransport(rest)) as api:  # fmt: skip
        ids = iter(range(1, 100))
        tools = ToolRequests(
            send=to_device, new_id=lambda: next(ids), api=api,
            server_key=server_key.public_key(), support_session_id="ss-1",
            grant=lambda: recorder.grant,
        )  # fmt: skip
        pump = asyncio.create_task(to_technician())
        try:
            hostile = "$(touch pwned); `id`"
            run = await tools.run_runbook("rb-echo", {"target": hostile, "lines": "20"})
            with pytest.raises(ToolError) as refused:
                await tools.run_runbook("rb-echo", {"target": "x", "lines": "20; reboot"})
            await tools.attach_runbook_result(run)
        finally:
            await handler.close()
            pump.cancel()

    assert run.result.exit_code == 0
    assert run.result.stdout == f"target={hostile} lines=20\n"  # as text, never run
    assert run.parameters == {"target": hostile, "lines": 20}
    assert refused.value.code == "runbook.parameter_invalid"
    [(path, body)] = posted
    assert path == "/api/v1/tickets/t-1/attachments"
    assert (body["kind"], body["support_session_id"]) == ("runbook_result", "ss-1")
    assert json.loads(body["content"])["stdout"] == f"target={hostile} lines=20\n"
