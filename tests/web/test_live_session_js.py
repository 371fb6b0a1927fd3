"""live-session.js in the real chromium against a stand-in relay with the Python agent side
behind it (js_harness/relay.py): attach, states, the handshake, chat, the terminal, files,
diagnostics, runbooks, the extension, a revocation, the end with its summary, and a replayed
frame ending the session with its code. The page's DOM is the one docs/web-client.md names.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auxilio.crypto.runbooks import Runbook, RunbookParameter, runbook_digest, sign_runbook
from auxilio.protocol import app
from auxilio.protocol.types import Capability, CapabilityLimits, RunbookPin

from .js_harness.grants import NOW, SID, make_grant, server_key_data
from .js_harness.relay import FakeRelay
from .js_harness.server import HARNESS_DIR, Harness, serve_harness

ALL = [Capability.CHAT, Capability.TERMINAL, Capability.FILES, Capability.DIAGNOSTICS,
       Capability.RUNBOOKS]  # fmt: skip


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    with serve_harness() as served:
        yield served


def _runbook(server_key: Ed25519PrivateKey) -> Any:
    runbook = Runbook(
        organisation_id="org-7", runbook_id="rb-logs", version=2, name="Recent logs",
        platforms=("linux",), interpreter="sh", script='journalctl -n "$AUXILIO_PARAM_LINES"',
        parameters=(
            RunbookParameter(name="lines", type="integer", description="Lines", default=50),
            RunbookParameter(name="follow", type="boolean", description="Follow", required=False),
        ),
        timeout_seconds=30, author_id="u-1", author_name="Ana", approved_by_id="u-2",
        approved_by_name="Luis", approved_at=NOW,
    )  # fmt: skip
    return sign_runbook(server_key, runbook)


@pytest.fixture
def live(
    browser: Any, harness: Harness, request: pytest.FixtureRequest
) -> Iterator[tuple[Any, FakeRelay, Any]]:
    """The live page attached and past the handshake: (page, relay, signed runbook). With the
    parameter ``"prefilled"`` the page's runbook select already has its options, as the
    console's template renders it."""
    server_key, device_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{harness.url}/harness/index.html")
    page.locator("#ready", has_text="ready").wait_for()
    public = page.evaluate(
        """async (sid) => {
        const key = await e2e.generateTechnicianKey();
        await e2e.storeTechnicianKey(sid, key);
        return key.publicKey;
    }""",
        SID,
    )
    signed_runbook = _runbook(server_key)
    pin = RunbookPin(id="rb-logs", version=2, sha256=runbook_digest(signed_runbook))
    signed, grant = make_grant(
        server_key, device_key, public, capabilities=ALL,
        limits={Capability.RUNBOOKS: CapabilityLimits(runbooks=(pin,))},
    )  # fmt: skip
    harness.api[f"/api/v1/support-sessions/{SID}"] = {"grant": signed.model_dump()}
    harness.api["/api/v1/runbooks/rb-logs"] = {"signed": signed_runbook.model_dump()}
    harness.posts.clear()
    relay = FakeRelay(grant=grant, device_key=device_key, granted=[c.value for c in ALL])
    with relay.running():
        key = server_key_data(server_key)
        data = {
            "support_session_id": SID, "join_code": "ABCD-EFGH", "ws_token": "t" * 32,
            "ws_url": relay.url, "server_public_key": key["key"],
            "server_fingerprint": key["fingerprint"],
            "runbooks": [{"id": "rb-logs", "name": "Recent logs"}],
        }  # fmt: skip
        texts = {"state.active": "Activo, cifrado de extremo a extremo"}
        template = (HARNESS_DIR / "live.html").read_text(encoding="utf-8")
        harness.pages["/harness/live-page.html"] = template.replace(
            "{session_data}", json.dumps(data)
        ).replace("{session_texts}", json.dumps(texts))
        if getattr(request, "param", "") == "prefilled":
            page_text = harness.pages["/harness/live-page.html"].replace(
                '<select id="runbooks-select"></select>',
                '<select id="runbooks-select"><option value="rb-logs">Logs</option></select>',
            )
            harness.pages["/harness/live-page.html"] = page_text
        page.goto(f"{harness.url}/harness/live-page.html")
        page.locator("#session-state[data-state=active]").wait_for()
        yield page, relay, signed_runbook
    context.close()
    assert errors == []


def text(page: Any, element_id: str) -> str:
    result: str = page.locator(f"#{element_id}").inner_text()
    return result


def test_it_attaches_with_the_token_and_shows_the_translated_state(
    live: tuple[Any, FakeRelay, Any],
) -> None:
    page, relay, _ = live
    attach = relay.wait_control("tech.attach")
    assert attach["support_session_id"] == SID
    assert attach["token"] == "t" * 32
    assert text(page, "session-state") == "Activo, cifrado de extremo a extremo"
    assert "left" in text(page, "time-left")
    assert page.locator("#chat-input").is_enabled()


def test_chat_both_ways(live: tuple[Any, FakeRelay, Any]) -> None:
    page, relay, _ = live
    page.fill("#chat-input", "hola, ¿me ves?")
    page.press("#chat-input", "Enter")
    (sent,) = relay.wait_app("chat.message")
    assert sent.text == "hola, ¿me ves?"
    relay.send_app(app.ChatMessage(text="sí, te veo", sent_at=NOW))
    page.locator("#chat-log", has_text="sí, te veo").wait_for()
    assert page.locator("#chat-input").input_value() == ""


def test_the_terminal_opens_shows_output_and_sends_keystrokes(
    live: tuple[Any, FakeRelay, Any],
) -> None:
    page, relay, _ = live
    (opened,) = relay.wait_app("terminal.open")
    assert opened.terminal_id == 1 and opened.cols > 0 and opened.rows > 0
    relay.send_app(app.TerminalOutput(terminal_id=1, data=b"ana@pc:~$ "))
    page.locator(".xterm-rows", has_text="ana@pc:~$").wait_for()
    page.locator("#terminal .xterm-helper-textarea").focus()
    page.keyboard.type("ls\n")
    inputs = relay.wait_app("terminal.input", count=3)
    assert b"".join(m.data for m in inputs) == b"ls\r"
    relay.send_app(app.TerminalExit(terminal_id=1, exit_code=0))
    page.locator(".xterm-rows", has_text="exited with code 0").wait_for()


def test_files_list_download_with_its_hash_checked_and_upload(
    live: tuple[Any, FakeRelay, Any], tmp_path: Path
) -> None:
    page, relay, _ = live
    page.fill("#files-path", "/home/ana")
    page.fill("#files-reason", "the invoice")
    page.click("#files-form button")
    (listing_request,) = relay.wait_app("files.list")
    assert (listing_request.path, listing_request.reason) == ("/home/ana", "the invoice")
    relay.send_app(app.FilesListing(
        request_id=listing_request.request_id, path="/home/ana",
        entries=(app.FileEntry(name="factura.pdf", kind="file", size=5),
                 app.FileEntry(name="Documentos", kind="directory", size=0, zone="documents")),
    ))  # fmt: skip
    page.locator("#files-list button", has_text="Documentos").wait_for()

    content = b"%PDF!"
    with page.expect_download() as download:
        page.locator("#files-list button", has_text="factura.pdf").click()
        (request,) = relay.wait_app("files.download")
        assert request.path == "/home/ana/factura.pdf"
        tid = request.transfer_id
        relay.send_app(app.FilesReady(transfer_id=tid, path=request.path, size=5, offset=0))
        relay.send_app(app.FileChunk(transfer_id=tid, offset=0, data=content))
        relay.send_app(app.FilesDone(
            transfer_id=tid, size=5, sha256=hashlib.sha256(content).hexdigest()))  # fmt: skip
    saved = tmp_path / "saved.pdf"
    download.value.save_as(saved)
    assert saved.read_bytes() == content
    assert "checked" in text(page, "files-status")

    # A download whose bytes do not match the device's hash is refused, never offered.
    page.locator("#files-list button", has_text="factura.pdf").click()
    second = relay.wait_app("files.download", count=2)[1]
    relay.send_app(app.FilesReady(transfer_id=second.transfer_id, path=second.path, size=5,
                                  offset=0))  # fmt: skip
    relay.send_app(app.FileChunk(transfer_id=second.transfer_id, offset=0, data=b"%PDF?"))
    relay.send_app(app.FilesDone(transfer_id=second.transfer_id, size=5,
                                 sha256=hashlib.sha256(content).hexdigest()))  # fmt: skip
    page.locator("#files-status", has_text="files.hash_mismatch").wait_for()

    upload = tmp_path / "notes.txt"
    upload.write_bytes(b"x" * 300_000)  # two chunks
    page.set_input_files("#files-upload-input", str(upload))
    page.fill("#files-upload-path", "/tmp/")
    page.click("#files-upload-form button")
    (offer,) = relay.wait_app("files.upload")
    digest = hashlib.sha256(upload.read_bytes()).hexdigest()
    assert (offer.path, offer.size, offer.sha256) == ("/tmp/notes.txt", 300_000, digest)
    relay.send_app(app.FilesReady(transfer_id=offer.transfer_id, path=offer.path, size=300_000,
                                  offset=0))  # fmt: skip
    chunks = relay.wait_app("files.chunk", count=2)
    assert [c.offset for c in chunks] == [0, 262_144]
    assert b"".join(c.data for c in chunks) == upload.read_bytes()
    relay.send_app(app.FilesDone(transfer_id=offer.transfer_id, size=300_000, sha256=digest))
    page.locator("#files-status", has_text="checked by the device").wait_for()


def test_diagnostics_shows_the_report_or_that_it_was_withheld(
    live: tuple[Any, FakeRelay, Any],
) -> None:
    page, relay, _ = live
    page.fill("#diagnostics-reason", "slow laptop")
    page.click("#diagnostics-form button")
    (request,) = relay.wait_app("diagnostics.request")
    assert request.reason == "slow laptop"
    relay.send_app(app.DiagnosticsReport(request_id=request.request_id, collected_at=NOW,
                                         report={"memory": {"total_mb": 8192}}))  # fmt: skip
    page.locator("#diagnostics-output", has_text="8192").wait_for()
    page.click("#diagnostics-form button")
    second = relay.wait_app("diagnostics.request", count=2)[1]
    relay.send_app(app.DiagnosticsError(ref=second.request_id, code="diagnostics.withheld"))
    page.locator("#diagnostics-output", has_text="chose not to send").wait_for()


def test_a_runbook_is_fetched_checked_against_the_grant_and_run_with_typed_parameters(
    live: tuple[Any, FakeRelay, Any],
) -> None:
    page, relay, signed_runbook = live
    page.select_option("#runbooks-select", "rb-logs")
    page.locator("#runbooks-param-lines").wait_for()
    page.fill("#runbooks-param-lines", "200")
    page.check("#runbooks-param-follow")
    page.fill("#runbooks-reason", "boot errors")
    page.click("#runbooks-form button")
    (run,) = relay.wait_app("runbook.run")
    assert run.runbook == signed_runbook
    assert run.parameters == {"lines": 200, "follow": True}
    assert run.reason == "boot errors"
    relay.send_app(app.RunbookResult(run_id=run.run_id, runbook_id="rb-logs", version=2,
                                     exit_code=0, duration_ms=42, stdout="all good"))  # fmt: skip
    page.locator("#runbooks-output", has_text="all good").wait_for()
    assert "Exit code 0" in text(page, "runbooks-output")


def test_extension_revocation_and_the_end_with_a_summary(
    live: tuple[Any, FakeRelay, Any], harness: Harness
) -> None:
    page, relay, _ = live
    page.fill("#extension-minutes", "15")
    page.fill("#extension-reason", "the update is still running")
    page.click("#extension-form button")
    request = relay.wait_control("session.extend.request")
    assert (request["requested_seconds"], request["reason"]) == (900, "the update is still running")
    relay.send_control({"type": "session.extend.decision", "support_session_id": SID,
                        "approved": False, "decided_by": "server",
                        "reason": "denied by sessions.extension.max_count"})  # fmt: skip
    page.locator("#decisions", has_text="denied by sessions.extension.max_count").wait_for()

    relay.send_control({"type": "capability.revoke", "support_session_id": SID,
                        "capability": "files", "revoked_by": "end_user", "reason": ""})  # fmt: skip
    page.locator("#decisions", has_text="files revoked by end_user").wait_for()
    assert page.locator("#files-path").is_disabled()
    assert page.locator("#chat-input").is_enabled()

    page.fill("#summary-input", "Cleared the print queue.")
    page.click("#end-form button")
    end = relay.wait_control("session.end")
    assert (end["reason"], end["ended_by"]) == ("technician_ended", "technician")
    page.locator("#session-state[data-state=ended]").wait_for()
    page.locator("#decisions", has_text="Summary saved").wait_for()
    summary = [post for post in harness.posts if post[0].endswith("/summary")]
    assert summary == [(f"/api/v1/support-sessions/{SID}/summary",
                        {"summary": "Cleared the print queue."}, "csrf-harness-token")]  # fmt: skip
    assert page.locator("#chat-input").is_disabled()


def test_a_replayed_frame_ends_the_session_with_its_code(
    live: tuple[Any, FakeRelay, Any],
) -> None:
    page, relay, _ = live
    relay.send_app(app.ChatMessage(text="once", sent_at=NOW))
    page.locator("#chat-log", has_text="once").wait_for()
    relay.send_frame(relay.sent_frames[-1])
    end = relay.wait_control("session.end")
    assert (end["reason"], end["detail"]) == ("protocol_error", "e2e.replayed")
    page.locator("#session-error", has_text="e2e.replayed").wait_for()


@pytest.mark.parametrize("live", ["prefilled"], indirect=True)
def test_a_preselected_runbook_shows_its_parameters_once_the_channel_is_up(
    live: tuple[Any, FakeRelay, Any],
) -> None:
    page, relay, _ = live
    page.locator("#runbooks-param-lines").wait_for()
    assert page.locator("#runbooks-param-lines").input_value() == "50"
    page.click("#runbooks-form button")
    (run,) = relay.wait_app("runbook.run")
    assert run.parameters == {"lines": 50, "follow": False}


def test_every_text_key_of_the_page_is_translated_by_the_console_template() -> None:
    """live-texts.js's keys and the console's session-texts block name the same texts."""
    web = Path(__file__).parents[2] / "src" / "auxilio" / "server" / "web"
    script = (web / "static" / "js" / "live-texts.js").read_text(encoding="utf-8")
    template = web / "templates" / "web" / "console" / "_session_texts.html"
    keys = re.compile(r'^\s*"([a-z_.]+)":', re.MULTILINE)
    assert set(keys.findall(template.read_text(encoding="utf-8"))) == set(keys.findall(script))


def test_after_a_dropped_connection_it_attaches_again_with_a_fresh_token_and_handshake(
    live: tuple[Any, FakeRelay, Any], harness: Harness
) -> None:
    page, relay, _ = live
    harness.api["/web/ws-token"] = {"token": "f" * 32}
    first = relay.agent
    relay.drop()
    page.locator("#session-state[data-state=reconnecting]").wait_for()
    again = relay.wait_control("tech.attach", count=2)
    assert again["token"] == "f" * 32
    assert [p for p in harness.posts if p[0] == "/web/ws-token"] == [
        ("/web/ws-token", None, "csrf-harness-token")
    ]
    page.locator("#session-state[data-state=active]").wait_for()
    assert relay.agent is not first  # a new handshake, new keys
    relay.wait_app("terminal.open", count=2)  # the device's terminal opened again
    page.fill("#chat-input", "still here")
    page.press("#chat-input", "Enter")
    assert relay.wait_app("chat.message")[-1].text == "still here"
