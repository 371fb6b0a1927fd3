"""The review's hostile inputs to the policy and audit routes: each is a 4xx with a stable code,
nothing is stored, and parsing a document never holds the event loop."""

from __future__ import annotations

import threading
import time
from itertools import pairwise
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI

from auxilio.policy import load_template
from auxilio.policy.roles import Role
from auxilio.server.audit.models import AuditEvent
from auxilio.server.policies import parsing, service
from auxilio.server.policies.models import PolicyVersion
from tests.factories import Person, count_rows, make_org, make_user

TOO_BIG = 2**63  # past BIGINT (audit seqs)
INT_TOO_BIG = 2**31  # past INTEGER on PostgreSQL (policy version numbers)
HUGE = 130197073939723386880
BILLION_LAUGHS = "a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n" + "".join(
    f"{b}: &{b} [{','.join([f'*{a}'] * 9)}]\n" for a, b in pairwise("abcdefghi")
)
CONTROL_DOCUMENTS = ["\u0094\u0090\u007f\u0018\u00db", "a: \u0007"]


async def _admin(app: FastAPI) -> Person:
    return await make_user(app, await make_org(app), Role.ADMIN)


async def _stored(app: FastAPI) -> tuple[int, int]:
    return await count_rows(app, PolicyVersion), await count_rows(app, AuditEvent)


@pytest.mark.parametrize("after_seq", [TOO_BIG, HUGE, -1])
async def test_an_audit_page_after_a_seq_no_database_holds_is_refused(
    app: FastAPI, client: httpx.AsyncClient, after_seq: int
) -> None:
    admin = await _admin(app)
    response = await client.get(
        "/api/v1/audit/events", params={"after_seq": after_seq}, headers=admin.headers
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    assert error["details"]["problems"][0]["loc"] == ["query", "after_seq"]


async def test_the_largest_seq_a_database_holds_is_an_empty_page(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    admin = await _admin(app)
    response = await client.get(
        "/api/v1/audit/events", params={"after_seq": TOO_BIG - 1}, headers=admin.headers
    )
    assert response.status_code == 200
    assert response.json()["events"] == []


@pytest.mark.parametrize(
    ("method", "suffix"), [("GET", ""), ("GET", "/diff"), ("POST", "/activate")]
)
@pytest.mark.parametrize("number", [INT_TOO_BIG, TOO_BIG, HUGE, 0])
async def test_a_policy_version_number_no_database_holds_is_refused(
    app: FastAPI, client: httpx.AsyncClient, method: str, suffix: str, number: int
) -> None:
    admin = await _admin(app)
    before = await _stored(app)
    response = await client.request(
        method, f"/api/v1/policies/{number}{suffix}", headers=admin.headers
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    assert error["details"]["problems"][0]["loc"] == ["path", "number"]
    assert await _stored(app) == before


async def test_the_largest_version_number_is_simply_not_found(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    admin = await _admin(app)
    response = await client.get(f"/api/v1/policies/{INT_TOO_BIG - 1}", headers=admin.headers)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("document", CONTROL_DOCUMENTS, ids=["c1-del-can", "bell"])
async def test_a_document_with_control_characters_is_refused_on_every_route(
    app: FastAPI, client: httpx.AsyncClient, document: str
) -> None:
    admin = await _admin(app)
    before = await _stored(app)
    h = admin.headers
    upload = await client.post("/api/v1/policies", json={"document": document}, headers=h)
    explain = await client.post(
        "/api/v1/policies/explain", json={"document": document, "request": {}}, headers=h
    )
    validate = await client.post(
        "/api/v1/policies/validate", json={"document": document}, headers=h
    )
    for response in (upload, explain):
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "policy_invalid"
        [problem] = response.json()["error"]["details"]["errors"]
        assert (problem["line"], problem["code"]) == (1, "policy.control_character")
    assert validate.status_code == 200
    assert validate.json()["valid"] is False
    assert [e["code"] for e in validate.json()["errors"]] == ["policy.control_character"]
    assert await _stored(app) == before


async def test_an_end_user_cannot_send_a_billion_laughs_through_validate(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    end_user = await make_user(app, await make_org(app), Role.END_USER)
    response = await client.post(
        "/api/v1/policies/validate", json={"document": BILLION_LAUGHS}, headers=end_user.headers
    )
    assert response.status_code == 200
    assert response.json()["valid"] is False
    assert response.json()["errors"] == [
        {
            "path": "",
            "line": 1,
            "code": "policy.yaml_alias",
            "message": "YAML anchors and aliases (&a) are not allowed in a policy; "
            "write the value out where it is needed",
        }
    ]


async def test_an_upload_with_aliases_is_refused_and_nothing_is_stored(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    admin = await _admin(app)
    before = await _stored(app)
    document = load_template("school").replace("\nsessions:", "\nsessions: &s", 1)
    response = await client.post(
        "/api/v1/policies", json={"document": document}, headers=admin.headers
    )
    assert response.status_code == 422
    assert [e["code"] for e in response.json()["error"]["details"]["errors"]] == [
        "policy.yaml_alias"
    ]
    assert await _stored(app) == before


async def test_deep_nesting_is_refused_on_explain(app: FastAPI, client: httpx.AsyncClient) -> None:
    admin = await _admin(app)
    document = "a: " + "[" * 40 + "]" * 40 + "\n"
    response = await client.post(
        "/api/v1/policies/explain",
        json={"document": document, "request": {}},
        headers=admin.headers,
    )
    assert response.status_code == 422
    assert [e["code"] for e in response.json()["error"]["details"]["errors"]] == ["policy.too_deep"]


class _BlockedParse:
    """Stands in for the parser: blocks its worker thread until released (for documents that
    contain ``marker``; others parse as usual)."""

    def __init__(self, marker: str = "") -> None:
        self.marker = marker
        self.started = threading.Event()
        self.release = threading.Event()
        self.real = service.validate_document

    def __call__(self, document: str, **kwargs: Any) -> Any:
        if self.marker in document:
            self.started.set()
            self.release.wait(30)
        return self.real(document, **kwargs)


async def test_the_event_loop_serves_other_requests_while_a_document_is_parsed(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    tech = await make_user(app, await make_org(app), Role.TECHNICIAN)
    blocked = _BlockedParse()
    monkeypatch.setattr(service, "validate_document", blocked)
    results: dict[str, httpx.Response] = {}

    async def validate() -> None:
        results["validate"] = await client.post(
            "/api/v1/policies/validate",
            json={"document": load_template("school")},
            headers=tech.headers,
        )

    async with anyio.create_task_group() as tg:
        tg.start_soon(validate)
        await anyio.to_thread.run_sync(blocked.started.wait, 30)
        # The parse is holding its thread; the loop still answers.
        health = await client.get("/healthz")
        assert health.status_code == 200
        assert "validate" not in results
        blocked.release.set()
    assert results["validate"].json()["valid"] is True


async def test_a_caller_who_cannot_get_a_parser_in_time_is_told_to_retry(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    tech = await make_user(app, await make_org(app), Role.TECHNICIAN)
    blocked = _BlockedParse()
    monkeypatch.setattr(service, "validate_document", blocked)
    real_off_loop = parsing.off_loop

    async def impatient(work: Any, *, source: parsing.Source) -> Any:
        return await real_off_loop(work, source=source, wait_seconds=0.05)

    monkeypatch.setattr(service, "off_loop", impatient)
    try:
        response = await client.post(
            "/api/v1/policies/validate",
            json={"document": load_template("school")},
            headers=tech.headers,
        )
    finally:
        blocked.release.set()
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "policy_parser_busy"
    assert response.headers["retry-after"] == "1"


async def test_a_flood_of_documents_cannot_stop_the_active_policy_from_loading(
    app: FastAPI, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    org = await make_org(app)
    admin = await make_user(app, org, Role.ADMIN)
    school = load_template("school")
    uploaded = await client.post(
        "/api/v1/policies", json={"document": school}, headers=admin.headers
    )
    number = uploaded.json()["number"]
    await client.post(f"/api/v1/policies/{number}/activate", headers=admin.headers)
    monkeypatch.setattr(service, "_cache", {})  # as after a restart: the version is parsed again
    blocked = _BlockedParse(marker="# flood")
    monkeypatch.setattr(service, "validate_document", blocked)

    async def flood() -> None:
        await client.post(
            "/api/v1/policies/validate",
            json={"document": school + "# flood\n"},
            headers=admin.headers,
        )

    async with anyio.create_task_group() as tg:
        tg.start_soon(flood)
        await anyio.to_thread.run_sync(blocked.started.wait, 30)
        # The request parser is taken; the stored version has a parser of its own.
        async with app.state.sessionmaker() as db:
            active = await service.get_active_policy(db, organisation_id=org.id)
        assert active.version_label.startswith(f"v{number}:")
        blocked.release.set()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("requested", "P999999999D"),  # timedelta overflowed adding it to the end: a 500
        ("requested", "99999999999999999999w"),
        ("requested", 8.6e13),
        ("current_end_at", "9999-12-31T23:00:00+00:00"),  # end + 2h past year 9999: a 500
    ],
)
async def test_explain_refuses_durations_and_times_no_calendar_holds(
    app: FastAPI, client: httpx.AsyncClient, field: str, value: Any
) -> None:
    tech = await make_user(app, await make_org(app), Role.TECHNICIAN)
    request = {
        "kind": "session.extend",
        "requested": "2h",
        "current_end_at": "2026-01-01T11:00:00+00:00",
        field: value,
    }
    response = await client.post(
        "/api/v1/policies/explain", json={"request": request}, headers=tech.headers
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    assert [p["loc"][-1] for p in error["details"]["problems"]] == [field]


async def test_validate_answers_a_duration_past_twenty_years_as_out_of_range(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    tech = await make_user(app, await make_org(app), Role.TECHNICIAN)
    document = load_template("school").replace(
        "\n  max_duration: ", "\n  max_duration: 99999999999999999999w #", 1
    )
    response = await client.post(
        "/api/v1/policies/validate", json={"document": document}, headers=tech.headers
    )
    assert response.status_code == 200
    assert [(e["path"], e["code"]) for e in response.json()["errors"]] == [
        ("sessions.max_duration", "policy.out_of_range")
    ]


async def test_a_stored_version_is_waited_for_longer_than_a_request_document(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A slow machine once took over the request limit to parse the active version, and a session
    start failed with policy_parser_busy: the same slow parse is refused for a request's document
    and waited for when it is a stored version."""
    monkeypatch.setattr(parsing, "PARSE_TIMEOUT_SECONDS", 0.05)
    monkeypatch.setattr(parsing, "STORED_PARSE_TIMEOUT_SECONDS", 5.0)

    def slow() -> str:
        time.sleep(0.3)
        return "parsed"

    with pytest.raises(parsing.PolicyParserBusy):
        await parsing.off_loop(slow, source=parsing.Source.REQUEST)
    assert await parsing.off_loop(slow, source=parsing.Source.STORED) == "parsed"
