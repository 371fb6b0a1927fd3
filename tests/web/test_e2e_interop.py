"""The browser technician client (static/js/e2e.js, protocol.js) against the Python crypto and
protocol, in the real chromium on a page served from 127.0.0.1 (a secure context):
the same signatures verify, the same handshake completes, the same frames open and the same
faults are refused with the same codes, and application messages are the same bytes.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from auxilio.crypto.e2e import E2ESession
from auxilio.crypto.errors import E2EError
from auxilio.crypto.grants import Grant
from auxilio.crypto.handshake import AgentOffer, Handshake
from auxilio.crypto.keys import b64url_decode, b64url_encode
from auxilio.crypto.signing import DocumentKind, sign_document
from auxilio.protocol import app
from auxilio.protocol.binary import ChannelId
from auxilio.protocol.errors import ProtocolError
from auxilio.protocol.frames import E2EAccept, E2EConfirm
from auxilio.protocol.types import SignedDocument
from tests.protocol.test_clipboard_wire import BAD as CLIPBOARD_BAD
from tests.protocol.test_clipboard_wire import MESSAGES as CLIPBOARD_MESSAGES
from tests.protocol.test_remote_control_wire import BAD as INPUT_BAD
from tests.protocol.test_remote_control_wire import MESSAGES as INPUT_MESSAGES
from tests.protocol.test_screen_wire import MESSAGES as SCREEN_MESSAGES

from .js_harness.grants import SID, make_grant, server_key_data
from .js_harness.server import Harness, serve_harness

# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    with serve_harness() as served:
        yield served


@pytest.fixture(scope="module")
def chromium(browser: Any) -> Any:
    """The web tests' one chromium (tests/web/conftest.py): a second Playwright in the same
    process would clash with it."""
    return browser


@pytest.fixture
def page(chromium: Any, harness: Harness) -> Iterator[Any]:
    context = chromium.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{harness.url}/harness/index.html")
    page.locator("#ready", has_text="ready").wait_for()
    yield page
    context.close()
    assert errors == []


def js(page: Any, body: str, arg: Any = None) -> Any:
    """Run an async function body in the page with ``arg``; errors come back as their code."""
    return page.evaluate(
        "async (arg) => { try { return { ok: await (async () => {" + body + "})() }; }"
        " catch (error) { return { code: error.code ?? String(error) }; } }",
        arg,
    )


def ok(result: dict[str, Any]) -> Any:
    assert "ok" in result, result
    return result["ok"]


def technician_key(page: Any) -> str:
    """A technician key made in the page (kept there, non-extractable): its public half."""
    public: str = ok(
        js(
            page,
            """
        const key = await e2e.generateTechnicianKey();
        harnessState.key = key;
        return key.publicKey;""",
        )
    )
    return public


VERIFY_GRANT = """
    const serverKey = await e2e.importServerKey(arg.server.key, arg.server.fingerprint);
    const grant = await e2e.verifySessionGrant(serverKey, arg.signed, {
      supportSessionId: arg.sid, technicianPublicKey: harnessState.key.publicKey });
    harnessState.grant = grant;
    return grant.device_id;"""


# -- (a) signatures ----------------------------------------------------------------------


def test_the_page_verifies_a_python_grant_and_refuses_a_tampered_one(page: Any) -> None:
    server_key, device_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    signed, grant = make_grant(server_key, device_key, technician_key(page))
    arg: dict[str, Any] = {"server": server_key_data(server_key), "sid": SID}

    assert ok(js(page, VERIFY_GRANT, {**arg, "signed": signed.model_dump()})) == "dev-9"

    body = json.loads(b64url_decode(signed.body))
    body["payload"]["device_public_key"] = b64url_encode(bytes(32))
    forged = {"body": b64url_encode(json.dumps(body).encode()), "signature": signed.signature}
    assert js(page, VERIFY_GRANT, {**arg, "signed": forged}) == {"code": "grant.bad_signature"}

    other_server = Ed25519PrivateKey.generate()
    resigned = sign_document(other_server, grant.model_dump(mode="json"), kind=DocumentKind.GRANT)
    assert js(page, VERIFY_GRANT, {**arg, "signed": resigned.model_dump()}) == {
        "code": "grant.bad_signature"
    }
    as_receipt = sign_document(
        server_key, grant.model_dump(mode="json"), kind=DocumentKind.CONSENT_RECEIPT
    )
    assert js(page, VERIFY_GRANT, {**arg, "signed": as_receipt.model_dump()}) == {
        "code": "grant.bad_signature"
    }
    # Signed, but with whitespace: not the one canonical spelling, refused like verify_document.
    loose = json.dumps(json.loads(b64url_decode(signed.body))).encode()
    spaced = {"body": b64url_encode(loose), "signature": b64url_encode(server_key.sign(loose))}
    assert js(page, VERIFY_GRANT, {**arg, "signed": spaced}) == {"code": "grant.bad_signature"}

    wrong_session = {**arg, "sid": "ss-other", "signed": signed.model_dump()}
    assert js(page, VERIFY_GRANT, wrong_session) == {"code": "grant.malformed"}
    bad_print = {**arg, "server": {**arg["server"], "fingerprint": "SHA256:0000"}}
    assert js(page, VERIFY_GRANT, {**bad_print, "signed": signed.model_dump()}) == {
        "code": "key.fingerprint_mismatch"
    }


ACCEPT = """
    const pending = await e2e.technicianAccept(arg.hello, {
      technicianKey: harnessState.key, grant: harnessState.grant });
    harnessState.pending = pending;
    return pending.accept;"""


def _verified_page(page: Any) -> tuple[Ed25519PrivateKey, Grant]:
    server_key, device_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    signed, grant = make_grant(server_key, device_key, technician_key(page))
    arg = {"server": server_key_data(server_key), "sid": SID, "signed": signed.model_dump()}
    ok(js(page, VERIFY_GRANT, arg))
    return device_key, grant


def test_the_page_checks_the_agents_hello_signature_with_the_grants_device_key(
    page: Any,
) -> None:
    device_key, grant = _verified_page(page)
    hello = Handshake.agent_offer(device_key=device_key, grant=grant).hello
    accept = ok(js(page, ACCEPT, {"hello": hello.model_dump()}))
    assert E2EAccept.model_validate(accept).technician_ephemeral_key == grant.technician_e2e_key

    other_device = Ed25519PrivateKey.generate()
    impostor = Handshake.agent_offer(device_key=other_device, grant=grant).hello
    assert js(page, ACCEPT, {"hello": impostor.model_dump()}) == {"code": "e2e.handshake_failed"}
    swapped = hello.model_copy(update={"agent_ephemeral_key": impostor.agent_ephemeral_key})
    assert js(page, ACCEPT, {"hello": swapped.model_dump()}) == {"code": "e2e.handshake_failed"}
    elsewhere = hello.model_copy(update={"device_id": "dev-other"})
    assert js(page, ACCEPT, {"hello": elsewhere.model_dump()}) == {"code": "e2e.handshake_failed"}


# -- (b) the handshake and frames ----------------------------------------------------------


def _handshake(page: Any) -> E2ESession:
    """A complete handshake: the Python agent side against the page's technician side."""
    device_key, grant = _verified_page(page)
    offer: AgentOffer = Handshake.agent_offer(device_key=device_key, grant=grant)
    accept = E2EAccept.model_validate(ok(js(page, ACCEPT, {"hello": offer.hello.model_dump()})))
    agent, confirm = offer.complete(accept)
    ok(
        js(
            page,
            """
        harnessState.session = await harnessState.pending.complete(arg.confirm);
        return true;""",
            {"confirm": confirm.model_dump()},
        )
    )
    return agent


SEAL = """
    const frame = await harnessState.session.seal(arg.channel, e2e.b64urlDecode(arg.plaintext));
    return e2e.b64urlEncode(frame);"""
OPEN = """
    const { channel, plaintext } = await harnessState.session.open(e2e.b64urlDecode(arg.frame));
    return [channel, e2e.b64urlEncode(plaintext)];"""


def js_seal(page: Any, channel: ChannelId, plaintext: bytes) -> bytes:
    sealed = ok(js(page, SEAL, {"channel": int(channel), "plaintext": b64url_encode(plaintext)}))
    return b64url_decode(sealed)


def js_open(page: Any, frame: bytes) -> dict[str, Any]:
    result: dict[str, Any] = js(page, OPEN, {"frame": b64url_encode(frame)})
    return result


def py_code(session: E2ESession, frame: bytes) -> str:
    try:
        session.open(frame)
    except E2EError as exc:
        return exc.code
    return "opened"


def test_a_full_handshake_then_frames_both_ways_on_two_channels(page: Any) -> None:
    agent = _handshake(page)
    # The agent opens chat and terminal by sending first; the page answers on both.
    for n in range(3):
        for channel in (ChannelId.CHAT, ChannelId.TERMINAL):
            text = f"agent {channel.name} {n} ñ".encode()
            assert ok(js_open(page, agent.seal(channel, text))) == [channel, b64url_encode(text)]
            reply = js_seal(page, channel, f"tech {channel.name} {n}".encode())
            assert agent.open(reply) == (channel, f"tech {channel.name} {n}".encode())
    # Channels the page opens first, including a frame of the full plaintext size.
    big = bytes(range(256)) * 4096
    assert agent.open(js_seal(page, ChannelId.FILES, big)) == (ChannelId.FILES, big)
    assert agent.open(js_seal(page, ChannelId.RUNBOOKS, b"{}")) == (ChannelId.RUNBOOKS, b"{}")
    assert ok(js_open(page, agent.seal(ChannelId.FILES, big)))[1] == b64url_encode(big)


def test_a_confirmation_from_another_handshake_fails_key_confirmation(page: Any) -> None:
    device_key, grant = _verified_page(page)
    offer = Handshake.agent_offer(device_key=device_key, grant=grant)
    accept = E2EAccept.model_validate(ok(js(page, ACCEPT, {"hello": offer.hello.model_dump()})))
    offer.complete(accept)
    # A relay swapping in another agent key: its confirmation was made with other keys.
    other = Handshake.agent_offer(device_key=device_key, grant=grant)
    with pytest.raises(E2EError) as refused:
        other.complete(accept)
    assert refused.value.code == "e2e.key_confirmation_failed"
    wrong_confirm = _confirm_of_another_handshake(device_key, grant)
    result = js(
        page,
        "return !!(await harnessState.pending.complete(arg.confirm));",
        {"confirm": wrong_confirm.model_dump()},
    )
    assert result == {"code": "e2e.key_confirmation_failed"}


def _confirm_of_another_handshake(device_key: Ed25519PrivateKey, grant: Grant) -> E2EConfirm:
    """An e2e.confirm of a handshake the page was not part of (another technician key)."""
    key = X25519PrivateKey.generate()
    public = b64url_encode(key.public_key().public_bytes_raw())
    own = grant.model_copy(update={"technician_e2e_key": public})
    offer = Handshake.agent_offer(device_key=device_key, grant=own)
    pending = Handshake.technician_accept(offer.hello, technician_key=key, grant=own)
    _, confirm = offer.complete(pending.accept)
    return confirm


def test_replayed_reordered_and_tampered_frames_are_refused_with_pythons_codes(
    page: Any,
) -> None:
    agent = _handshake(page)
    first, second, third = (agent.seal(ChannelId.CHAT, f"m{i}".encode()) for i in range(3))

    assert ok(js_open(page, first))[1] == b64url_encode(b"m0")
    assert js_open(page, first) == {"code": "e2e.replayed"}
    assert js_open(page, third) == {"code": "e2e.out_of_order"}
    flipped = bytearray(second)
    flipped[-1] ^= 1
    assert js_open(page, bytes(flipped)) == {"code": "e2e.tampered"}
    header = bytearray(first)
    header[1] = ChannelId.TERMINAL
    # Counter 0 is next on the terminal channel, so the rewritten header is what fails.
    assert js_open(page, bytes(header)) == {"code": "e2e.tampered"}
    flags = bytearray(second)
    flags[2] = 1
    assert js_open(page, bytes(flags)) == {"code": "e2e.tampered"}
    assert js_open(page, second[:26]) == {"code": "e2e.truncated"}
    assert js_open(page, second[:-1]) == {"code": "e2e.tampered"}
    # Nothing of that changed the state: the real next frames still open, in order.
    assert ok(js_open(page, second))[1] == b64url_encode(b"m1")
    assert ok(js_open(page, third))[1] == b64url_encode(b"m2")


def test_the_same_faults_give_the_same_codes_in_python_and_in_the_page(page: Any) -> None:
    """Frames the page sealed, faulted, opened by the Python agent; frames the agent sealed,
    faulted the same way, opened by the page: each fault has one code on both sides."""
    agent = _handshake(page)
    from_page = [js_seal(page, ChannelId.TERMINAL, f"terminal {i}".encode()) for i in range(2)]
    from_agent = [agent.seal(ChannelId.TERMINAL, f"agent {i}".encode()) for i in range(2)]

    def faults(frames: list[bytes]) -> list[bytes]:
        zero, one = frames
        flipped = bytearray(zero)
        flipped[12] ^= 0x80
        return [one, bytes(flipped), zero[:20], zero[:-3], bytes([2]) + zero[1:], zero]

    python_codes = [py_code(agent, frame) for frame in faults(from_page)]
    page_codes = [js_open(page, frame).get("code", "opened") for frame in faults(from_agent)]
    expected = [
        "e2e.out_of_order",
        "e2e.tampered",
        "e2e.truncated",
        "e2e.tampered",
        "e2e.tampered",
        "opened",
    ]
    assert python_codes == expected
    assert page_codes == expected
    # And then a replay of what was just opened.
    assert py_code(agent, from_page[0]) == "e2e.replayed"
    assert js_open(page, from_agent[0]) == {"code": "e2e.replayed"}


# -- (c) application messages ------------------------------------------------------------

AT = datetime(2026, 3, 4, 5, 6, 7, 123000, tzinfo=UTC)
SIGNED = SignedDocument(body="eyJ9", signature="A" * 86)


def _samples() -> list[app.AppMessage]:
    entry = app.FileEntry(name="informe ñ.pdf", kind="file", size=12, modified_at=AT, zone="docs")
    return [
        app.ChatMessage(text='hola "tú" \\ \n\t\x01 \u2028 😀', sent_at=AT),
        app.ChatMessage(text="x", sent_at=AT.replace(microsecond=0)),
        app.TerminalOpen(terminal_id=1, cols=80, rows=24),
        app.TerminalResize(terminal_id=2**32 - 1, cols=1000, rows=1),
        app.TerminalExit(terminal_id=1, exit_code=0),
        app.TerminalExit(terminal_id=1, signal=9),
        app.TerminalInput(terminal_id=1, data=b"ls -la\r\xff\x00"),
        app.TerminalOutput(terminal_id=7, data=b"\x1b[31mred\x1b[0m\r\n"),
        app.FilesList(request_id=5, path="/home/ana", reason="the invoice"),
        app.FilesList(request_id=6, path="C:\\Users\\ana"),
        app.FilesListing(
            request_id=5,
            path="/home/ana",
            entries=(entry, app.FileEntry(name="d", kind="directory", size=0)),
            truncated=True,
        ),
        app.FilesListing(request_id=5, path="/"),
        app.FilesDownload(transfer_id=9, path="/var/log/syslog", offset=100),
        app.FilesUpload(transfer_id=10, path="/tmp/x", size=3, sha256="a" * 64, overwrite=True),
        app.FilesReady(transfer_id=10, path="/tmp/x", size=3, offset=0),
        app.FilesDone(transfer_id=10, size=3, sha256="b" * 64),
        app.FilesCancel(transfer_id=10),
        app.FileChunk(transfer_id=10, offset=2**40 + 5, data=b"\x00\x01\x02"),
        app.FilesError(ref=10, code="files.zone_refused", message="la persona dijo que no"),
        app.FilesError(ref=11, code="files.not_found"),
        app.DiagnosticsRequest(request_id=3, reason="slow"),
        app.DiagnosticsReport(
            request_id=3,
            collected_at=AT,
            report={"os": {"name": "Debian", "ram": 8}, "disks": [1, None]},
        ),
        app.DiagnosticsError(ref=3, code="diagnostics.withheld"),
        app.RunbookRun(
            run_id=4, runbook=SIGNED, parameters={"lines": 200, "unit": "ssh", "follow": False}
        ),
        app.RunbookRun(run_id=4, runbook=SIGNED),
        app.RunbookResult(
            run_id=4,
            runbook_id="rb-logs",
            version=2,
            exit_code=None,
            timed_out=True,
            duration_ms=30000,
            stdout="out",
            stderr="err",
            truncated=True,
        ),
        app.RunbookError(ref=4, code="runbook.not_in_grant", message="no"),
        *SCREEN_MESSAGES,
        *INPUT_MESSAGES,
        *CLIPBOARD_MESSAGES,
    ]


def test_every_application_message_is_the_same_bytes_in_python_and_in_the_page(
    page: Any,
) -> None:
    samples = _samples()
    types = {sample.type for sample in samples}
    assert types == set(ok(js(page, "return protocol.APP_TYPES;")))
    encoded = [app.encode_app_message(sample) for sample in samples]
    roundtrip = ok(
        js(
            page,
            """
        return arg.map((text) => {
          const message = protocol.decodeAppMessage(e2e.b64urlDecode(text));
          return [message.type, protocol.channelOf(message.type),
                  e2e.b64urlEncode(protocol.encodeAppMessage(message))];
        });""",
            [b64url_encode(data) for data in encoded],
        )
    )
    for sample, data, (kind, channel, again) in zip(samples, encoded, roundtrip, strict=True):
        assert kind == sample.type
        assert channel == app.CHANNEL_OF[type(sample)]
        assert b64url_decode(again) == data, sample.type


def test_messages_built_in_the_page_are_what_python_encodes(page: Any) -> None:
    """Built as live-session.js builds them: defaults left out, dates as Date objects."""
    built = ok(
        js(
            page,
            """
        const at = new Date(Date.UTC(2026, 2, 4, 5, 6, 7, 123));
        const list = [
          { type: "chat.message", text: "hola ñ", sent_at: at },
          { type: "terminal.open", terminal_id: 1, cols: 80, rows: 24 },
          { type: "terminal.input", terminal_id: 1, data: new TextEncoder().encode("é\\r") },
          { type: "files.list", request_id: 5, path: "/home" },
          { type: "files.download", transfer_id: 6, path: "/a", offset: 0 },
          { type: "files.upload", transfer_id: 7, path: "/b", size: 3, sha256: "c".repeat(64) },
          { type: "files.chunk", transfer_id: 7, offset: 262144, data: new Uint8Array([1, 2]) },
          { type: "files.cancel", transfer_id: 7 },
          { type: "diagnostics.request", request_id: 8 },
          { type: "runbook.run", run_id: 9, runbook: { body: "eyJ9", signature: "A".repeat(86) },
            parameters: { lines: 5, unit: "x", on: true } },
        ];
        return list.map((m) => e2e.b64urlEncode(protocol.encodeAppMessage(m)));""",
        )
    )
    expected = [
        app.ChatMessage(text="hola ñ", sent_at=AT),
        app.TerminalOpen(terminal_id=1, cols=80, rows=24),
        app.TerminalInput(terminal_id=1, data="é\r".encode()),
        app.FilesList(request_id=5, path="/home"),
        app.FilesDownload(transfer_id=6, path="/a"),
        app.FilesUpload(transfer_id=7, path="/b", size=3, sha256="c" * 64),
        app.FileChunk(transfer_id=7, offset=262144, data=b"\x01\x02"),
        app.FilesCancel(transfer_id=7),
        app.DiagnosticsRequest(request_id=8),
        app.RunbookRun(run_id=9, runbook=SIGNED, parameters={"lines": 5, "unit": "x", "on": True}),
    ]
    for text, message in zip(built, expected, strict=True):
        data = b64url_decode(text)
        assert data == app.encode_app_message(message), message.type
        assert app.decode_app_message(data) == message


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\x01\x00",
        b"\x03\x00\x00\x00\x01\x00",
        b"\x03\x00\x00\x00\x01" + (2**53 + 1).to_bytes(8, "big"),
        b"{not json",
        b"[1, 2]",
        b'{"type": 5}',
        b'{"type": "chat.nope"}',
        b'{"type": "chat.message", "text": "x"}',
        b'{"type": "chat.message", "text": "x", "sent_at": "2026-01-01T00:00:00Z", "extra": 1}',
        b'{"type": "files.cancel", "transfer_id": "7"}',
        b'{"type": "files.upload", "transfer_id": 1, "path": "/a", "size": 1, "sha256": "a",'
        b' "overwrite": 1}',
        *INPUT_BAD,
        *CLIPBOARD_BAD,
    ],
)
def test_bad_application_messages_get_the_same_code(page: Any, payload: bytes) -> None:
    try:
        app.decode_app_message(payload)
    except ProtocolError as exc:
        python_code = str(exc.code)
    else:  # pragma: no cover -- every sample is bad
        python_code = "decoded"
    result = js(
        page,
        "return protocol.decodeAppMessage(e2e.b64urlDecode(arg)).type;",
        b64url_encode(payload),
    )
    assert result == {"code": python_code}


def test_base64url_is_canonical_as_in_python(page: Any) -> None:
    for text in ("", "AA", "AAA", "_-8", "AQID"):
        assert ok(js(page, "return e2e.b64urlEncode(e2e.b64urlDecode(arg));", text)) == text
        assert b64url_encode(b64url_decode(text)) == text
    for bad in ("AB", "A", "A=", "A+B/", "AAA="):
        assert js(page, "return e2e.b64urlDecode(arg);", bad) == {"code": "key.bad_encoding"}
    data = bytes(range(256))
    again = ok(js(page, "return e2e.b64urlEncode(e2e.b64urlDecode(arg));", b64url_encode(data)))
    assert again == base64.urlsafe_b64encode(data).decode().rstrip("=")


# -- xterm.js under the CSP --------------------------------------------------------------


def _terminal_colour(chromium: Any, harness: Harness, *, patch: bool) -> tuple[str, str]:
    """The computed colour of xterm's first line, and the CSP directives the page saw blocked
    (its own securitypolicyviolation events, written into #violations)."""
    context = chromium.new_context()
    page = context.new_page()
    page.goto(f"{harness.url}/harness/xterm.html?patch={int(patch)}")
    page.locator("#ready", has_text="ready").wait_for()
    page.locator(".xterm-rows > div", has_text="visible text").wait_for()
    if not patch:  # the violation event is dispatched as a task of its own: wait for it
        page.locator("#violations", has_text="style-src").wait_for()
    colour: str = page.evaluate("""() => {
        const row = [...document.querySelectorAll('.xterm-rows > div')]
          .find((r) => r.textContent.includes('visible text'));
        return getComputedStyle(row.querySelector('span') ?? row).color;
    }""")
    violations: str = page.locator("#violations").inner_text()
    context.close()
    return colour, violations


def test_xterm_renders_visible_text_under_a_nonce_csp(chromium: Any, harness: Harness) -> None:
    colour, violations = _terminal_colour(chromium, harness, patch=True)
    # The theme's foreground (#e8e8e8) reached the text: xterm's <style> elements were applied.
    assert colour == "rgb(232, 232, 232)"
    assert violations == ""


def test_without_the_nonce_patch_the_csp_blocks_xterms_styles(
    chromium: Any, harness: Harness
) -> None:
    """The control: the same page without installStyleNonce loses xterm's colours."""
    colour, violations = _terminal_colour(chromium, harness, patch=False)
    assert colour != "rgb(232, 232, 232)"
    assert "style-src" in violations
