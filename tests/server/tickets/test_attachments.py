"""Ticket attachments: results posted by the technician's client, read by staff and the requester,
stored with size and SHA-256, audited without their content."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from auxilio.server.audit.actions import AuditAction
from auxilio.server.audit.models import AuditEvent
from auxilio.server.settings import Settings, load_settings
from auxilio.server.support_sessions.models import SupportSession
from auxilio.server.tickets.attachment_models import TicketAttachment
from auxilio.server.tickets.attachments import MAX_ATTACHMENT_BYTES
from tests.factories import (
    Person,
    count_rows,
    make_org,
    make_technician,
    make_ticket,
    make_user,
)

REPORT = {"os": {"name": "Linux", "release": "6.8"}, "memory": {"total": 16 * 2**30}}


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    # A body limit above the attachment limit, so that the attachment's own check is the one
    # that answers (with the default 1 MiB body limit the body check answers first, also 413).
    return load_settings(
        data_dir=tmp_path / "data", database_url=database_url, max_body_bytes=4 * 1024 * 1024,
        audit_checkpoint_every=50, audit_checkpoint_seconds=3600,
    )  # fmt: skip


def _body(**overrides: Any) -> dict[str, Any]:
    content = orjson.dumps(REPORT).decode()
    return {"kind": "diagnostics", "name": "diagnostics-20261201T120000Z.json",
            "media_type": "application/json", "content": content, **overrides}  # fmt: skip


async def _attached_events(app: FastAPI) -> list[AuditEvent]:
    async with app.state.sessionmaker() as db:
        rows = await db.execute(
            select(AuditEvent).where(AuditEvent.action == str(AuditAction.TICKET_ATTACHMENT_ADDED))
        )
        return list(rows.scalars())


async def test_a_technician_attaches_a_report_that_staff_and_the_requester_read(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    tech = await make_technician(app, org)
    user = await make_user(app, org)
    ticket_id = await make_ticket(app, user)
    url = f"/api/v1/tickets/{ticket_id}/attachments"
    body = _body()

    posted = await client.post(url, headers=tech.headers, json=body)

    assert posted.status_code == 201, posted.text
    created = posted.json()
    content = body["content"].encode()
    assert (created["kind"], created["size"], created["sha256"]) == (
        "diagnostics", len(content), hashlib.sha256(content).hexdigest()
    )  # fmt: skip
    assert "content" not in created
    for reader in (tech, user):
        listed = (await client.get(url, headers=reader.headers)).json()
        one = await client.get(f"{url}/{created['id']}", headers=reader.headers)
        assert [a["id"] for a in listed] == [created["id"]]
        assert "content" not in listed[0]
        assert one.status_code == 200
        assert orjson.loads(one.json()["content"]) == REPORT
    [event] = await _attached_events(app)
    assert event.details == {
        "number": 1, "attachment_id": created["id"], "kind": "diagnostics",
        "media_type": "application/json", "size": len(content),
        "sha256": created["sha256"], "verified": False, "support_session_id": None,
    }  # fmt: skip


async def test_plain_text_is_kept_as_given(app: FastAPI, client: httpx.AsyncClient) -> None:
    org = await make_org(app)
    tech = await make_technician(app, org)
    ticket_id = await make_ticket(app, await make_user(app, org))
    text = "copied ~/Documents/invoice.pdf to the shared drive\n\x1b[1mdone\x1b[0m\n"

    posted = await client.post(
        f"/api/v1/tickets/{ticket_id}/attachments", headers=tech.headers,
        json=_body(kind="file_note", name="note.txt", media_type="text/plain", content=text),
    )  # fmt: skip
    read = await client.get(
        f"/api/v1/tickets/{ticket_id}/attachments/{posted.json()['id']}", headers=tech.headers
    )

    assert posted.status_code == 201, posted.text
    assert read.json()["content"] == text


async def test_content_over_the_limit_is_refused_and_nothing_is_stored(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    tech = await make_technician(app, org)
    ticket_id = await make_ticket(app, await make_user(app, org))
    # Counted in UTF-8 bytes: fewer characters than the limit, more bytes.
    content = "é" * (MAX_ATTACHMENT_BYTES // 2 + 1)

    response = await client.post(
        f"/api/v1/tickets/{ticket_id}/attachments", headers=tech.headers,
        json=_body(media_type="text/plain", content=content),
    )  # fmt: skip

    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "attachment_too_large"
    assert error["details"] == {"limit": MAX_ATTACHMENT_BYTES, "size": len(content.encode())}
    assert await count_rows(app, TicketAttachment) == 0
    assert await _attached_events(app) == []


@pytest.mark.parametrize(
    ("overrides", "code", "field"),
    [
        ({"kind": "screenshot"}, "validation_failed", "kind"),
        ({"media_type": "application/x-sh"}, "validation_failed", "media_type"),
        ({"content": "not {json"}, "attachment_not_json", None),
        ({"content": "a\x00b", "media_type": "text/plain"}, "validation_failed", "content"),
        ({"name": ""}, "validation_failed", "name"),
    ],
)
async def test_bad_attachments_are_refused_with_a_stable_code(
    app: FastAPI,
    client: httpx.AsyncClient,
    overrides: dict[str, Any],
    code: str,
    field: str | None,
) -> None:
    org = await make_org(app)
    tech = await make_technician(app, org)
    ticket_id = await make_ticket(app, await make_user(app, org))

    response = await client.post(f"/api/v1/tickets/{ticket_id}/attachments",
                                 headers=tech.headers, json=_body(**overrides))  # fmt: skip

    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == code
    if field is not None:
        assert field in {p["loc"][-1] for p in error["details"]["problems"]}
    assert await count_rows(app, TicketAttachment) == 0


async def test_someone_elses_ticket_is_404_for_every_attachment_route(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    home, away = await make_org(app), await make_org(app)
    tech = await make_technician(app, home)
    alice, mallory = await make_user(app, home), await make_user(app, home)
    ticket_id = await make_ticket(app, alice)
    url = f"/api/v1/tickets/{ticket_id}/attachments"
    created = (await client.post(url, headers=tech.headers, json=_body())).json()
    stranger = await make_technician(app, away)

    attempts = [
        await client.get(url, headers=mallory.headers),
        await client.get(f"{url}/{created['id']}", headers=mallory.headers),
        await client.get(url, headers=stranger.headers),
        await client.post(url, headers=stranger.headers, json=_body()),
    ]

    assert [r.status_code for r in attempts] == [404] * 4
    assert {r.json()["error"]["code"] for r in attempts} == {"ticket_not_found"}
    assert await count_rows(app, TicketAttachment) == 1


async def test_the_requester_reads_but_cannot_attach(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    user = await make_user(app, org)
    ticket_id = await make_ticket(app, user)

    response = await client.post(f"/api/v1/tickets/{ticket_id}/attachments",
                                 headers=user.headers, json=_body())  # fmt: skip

    assert response.status_code == 403
    assert await count_rows(app, TicketAttachment) == 0


async def test_an_attachment_of_another_ticket_or_session_is_refused(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    tech = await make_technician(app, org)
    user = await make_user(app, org)
    first, second = await make_ticket(app, user), await make_ticket(app, user)
    created = (await client.post(f"/api/v1/tickets/{first}/attachments", headers=tech.headers,
                                 json=_body())).json()  # fmt: skip

    crossed = await client.get(f"/api/v1/tickets/{second}/attachments/{created['id']}",
                               headers=tech.headers)  # fmt: skip
    unknown_session = await client.post(
        f"/api/v1/tickets/{first}/attachments", headers=tech.headers,
        json=_body(support_session_id=str(uuid.uuid4())),
    )  # fmt: skip

    assert (crossed.status_code, crossed.json()["error"]["code"]) == (404, "attachment_not_found")
    assert unknown_session.status_code == 404
    assert unknown_session.json()["error"]["code"] == "support_session_not_found"
    assert await count_rows(app, TicketAttachment) == 1


async def _support_session(app: FastAPI, ticket_id: uuid.UUID, tech: Person, user: Person) -> str:
    """A support session row on ``ticket_id`` (its life is the support-session tests' subject)."""
    async with app.state.sessionmaker() as db, db.begin():
        row = SupportSession(
            organisation_id=user.user.organisation_id, ticket_id=ticket_id,
            requester_id=user.user.id, ticket_ref="#1", technician_id=tech.user.id,
            mode="attended", state="ended", node_id="node-1", technician_e2e_key="k" * 43,
        )  # fmt: skip
        db.add(row)
        await db.flush()
        return str(row.id)


async def test_a_result_names_a_session_of_its_own_ticket(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    org = await make_org(app)
    tech = await make_technician(app, org)
    user = await make_user(app, org)
    first, second = await make_ticket(app, user), await make_ticket(app, user)
    session_id = await _support_session(app, first, tech, user)

    crossed = await client.post(f"/api/v1/tickets/{second}/attachments", headers=tech.headers,
                                json=_body(support_session_id=session_id))  # fmt: skip
    own = await client.post(f"/api/v1/tickets/{first}/attachments", headers=tech.headers,
                            json=_body(support_session_id=session_id))  # fmt: skip

    assert crossed.status_code == 422
    assert crossed.json()["error"]["code"] == "attachment_session_mismatch"
    assert own.status_code == 201 and own.json()["support_session_id"] == session_id
    [event] = await _attached_events(app)
    assert event.details["support_session_id"] == session_id
