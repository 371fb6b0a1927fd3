"""The end user's chat-only session in the browser (issue 10): the portal page is the device.

First the device side in WebCrypto (static/js/device-e2e.js) against the Python crypto, on the
harness page (a secure context on 127.0.0.1): Python-signed offers verify and every altered one
is refused with the Python agent's code; the page's receipt, agent.auth answer, e2e.hello and
sealed recording keys verify or open in Python; frames go both ways. Then the whole session in
two browser contexts against a real ``auxilio serve``: a technician starts a chat-only session in
the console, the person connects in the portal, consents with the keyboard and they chat both
ways; a refusal ends the session as refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from auxilio.crypto.grants import Grant, SignedGrant, issue_grant, read_grant
from auxilio.crypto.handshake import Handshake
from auxilio.crypto.keys import b64url_decode, b64url_encode, encode_public_key, fingerprint
from auxilio.crypto.receipts import verify_extension_receipt, verify_receipt
from auxilio.crypto.sealed import open_recording_keys
from auxilio.crypto.signing import DocumentKind, sign_document, verify_agent_challenge
from auxilio.protocol import app
from auxilio.protocol.binary import ChannelId
from auxilio.protocol.frames import E2EConfirm, E2EHello
from auxilio.protocol.types import (
    Capability,
    CapabilityGrant,
    ConsentTerms,
    ExtensionNote,
    ExtensionTerms,
    SignedDocument,
)
from auxilio.server.support_sessions.receipts import receipt_mismatch
from tests.e2e.conftest import AUXILIO
from tests.web.conftest import Person, describe
from tests.web.test_console import JOIN_CODE, open_ticket, record_trainings, tab_to

from .js_harness.server import Harness, serve_harness

playwright = pytest.importorskip("playwright.sync_api")
expect = playwright.expect
Page = playwright.Page

pytestmark = pytest.mark.e2e
ORG = "portalchat"
SID = "ss-chat-1"


# -- the device side against the Python crypto --------------------------------------------------


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    with serve_harness() as served:
        yield served


@pytest.fixture
def device_page(browser: Any, harness: Harness) -> Iterator[Any]:
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{harness.url}/harness/index.html")
    page.locator("#ready", has_text="ready").wait_for()
    page.evaluate(
        """async () => {
            window.device = await import("/static/js/device-e2e.js");
            window.harnessState.identity = await window.device.loadDeviceIdentity(
                "test-" + crypto.randomUUID());
        }"""
    )
    yield page
    context.close()
    assert errors == []


def js(page: Any, body: str, arg: Any = None) -> Any:
    """Run an async function body in the page; errors come back as their code."""
    return page.evaluate(
        "async (arg) => { try { return { ok: await (async () => {" + body + "})() }; }"
        " catch (error) { return { code: error.code ?? String(error) }; } }",
        arg,
    )


def ok(result: dict[str, Any]) -> Any:
    assert "ok" in result, result
    return result["ok"]


def device_key(page: Any) -> Ed25519PublicKey:
    public = ok(js(page, "return harnessState.identity.publicKey;"))
    return Ed25519PublicKey.from_public_bytes(b64url_decode(public))


@dataclass
class Offered:
    signed: SignedGrant
    grant: Grant
    server: Ed25519PrivateKey
    technician: X25519PrivateKey


def chat_offer(
    device: Ed25519PublicKey,
    *,
    capabilities: tuple[Capability, ...] = (Capability.CHAT,),
    issued_at: datetime | None = None,
    answer_in: timedelta = timedelta(minutes=2),
    recorded: bool = False,
    auditor: X25519PrivateKey | None = None,
    extensions: ExtensionTerms | None = None,
) -> Offered:
    server, technician = Ed25519PrivateKey.generate(), X25519PrivateKey.generate()
    now = issued_at or datetime.now(UTC).replace(microsecond=0)
    signed = issue_grant(
        server, support_session_id=SID, organisation_id="org-7",
        organisation_name="Escuela Primaria Benito Juárez", technician_id="tech-42",
        technician_name="Ana López", technician_e2e_key=technician.public_key(),
        device_id="dev-9", device_public_key=device,
        capabilities=[CapabilityGrant(capability=c, expires_at=now + timedelta(hours=1))
                      for c in capabilities],
        policy_version="school-2025.1", issued_at=now, not_after=now + timedelta(hours=1),
        terms=ConsentTerms(legal_text="términos", timeout_seconds=60, answer_by=now + answer_in),
        recorded=recorded, extensions=extensions,
        auditor_public_key=auditor.public_key() if auditor is not None else None,
    )  # fmt: skip
    return Offered(signed, read_grant(server.public_key(), signed), server, technician)


def extension_of(offered: Offered, *, minutes: int = 15, **changes: Any) -> SignedGrant:
    """The grant of an extension as the server signs it (extensions._offer), with ``changes``
    (grant fields, or ``sequence`` / ``previous_nonce`` of its note) made before signing."""
    old = offered.grant
    new_end = old.not_after + timedelta(minutes=minutes)
    note = ExtensionNote(
        sequence=changes.pop("sequence", 1), reason="The update needs a restart",
        previous_nonce=changes.pop("previous_nonce", old.nonce),
        original_not_after=old.not_after, answer_within_seconds=120,
    )  # fmt: skip
    grant = old.model_copy(update={
        "capabilities": tuple(c.model_copy(update={"expires_at": new_end})
                              for c in old.capabilities),
        "issued_at": datetime.now(UTC).replace(microsecond=0), "not_after": new_end,
        "extension": note, "nonce": b64url_encode(os.urandom(16)), **changes,
    })  # fmt: skip
    return sign_document(offered.server, grant.model_dump(mode="json"), kind=DocumentKind.GRANT)


def offer_message(offered: Offered, **extra: Any) -> dict[str, Any]:
    return {"type": "session.offer", "id": "m1", "support_session_id": SID,
            "grant": offered.signed.model_dump(), **extra}  # fmt: skip


VERIFY = """
    const serverKey = await crypto.subtle.importKey(
      "raw", e2e.b64urlDecode(arg.server), { name: "Ed25519" }, false, ["verify"]);
    const grant = await device.verifyOffer(arg.offer, {
      serverKey, devicePublicKey: harnessState.identity.publicKey,
      deviceId: arg.device_id ?? null });
    harnessState.grant = grant;
    return grant;"""


def verify(page: Any, offered: Offered, offer: dict[str, Any], **extra: Any) -> Any:
    server = b64url_encode(offered.server.public_key().public_bytes_raw())
    return js(page, VERIFY, {"server": server, "offer": offer, **extra})


def test_the_page_verifies_a_python_signed_chat_offer(device_page: Any) -> None:
    offered = chat_offer(device_key(device_page))
    grant = ok(verify(device_page, offered, offer_message(offered)))
    assert grant["technician_name"] == "Ana López"
    assert grant["terms"]["timeout_seconds"] == 60
    assert grant["nonce"] == offered.grant.nonce


def test_an_offer_changed_after_signing_is_refused_with_the_agents_code(device_page: Any) -> None:
    offered = chat_offer(device_key(device_page))
    for field, value in (("technician_name", "Mallory"), ("recorded", True),
                         ("not_after", "2099-01-01T00:00:00Z")):  # fmt: skip
        body = json.loads(b64url_decode(offered.signed.body))
        body["payload"][field] = value
        forged = {"body": b64url_encode(json.dumps(body).encode()),
                  "signature": offered.signed.signature}  # fmt: skip
        message = {**offer_message(offered), "grant": forged}
        assert verify(device_page, offered, message) == {"code": "grant.bad_signature"}, field
    body = json.loads(b64url_decode(offered.signed.body))
    body["payload"]["terms"]["timeout_seconds"] = 3600
    forged = {
        "body": b64url_encode(json.dumps(body).encode()),
        "signature": offered.signed.signature,
    }
    message = {**offer_message(offered), "grant": forged}
    assert verify(device_page, offered, message) == {"code": "grant.bad_signature"}


def test_an_offer_signed_by_another_key_or_as_another_kind_is_refused(device_page: Any) -> None:
    offered = chat_offer(device_key(device_page))
    other = Ed25519PrivateKey.generate()
    payload = offered.grant.model_dump(mode="json")
    for signed in (
        sign_document(other, payload, kind=DocumentKind.GRANT),
        sign_document(offered.server, payload, kind=DocumentKind.CONSENT_RECEIPT),
    ):
        message = {**offer_message(offered), "grant": signed.model_dump()}
        assert verify(device_page, offered, message) == {"code": "grant.bad_signature"}


def test_an_offer_for_another_device_session_or_time_is_refused(device_page: Any) -> None:
    mine = device_key(device_page)
    other = chat_offer(Ed25519PrivateKey.generate().public_key())
    assert verify(device_page, other, offer_message(other)) == {"code": "grant.wrong_device"}
    offered = chat_offer(mine)
    assert verify(device_page, offered, offer_message(offered), device_id="dev-1") == {
        "code": "grant.wrong_device"
    }
    assert verify(
        device_page, offered, {**offer_message(offered), "support_session_id": "ss-2"}
    ) == {"code": "grant.mismatch"}
    assert verify(device_page, offered, offer_message(offered, technician_name="x")) == {
        "code": "protocol.invalid_field"
    }
    late = chat_offer(mine, issued_at=datetime.now(UTC) - timedelta(minutes=10))
    assert verify(device_page, late, offer_message(late)) == {"code": "offer.expired"}
    early = chat_offer(mine, issued_at=datetime.now(UTC) + timedelta(minutes=10))
    assert verify(device_page, early, offer_message(early)) == {"code": "grant.not_yet_valid"}
    gone = chat_offer(mine, issued_at=datetime.now(UTC) - timedelta(hours=2))
    assert verify(device_page, gone, offer_message(gone)) == {"code": "grant.expired"}


def test_an_offer_asking_for_more_than_chat_is_never_shown(device_page: Any) -> None:
    offered = chat_offer(device_key(device_page),
                         capabilities=(Capability.CHAT, Capability.TERMINAL))  # fmt: skip
    assert verify(device_page, offered, offer_message(offered)) == {
        "code": "capability.unavailable"
    }


def test_an_offer_is_shown_once(device_page: Any) -> None:
    body = """
        const until = new Date(Date.now() + 60000);
        const first = await device.rememberGrant(arg, { until });
        return [first, await device.rememberGrant(arg, { until })];"""
    assert ok(js(device_page, body, "nonce-" + "a" * 22)) == [True, False]


def test_the_pages_receipt_and_challenge_answer_verify_in_python(device_page: Any) -> None:
    key = device_key(device_page)
    offered = chat_offer(key)
    ok(verify(device_page, offered, offer_message(offered)))
    signed = ok(js(device_page, """
        const { signed } = await device.signConsent(harnessState.identity, harnessState.grant, {
          promptText: "Ana López pide chatear contigo\\nSí", decisions: { chat: "granted" },
          decidedAt: new Date() });
        return signed;"""))  # fmt: skip
    receipt = verify_receipt(key, SignedDocument(**signed))
    assert receipt.granted() == {Capability.CHAT}
    assert receipt.prompt_text == "Ana López pide chatear contigo\nSí"
    assert receipt.grant_nonce == offered.grant.nonce
    now = datetime.now(UTC)
    assert receipt_mismatch(receipt, offered.grant, now - timedelta(seconds=5), now) is None

    challenge = b64url_encode(b"c" * 32)
    signature = ok(js(device_page, """
        return await device.answerChallenge(harnessState.identity,
          { challenge: arg.challenge, serverFingerprint: arg.fp });""",
        {"challenge": challenge, "fp": "SHA256:abcd"}))  # fmt: skip
    verify_agent_challenge(key, signature, challenge=challenge, server_fingerprint="SHA256:abcd")


def test_the_handshake_with_a_python_technician_and_chat_both_ways(device_page: Any) -> None:
    auditor = X25519PrivateKey.generate()
    offered = chat_offer(device_key(device_page), recorded=True, auditor=auditor)
    ok(verify(device_page, offered, offer_message(offered)))
    hello = ok(js(device_page, """
        harnessState.offer = await device.deviceOffer({
          identity: harnessState.identity, grant: harnessState.grant });
        return harnessState.offer.hello;"""))  # fmt: skip
    pending = Handshake.technician_accept(
        E2EHello.model_validate(hello), technician_key=offered.technician, grant=offered.grant
    )
    done = ok(js(device_page, """
        const done = await harnessState.offer.complete(arg);
        harnessState.session = done.session;
        const recording = await device.recordingKeyMessage(harnessState.grant, done.keys);
        const frame = await done.session.seal(e2e.Channel.CHAT, protocol.encodeAppMessage(
          { type: "chat.message", text: "Hola, ¿me oyes?", sent_at: "2026-01-02T03:04:05Z" }));
        return { confirm: done.confirm, recording, frame: e2e.b64urlEncode(frame) };""",
        pending.accept.model_dump(mode="json")))  # fmt: skip
    technician = pending.complete(E2EConfirm.model_validate(done["confirm"]))

    channel, plaintext = technician.open(b64url_decode(done["frame"]))
    message = app.decode_app_message(plaintext)
    assert channel == ChannelId.CHAT
    assert isinstance(message, app.ChatMessage) and message.text == "Hola, ¿me oyes?"

    reply = technician.seal(ChannelId.CHAT, app.encode_app_message(
        app.ChatMessage(text="Sí, te leo", sent_at=datetime.now(UTC))))  # fmt: skip
    back = ok(js(device_page, """
        const { channel, plaintext } = await harnessState.session.open(e2e.b64urlDecode(arg));
        return { channel, message: protocol.decodeAppMessage(plaintext) };""",
        b64url_encode(reply)))  # fmt: skip
    assert back["channel"] == ChannelId.CHAT and back["message"]["text"] == "Sí, te leo"
    replayed = js(device_page, "await harnessState.session.open(e2e.b64urlDecode(arg));",
                  b64url_encode(reply))  # fmt: skip
    assert replayed == {"code": "e2e.replayed"}

    # The recording key: the auditor (only) opens this epoch's two keys, the technician's own.
    recording = done["recording"]
    assert recording["epoch"] == b64url_encode(technician.keys.transcript)
    a2t, t2a = open_recording_keys(auditor, SID, epoch=technician.keys.transcript,
                                   box=b64url_decode(recording["sealed_keys"]))  # fmt: skip
    assert (a2t, t2a) == (technician.keys.agent_to_technician, technician.keys.technician_to_agent)


def test_an_accept_with_another_technician_key_fails_the_handshake(device_page: Any) -> None:
    offered = chat_offer(device_key(device_page))
    ok(verify(device_page, offered, offer_message(offered)))
    hello = ok(js(device_page, """
        harnessState.offer = await device.deviceOffer({
          identity: harnessState.identity, grant: harnessState.grant });
        return harnessState.offer.hello;"""))  # fmt: skip
    pending = Handshake.technician_accept(
        E2EHello.model_validate(hello), technician_key=offered.technician, grant=offered.grant
    )
    swapped = {
        **pending.accept.model_dump(mode="json"),
        "technician_ephemeral_key": encode_public_key(X25519PrivateKey.generate().public_key()),
    }
    assert js(device_page, "await harnessState.offer.complete(arg);", swapped) == {
        "code": "e2e.handshake_failed"
    }
    wrong = {**pending.accept.model_dump(mode="json"),
             "confirmation": b64url_encode(bytes(60))}  # fmt: skip
    assert js(device_page, "await harnessState.offer.complete(arg);", wrong) == {
        "code": "e2e.key_confirmation_failed"
    }


EXTEND = """
    const serverKey = await crypto.subtle.importKey(
      "raw", e2e.b64urlDecode(arg.server), { name: "Ed25519" }, false, ["verify"]);
    const grant = await device.verifyExtension(harnessState.grant, arg.signed, {
      serverKey, devicePublicKey: harnessState.identity.publicKey });
    const receipt = await device.signExtension(harnessState.identity, grant, {
      decision: "granted", decidedAt: new Date() });
    return { not_after: grant.not_after, receipt };"""


def test_an_extension_is_checked_like_the_agent_checks_it(device_page: Any) -> None:
    key = device_key(device_page)
    terms = ExtensionTerms(max_count=1, max_total_seconds=1800)
    offered = chat_offer(key, extensions=terms)
    ok(verify(device_page, offered, offer_message(offered)))
    server = b64url_encode(offered.server.public_key().public_bytes_raw())

    def extend(signed: SignedGrant | None) -> Any:
        value = signed.model_dump() if signed is not None else None
        return js(device_page, EXTEND, {"server": server, "signed": value})

    done = ok(extend(extension_of(offered)))
    receipt = verify_extension_receipt(key, SignedDocument(**done["receipt"]))
    assert receipt.decision == "granted"
    assert receipt.new_not_after == offered.grant.not_after + timedelta(minutes=15)
    assert receipt.reason_sha256 == hashlib.sha256(b"The update needs a restart").hexdigest()

    assert extend(None) == {"code": "grant.missing"}
    assert extend(extension_of(offered, minutes=45)) == {"code": "extension.beyond_limit"}
    assert extend(extension_of(offered, sequence=2)) == {"code": "grant.mismatch"}
    assert extend(extension_of(offered, previous_nonce="x" * 22)) == {"code": "grant.mismatch"}
    assert extend(extension_of(offered, recorded=True)) == {"code": "grant.mismatch"}
    assert extend(extension_of(offered, minutes=-5)) == {"code": "grant.mismatch"}
    wider = offered.grant.terms.model_copy(update={"timeout_seconds": 3600})
    assert extend(extension_of(offered, terms=wider)) == {"code": "grant.mismatch"}
    foreign = sign_document(Ed25519PrivateKey.generate(),
                            json.loads(b64url_decode(extension_of(offered).body))["payload"],
                            kind=DocumentKind.GRANT)  # fmt: skip
    assert extend(foreign) == {"code": "grant.bad_signature"}
    no_room = chat_offer(key)  # the policy allows no extension
    ok(verify(device_page, no_room, offer_message(no_room)))
    server = b64url_encode(no_room.server.public_key().public_bytes_raw())
    assert extend(extension_of(no_room)) == {"code": "extension.beyond_limit"}


# -- the whole session against a real server ----------------------------------------------------


@dataclass
class ChatOrg:
    person: Person
    technician: Person
    token: str  # the person's, to open tickets
    admin_token: str  # to change the organisation's policy for one test


@pytest.fixture(scope="module")
def chat_org(
    live_server: str,
    web_data_dir: Path,
    create_person: Callable[..., Person],
    api_token: Callable[[Person], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> ChatOrg:
    """An organisation of its own: the default policy records sessions (the auditor key) and
    wants the technician's trainings."""
    person = create_person("rosa@portalchat.example", "end_user", name="Rosa Martín", org=ORG)
    technician = create_person("tomas@portalchat.example", "senior_technician",
                               name="Tomás Chat", org=ORG, skills="software")  # fmt: skip
    admin = create_person("ines@portalchat.example", "admin", name="Inés Admin", org=ORG)
    admin_token = api_token(admin)
    record_trainings(live_server, admin_token, technician)
    keyed = subprocess.run(
        [*AUXILIO, "admin", "auditor-key", "--org", ORG, "--data-dir", str(web_data_dir),
         "--out", str(tmp_path_factory.mktemp("auditor") / "auditor.pem")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert keyed.returncode == 0, keyed.stderr + keyed.stdout
    return ChatOrg(person=person, technician=technician, token=api_token(person),
                   admin_token=admin_token)


def start_chat_only(console: Any, live_server: str, org: ChatOrg, title: str) -> str:
    """The technician starts a chat-only session on a new ticket of the person's, opens the live
    page, and reads out the code."""
    ticket = open_ticket(live_server, org.token, title, "software", "normal")
    console.goto(f"/console/tickets/{ticket['number']}")
    console.get_by_label("Chat only, in the person's browser").check()
    console.get_by_role("button", name="Start the session").click()
    expect(console.locator("#start-join-code")).to_have_text(JOIN_CODE)
    code: str = console.locator("#start-join-code").inner_text()
    console.get_by_role("link", name="Open the live session").click()
    expect(console.locator("#session-state")).to_contain_text("Waiting for the person to join")
    return code


def open_portal_chat(portal: Any, code: str) -> None:
    """The person opens the chat page with the code and connects, by keyboard."""
    portal.goto(f"/portal/chat?code={code}")
    expect(portal.locator("#chat-join-code")).to_have_value(code)
    tab_to(portal, "#chat-join-button")
    portal.keyboard.press("Enter")
    expect(portal.locator("#consent")).to_be_visible(timeout=30_000)


def test_the_person_chats_with_the_technician_from_the_portal(
    new_page: Callable[..., Any],
    api_token: Callable[[Person], str],
    chat_org: ChatOrg,
    live_server: str,
    login: Callable[..., None],
    axe: Callable[[Any], list[Any]],
    screenshot: Callable[..., Any],
) -> None:
    console = new_page()
    login(console, chat_org.technician)
    code = start_chat_only(console, live_server, chat_org, "Help me over chat, please")

    portal = new_page()
    errors: list[str] = []
    portal.on("pageerror", lambda error: errors.append(str(error)))
    login(portal, chat_org.person)
    open_portal_chat(portal, code)
    prompt = portal.get_by_test_id("consent-prompt")
    expect(prompt).to_contain_text("Tomás Chat (portalchat)")
    expect(prompt).to_contain_text("it counts as no after")
    expect(portal.locator("#consent-countdown")).to_contain_text("s left to answer")
    expect(console.locator("#session-state")).to_contain_text("Waiting for the person's consent")
    violations = axe(portal)
    assert not violations, describe(violations)

    # Keyboard only: the heading has the focus; Tab reaches Allow, Enter answers.
    tab_to(portal, "#consent-allow")
    portal.keyboard.press("Enter")
    expect(portal.locator("#chat-state")).to_have_text("Chat open, end-to-end encrypted.",
                                                       timeout=30_000)  # fmt: skip
    expect(console.locator("#session-state")).to_have_text("Active, end-to-end encrypted",
                                                           timeout=30_000)  # fmt: skip
    expect(portal.locator("#consent-receipt")).to_be_visible()
    expect(portal.locator("#time-left")).to_have_text(re.compile(r"^\d+ min \d+ s$"))

    console.get_by_label("Message").fill("Hello Rosa, what is wrong?")
    console.get_by_label("Message").press("Enter")
    expect(portal.locator("#chat-log")).to_contain_text("Tomás Chat: Hello Rosa, what is wrong?")

    tab_to(portal, "#chat-input")
    portal.keyboard.type("My mail does not sync <b>since</b> Monday")
    portal.keyboard.press("Enter")
    expect(console.locator("#chat-log")).to_contain_text(
        "My mail does not sync <b>since</b> Monday"
    )
    expect(portal.locator("#chat-log")).to_contain_text("You: My mail does not sync <b>since</b>")
    expect(portal.locator("#chat-log b")).to_have_count(0)  # text, never markup
    violations = axe(portal)
    assert not violations, describe(violations)
    screenshot(portal, "portal-chat")

    # More time: the technician asks, an approver agrees, the person answers in the page.
    sid = console.url.rsplit("/", 1)[1]
    bearer = {"Authorization": f"Bearer {api_token(chat_org.technician)}"}
    asked = httpx.post(f"{live_server}/api/v1/support-sessions/{sid}/extensions",
                       json={"minutes": 15, "reason": "The update needs a restart"},
                       headers=bearer, timeout=60)  # fmt: skip
    assert asked.status_code == 202, asked.text  # the policy wants a senior technician's yes
    approved = httpx.post(
        f"{live_server}/api/v1/support-sessions/{sid}/extensions/{asked.json()['id']}/approve",
        headers=bearer, timeout=60,
    )  # fmt: skip
    assert approved.status_code == 200, approved.text
    expect(portal.locator("#extension")).to_be_visible(timeout=20_000)
    expect(portal.locator("#extension-reason")).to_have_text("Reason: The update needs a restart")
    expect(portal.locator("#extension-question")).to_contain_text("Tomás Chat asks for more time")
    tab_to(portal, "#extension-allow")
    portal.keyboard.press("Enter")
    expect(portal.locator("#chat-events")).to_contain_text("The session now ends at")
    expect(console.locator("#decisions")).to_contain_text("Extension approved by end_user")
    expect(portal.locator("#time-left")).to_have_text(re.compile(r"^7[0-4] min \d+ s$"))

    # The person stops the chat: the technician is told, neither side can write any more.
    tab_to(portal, "#revoke-chat")
    portal.keyboard.press("Enter")
    expect(portal.locator("#chat-events")).to_contain_text("You stopped the chat.")
    expect(portal.locator("#chat-input")).to_be_disabled()
    expect(console.locator("#decisions")).to_contain_text(
        "chat revoked by end_user: revoked by the person on the device"
    )

    # The person ends it; both pages show the end, the page the server-signed report.
    portal.get_by_role("button", name="End the session").click()
    expect(portal.locator("#chat-state")).to_have_text("The session has ended.")
    expect(console.locator("#session-state")).to_have_text("Finished (user_ended)",
                                                           timeout=20_000)  # fmt: skip
    report = portal.get_by_test_id("chat-report")
    expect(report).to_contain_text("Tomás Chat (portalchat)", timeout=20_000)
    expect(report.locator("dt", has_text="Capabilities used").locator(
        "xpath=following-sibling::dd[1]")).to_have_text("chat")  # fmt: skip
    expect(report.locator("dt", has_text="Ended by").locator(
        "xpath=following-sibling::dd[1]")).to_have_text("end_user: user_ended")  # fmt: skip
    expect(portal.locator("#chat-input")).to_be_disabled()
    assert errors == []
    # The device key stays in the page's origin, in IndexedDB, not extractable.
    key = portal.evaluate(
        """async (origin) => {
            const { loadDeviceIdentity } = await import("/static/js/device-e2e.js");
            const id = await loadDeviceIdentity(origin);
            return { extractable: id.privateKey.extractable,
                     algorithm: id.privateKey.algorithm.name, device: id.deviceId !== null };
        }""",
        live_server,
    )
    assert key == {"extractable": False, "algorithm": "Ed25519", "device": True}


def test_the_person_refuses_and_nothing_is_shared(
    new_page: Callable[..., Any],
    chat_org: ChatOrg,
    live_server: str,
    login: Callable[..., None],
) -> None:
    console = new_page()
    login(console, chat_org.technician)
    code = start_chat_only(console, live_server, chat_org, "Maybe a chat later")
    portal = new_page()
    login(portal, chat_org.person)
    open_portal_chat(portal, code)
    tab_to(portal, "#consent-refuse")
    portal.keyboard.press("Enter")
    expect(portal.locator("#chat-state")).to_have_text("You refused: nothing was shared.")
    expect(console.locator("#session-state")).to_have_text("Finished (consent_refused)",
                                                           timeout=20_000)  # fmt: skip
    expect(portal.locator("#chat-panel")).to_be_hidden()
    expect(portal.get_by_test_id("chat-report")).to_contain_text("rejected", timeout=20_000)


QUIET_SECONDS = 8  # the consent timeout of the policy the silence test activates


@pytest.fixture
def quick_consent(chat_org: ChatOrg, live_server: str) -> Iterator[None]:
    """The organisation's policy with chat consent asked for and a timeout of QUIET_SECONDS (the
    default template asks for none on chat, and the session then waits the default 60 s); the
    version that was active before is active again afterwards."""
    headers = {"Authorization": f"Bearer {chat_org.admin_token}"}
    api = f"{live_server}/api/v1/policies"
    before = httpx.get(f"{api}/active", headers=headers, timeout=60)
    assert before.status_code == 200, before.text
    document = before.json()["document"]
    rule = "    chat: {required: false}\n"
    assert rule in document
    quick = document.replace(rule, f"    chat: {{required: true, timeout: {QUIET_SECONDS}s}}\n")

    def activate(text: str, comment: str) -> None:
        uploaded = httpx.post(api, headers=headers, json={"document": text, "comment": comment},
                              timeout=60)  # fmt: skip
        assert uploaded.status_code == 201, uploaded.text
        done = httpx.post(f"{api}/{uploaded.json()['number']}/activate", headers=headers,
                          timeout=60)  # fmt: skip
        assert done.status_code == 200, done.text

    activate(quick, "chat consent asked for, a short timeout")
    try:
        yield
    finally:
        activate(document, "back to the version before")


def test_silence_refuses_at_the_signed_timeout(
    new_page: Callable[..., Any], chat_org: ChatOrg, live_server: str, login: Callable[..., None],
    quick_consent: None,
) -> None:  # fmt: skip
    """Nobody answers: at the grant's timeout (the policy's QUIET_SECONDS) the page answers
    timed_out itself, and the server ends the session as not answered, never as consented."""
    console = new_page()
    login(console, chat_org.technician)
    code = start_chat_only(console, live_server, chat_org, "Nobody is at the computer")
    portal = new_page()
    login(portal, chat_org.person)
    open_portal_chat(portal, code)
    expect(portal.get_by_test_id("consent-prompt")).to_contain_text(
        f"it counts as no after {QUIET_SECONDS} seconds"
    )
    expect(portal.locator("#chat-state")).to_have_text(
        "You did not answer in time, which counts as no: nothing was shared.", timeout=60_000
    )
    expect(console.locator("#session-state")).to_have_text(
        "Finished (consent_timed_out)", timeout=30_000
    )
    expect(portal.locator("#consent")).to_be_hidden()
    expect(portal.locator("#chat-panel")).to_be_hidden()


def test_a_code_that_is_not_one_is_refused_with_its_code(
    new_page: Callable[..., Any],
    chat_org: ChatOrg,
    login: Callable[..., None],
) -> None:
    portal = new_page()
    login(portal, chat_org.person)
    portal.goto("/portal/chat?code=not-a-code")
    expect(portal.locator("#chat-join-code-error")).to_contain_text(
        "does not look like a join code"
    )
    portal.goto("/portal/chat")
    portal.get_by_label("Join code").fill("ZZZ-ZZZ-ZZZ")
    portal.get_by_role("button", name="Connect").click()
    expect(portal.locator("#chat-error")).to_contain_text("join_code.invalid", timeout=20_000)
    expect(portal.locator("#chat-join-button")).to_be_enabled()


def test_every_text_of_the_script_is_given_by_the_page(
    new_page: Callable[..., Any], chat_org: ChatOrg, login: Callable[..., None]
) -> None:
    portal = new_page()
    login(portal, chat_org.person)
    portal.get_by_role("button", name="Español").click()
    portal.wait_for_load_state()
    portal.goto("/portal/chat")
    texts = json.loads(portal.locator("#chat-texts").text_content() or "{}")
    script = portal.evaluate(
        "async () => Object.keys((await import('/static/js/device-chat.js')).TEXTS)"
    )
    assert sorted(texts) == sorted(script)
    assert texts["state.active"] == "Chat abierto, cifrado de extremo a extremo."
    expect(portal.locator("#chat-state")).to_have_text("Sin conexión.")


def proxy_agent_socket(page: Any, rewrite: Callable[[dict[str, Any]], None]) -> None:
    """A stand-in for a proxy between the page and the server: every text frame from the server
    goes through ``rewrite`` (which may change it in place) before the page gets it."""

    def handle(route: Any) -> None:
        server = route.connect_to_server()
        route.on_message(server.send)

        def to_page(message: str | bytes) -> None:
            if isinstance(message, str):
                data = json.loads(message)
                rewrite(data)
                message = json.dumps(data)
            route.send(message)

        server.on_message(to_page)

    page.route_web_socket(re.compile(r".*/ws/agent$"), handle)


def test_a_server_presenting_another_key_than_the_page_names_is_refused(
    new_page: Callable[..., Any], chat_org: ChatOrg, live_server: str, login: Callable[..., None]
) -> None:
    """The page pins the key it was served with: a server.hello presenting another fingerprint
    is refused before the code is sent (the agent's server.key_mismatch)."""
    other = fingerprint(Ed25519PrivateKey.generate().public_key())
    console = new_page()
    login(console, chat_org.technician)
    code = start_chat_only(console, live_server, chat_org, "A chat through a stranger")
    portal = new_page()
    login(portal, chat_org.person)

    def swap_key(message: dict[str, Any]) -> None:
        if message["type"] == "server.hello":
            message["server_fingerprint"] = other

    proxy_agent_socket(portal, swap_key)
    portal.goto(f"/portal/chat?code={code}")
    portal.get_by_role("button", name="Connect").click()
    expect(portal.locator("#chat-error")).to_contain_text("server.key_mismatch", timeout=20_000)
    expect(portal.locator("#consent")).to_be_hidden()
    # The code was never sent: the session still waits for a device.
    expect(console.locator("#session-state")).to_contain_text("Waiting for the person to join")


def test_an_offer_altered_on_the_way_is_never_shown_and_ends_the_session(
    new_page: Callable[..., Any], chat_org: ChatOrg, live_server: str, login: Callable[..., None]
) -> None:
    """A proxy rewrites the technician's name inside the signed grant: the page refuses it with
    the agent's grant.bad_signature, never shows the question, and ends the session."""
    console = new_page()
    login(console, chat_org.technician)
    code = start_chat_only(console, live_server, chat_org, "A chat with a forged name")
    portal = new_page()
    login(portal, chat_org.person)

    def forge(message: dict[str, Any]) -> None:
        if message["type"] == "session.offer":
            body = json.loads(b64url_decode(message["grant"]["body"]))
            body["payload"]["technician_name"] = "Your bank"
            message["grant"]["body"] = b64url_encode(
                json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
            )

    proxy_agent_socket(portal, forge)
    portal.goto(f"/portal/chat?code={code}")
    portal.get_by_role("button", name="Connect").click()
    expect(portal.locator("#chat-error")).to_contain_text("grant.bad_signature", timeout=20_000)
    expect(portal.locator("#consent")).to_be_hidden()
    expect(portal.get_by_text("Your bank")).to_have_count(0)
    expect(console.locator("#session-state")).to_have_text(
        "Finished (protocol_error)", timeout=20_000
    )


def test_the_join_page_leads_to_the_chat_with_the_code(
    new_page: Callable[..., Any], chat_org: ChatOrg, login: Callable[..., None]
) -> None:
    portal = new_page()
    login(portal, chat_org.person)
    portal.goto("/join/ACD-EFH-JKM")
    portal.get_by_role("link", name="Chat in the browser").click()
    expect(portal).to_have_url(re.compile(r"/portal/chat\?code=ACD-EFH-JKM$"))
    expect(portal.get_by_label("Join code")).to_have_value("ACD-EFH-JKM")
