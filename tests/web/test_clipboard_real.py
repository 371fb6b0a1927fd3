"""The clipboard end to end: a real ``auxilio serve`` whose policy lists the ``clipboard`` rule,
a real ``auxilio agent join`` on an Xvfb, and the console's live page in chromium.

The technician asks for chat and the clipboard; the person allows both. Text sent from the
console ("Send clipboard text") is on the person's clipboard (read back by xsel, another program
on their desktop) and in their feed; the person copies text (xsel -ib) and "Get the person's
clipboard" shows it in the console. The session's report on the device counts both transfers
and agrees with the server's.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pexpect
import pytest

pytest.importorskip("Xlib", reason="the screen extra (python-xlib) is not installed")
for module in ("mss", "av", "numpy"):
    pytest.importorskip(module, reason=f"the screen extra ({module}) is not installed")

from auxilio.policy.templates import load_template  # noqa: E402
from tests.agent.screen.conftest import XServer, xvfb_screen  # noqa: E402
from tests.agent.screen.test_clipboard import XselOwner, xsel_read  # noqa: E402
from tests.e2e.conftest import AUXILIO  # noqa: E402

from .conftest import describe  # noqa: E402
from .test_live_session_real import _post, request_in_page  # noqa: E402
from .test_screen_real import WAIT_MS  # noqa: E402

ORG = "clipboard-org"
SENT = "Reinicie la cola: ñ €"  # 21 characters, 25 bytes of UTF-8
COPIED = "Error 0x80070005 al imprimir"  # 28 characters
CHAT_RULE = "  chat:\n"


@pytest.fixture(scope="module")
def clipboard_org(
    live_server: str,
    web_data_dir: Path,
    create_person: Callable[..., Any],
    api_token: Callable[[Any], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """An organisation of its own whose active policy is the default template plus a
    ``clipboard`` rule (no template allows it)."""
    person = create_person("ines@clipboard.example", "end_user", name="Inés Usuaria", org=ORG)
    technician = create_person("teo@clipboard.example", "senior_technician", name="Teo Técnico",
                               org=ORG, skills="software")  # fmt: skip
    admin = create_person("ada@clipboard.example", "admin", name="Ada Admin", org=ORG)
    admin_token = api_token(admin)
    for training in ("privacy", "approved-tools"):
        _post(live_server, f"/users/{technician.id}/trainings", admin_token,
              {"training_id": training, "title": training,
               "completed_at": datetime.now(UTC).isoformat()})  # fmt: skip
    keyed = subprocess.run(
        [*AUXILIO, "admin", "auditor-key", "--org", ORG, "--data-dir", str(web_data_dir),
         "--out", str(tmp_path_factory.mktemp("auditor") / "auditor.pem")],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert keyed.returncode == 0, keyed.stderr + keyed.stdout
    template = load_template("software-company")
    assert CHAT_RULE in template
    document = template.replace(
        CHAT_RULE, "  clipboard:\n    roles: [technician, senior_technician, supervisor]\n"
        + CHAT_RULE, 1,
    )  # fmt: skip
    headers = {"Authorization": f"Bearer {admin_token}"}
    body = {"document": document, "comment": "the clipboard allowed"}
    uploaded = httpx.post(f"{live_server}/api/v1/policies", headers=headers, json=body, timeout=60)
    assert uploaded.status_code == 201, uploaded.text
    number = uploaded.json()["number"]
    activated = httpx.post(f"{live_server}/api/v1/policies/{number}/activate", headers=headers,
                           timeout=60)  # fmt: skip
    assert activated.status_code == 200, activated.text
    return {"person": person, "technician": technician, "token": api_token}


@pytest.fixture
def desktop() -> Iterator[XServer]:
    with xvfb_screen(320, 240) as server:
        yield server


def test_text_goes_both_ways_between_the_console_and_the_persons_clipboard(
    page: Any, login: Callable[..., None], live_server: str, clipboard_org: dict[str, Any],
    desktop: XServer, tmp_path: Path, axe: Callable[[Any], list[Any]],
) -> None:  # fmt: skip
    token = clipboard_org["token"]
    ticket = _post(live_server, "/tickets", token(clipboard_org["person"]),
                   {"title": "The printer says access denied", "category": "software"})  # fmt: skip
    login(page, clipboard_org["technician"])
    page.goto(f"/console/tickets/{ticket['number']}")
    # The request form offers the clipboard: the policy lists it and agents deliver it.
    page.locator("input[name=capabilities][value=clipboard]").wait_for()
    created = request_in_page(page, ticket["id"], ["chat", "clipboard"])
    assert "join_code" in created, created
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"/console/sessions/{created['id']}")
    page.locator("#decisions", has_text="attached").wait_for()
    env = {**os.environ, "COLUMNS": "220", "DISPLAY": desktop.name}
    env.pop("WAYLAND_DISPLAY", None)
    env.pop("XDG_SESSION_TYPE", None)
    agent = pexpect.spawn(
        AUXILIO[0],
        [*AUXILIO[1:], "agent", "join", created["join_code"], "--server", live_server,
         "--state-dir", str(tmp_path / "agent-state"), "--terminal"],
        encoding="utf-8", timeout=60, dimensions=(50, 220), env=env,
    )  # fmt: skip
    owner: XselOwner | None = None
    try:
        asked = []
        for _ in range(2):  # chat, clipboard
            agent.expect(r"Allow ([\w ]+)\? \[y/n\]")
            asked.append(agent.match.group(1).lower())
            agent.sendline("y")
        page.locator("#session-state[data-state=active]").wait_for(timeout=WAIT_MS)
        page.wait_for_function(
            "() => !document.getElementById('clipboard-send').disabled", timeout=WAIT_MS
        )
        violations = axe(page)  # the Clipboard panel, usable
        assert not violations, describe(violations)

        # The console's text lands on the person's clipboard: another program reads it there.
        page.fill("#clipboard-text", SENT)
        page.click("#clipboard-send")
        page.locator("#clipboard-status", has_text="is on the person's clipboard").wait_for(
            timeout=WAIT_MS
        )
        agent.expect(f"The technician put {len(SENT)} characters on your clipboard")
        assert xsel_read(desktop.name) == SENT

        # The person copies text; the console reads it.
        owner = XselOwner(desktop.name, COPIED.encode())
        page.click("#clipboard-get")
        page.locator("#clipboard-status", has_text=f"{len(COPIED)} characters").wait_for(
            timeout=WAIT_MS
        )
        assert page.input_value("#clipboard-content") == COPIED
        agent.expect(rf"The technician read your clipboard \({len(COPIED)} characters\)")

        page.fill("#summary-input", "Read the printer's error from the person's clipboard.")
        page.click("#end-form button")
        page.locator("#session-state[data-state=ended]").wait_for(timeout=WAIT_MS)
        agent.expect("Session report")
        agent.expect("Clipboard: 1 put on the device, 1 read")
        agent.expect("agrees with the report")
        agent.expect(pexpect.EOF)
    finally:
        agent.close()
        if owner is not None:
            owner.stop()
    assert sorted(asked) == ["chat", "clipboard"]
    assert errors == []
    assert page.locator("#session-error").inner_text() == ""
