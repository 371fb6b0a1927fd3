"""The policy editor: the YAML in a text area, its errors at their lines, the diff against the
active version, templates, dry runs (one request explained, or recent decisions replayed), and
saving and activating versions.

Validation, diffs, explanations and replays are the policy services the JSON API uses; the page
only places their results next to the text. htmx posts the text area and swaps in a fragment.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from auxilio.policy import list_templates, load_template
from auxilio.policy.roles import Permission
from auxilio.server.api.deps import DbSession
from auxilio.server.context import Actor
from auxilio.server.db.base import utcnow
from auxilio.server.errors import DomainError
from auxilio.server.policies import pilots, service
from auxilio.server.web.pages import CsrfChecked, render, web_require
from auxilio.server.web.policy_messages import (
    EFFECTS,
    Message,
    document_data,
    message_for,
    reason_text,
)

router = APIRouter(prefix="/admin/policy", include_in_schema=False)

ManagePolicy = Annotated[Actor, web_require(Permission.POLICY_MANAGE)]
Document = Annotated[str, Form(max_length=500_000)]


def lf(document: str) -> str:
    """A form posts a text area's lines ending in CRLF (HTML's rule); the policy is stored as
    typed, with LF, so that versions diff line by line and hash as the file would."""
    return document.replace("\r\n", "\n")


REPLAY_DAYS = (1, 7, 30, 90)
# A request to explain, as the editor first shows it: the most common question.
EXAMPLE_REQUEST = {
    "kind": "support_session.start",
    "mode": "attended",
    "technician_role": "technician",
    "mfa_verified": True,
    "context": {"consented": ["session"]},
}


@dataclass(frozen=True, slots=True)
class LocatedError:
    """One error with the text of its line, so the page can show it beside the source."""

    line: int | None
    column: int | None
    path: str
    code: str
    message: str
    source: str
    # What the page says, in the person's language: a msgid chosen by the code, and its values.
    text: Message


def locate(document: str, errors: list[dict[str, Any]]) -> list[LocatedError]:
    """The validator gives a line; the column is where the offending key starts on it (the
    last part of the error's path), when that key is written there."""
    lines = document.splitlines()
    data = document_data(document)
    located: list[LocatedError] = []
    for error in errors:
        line = error.get("line")
        source = lines[line - 1] if isinstance(line, int) and 0 < line <= len(lines) else ""
        key = str(error.get("path") or "").rsplit(".", 1)[-1]
        found = source.find(key) if key and not key.isdigit() else -1
        located.append(LocatedError(
            line=line, column=found + 1 if found >= 0 else None, path=str(error.get("path", "")),
            code=str(error.get("code", "")), message=str(error.get("message", "")), source=source,
            text=message_for(str(error.get("code", "")), str(error.get("path") or ""), data),
        ))  # fmt: skip
    return located


async def _validate(document: str) -> tuple[list[LocatedError], dict[str, Any]]:
    try:
        policy = await service.parse_document(document)
    except service.PolicyDocumentInvalid as exc:
        return locate(document, exc.details["errors"]), {}
    summary = {
        "name": policy.name,
        "capabilities": sorted(policy.capabilities.model_dump(exclude_none=True)),
        "review_by": policy.review_by,
    }
    return [], summary


async def _active_document(db: DbSession, actor: Actor) -> tuple[str, str]:
    assert actor.organisation_id is not None  # noqa: S101 -- staff belong to an organisation
    version = await service.get_active_version(db, organisation_id=actor.organisation_id)
    if version is None:
        return load_template(service.DEFAULT_TEMPLATE), f"template:{service.DEFAULT_TEMPLATE}"
    return version.document, f"v{version.number}"


async def _editor(
    request: Request,
    db: DbSession,
    actor: Actor,
    *,
    document: str | None = None,
    error: str | None = None,
    errors: list[LocatedError] | None = None,
    status: int = 200,
    pilot_error: str | None = None,
) -> HTMLResponse:
    assert actor.organisation_id is not None  # noqa: S101 -- staff belong to an organisation
    active_document, active_label = await _active_document(db, actor)
    versions = await service.list_versions(db, organisation_id=actor.organisation_id)
    now = utcnow()
    pilot_rows = [
        (pilot, version, pilots.pilot_state(pilot, now))
        for pilot, version in await pilots.list_pilots(db, actor.organisation_id)
    ]
    response = render(
        request, "web/admin/policy.html", document=document or active_document,
        active_label=active_label, versions=list(reversed(versions)), templates=list_templates(),
        example_request=json.dumps(EXAMPLE_REQUEST, indent=2), replay_days=REPLAY_DAYS,
        error=error, errors=errors or [],
        saved=request.query_params.get("saved"), activated=request.query_params.get("activated"),
        pilots=pilot_rows, pilot_error=pilot_error, pilot_notice=request.query_params.get("pilot"),
    )  # fmt: skip
    response.status_code = status
    return response


@router.get("")
async def editor(request: Request, db: DbSession, actor: ManagePolicy) -> HTMLResponse:
    return await _editor(request, db, actor)


@router.post("/validate")
async def validate(
    request: Request, actor: ManagePolicy, _csrf: CsrfChecked, document: Document
) -> HTMLResponse:
    document = lf(document)
    errors, summary = await _validate(document)
    return render(request, "web/admin/_policy_validation.html", errors=errors, summary=summary)


@router.post("/diff")
async def diff(
    request: Request, db: DbSession, actor: ManagePolicy, _csrf: CsrfChecked, document: Document
) -> HTMLResponse:
    document = lf(document)
    active, label = await _active_document(db, actor)
    text = service.diff_documents(active, document, old_name=label, new_name="draft")
    return render(request, "web/admin/_policy_diff.html", diff=diff_lines(text), label=label)


def diff_lines(text: str) -> list[tuple[str, str]]:
    """Each line of a unified diff with its kind, for colouring by class (not by style)."""
    kinds = {"+": "added", "-": "removed", "@": "hunk"}
    out = []
    for line in text.splitlines():
        kind = "file" if line.startswith(("+++", "---")) else kinds.get(line[:1], "context")
        out.append((kind, line))
    return out


@router.get("/template")
async def template(request: Request, actor: ManagePolicy, name: str) -> HTMLResponse:
    """The text area again, holding the chosen template (htmx swaps it in)."""
    if name not in list_templates():
        return HTMLResponse("", status_code=404)
    return render(request, "web/admin/_policy_textarea.html", document=load_template(name))


@router.post("/explain")
async def explain(
    request: Request,
    actor: ManagePolicy,
    _csrf: CsrfChecked,
    document: Document,
    request_json: Annotated[str, Form(max_length=20_000)],
) -> HTMLResponse:
    """A dry run of one request against the draft: the decision and every rule on the way."""
    document = lf(document)
    try:
        data = json.loads(request_json)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        context = {"now": datetime.now(UTC).isoformat(), **data.pop("context", {})}
        policy = await service.parse_document(document, version_label="draft")
        result = service.explain_request(policy, data, context)
    except (ValueError, TypeError, AttributeError):
        return render(request, "web/admin/_policy_explain.html", problem="json")
    except service.PolicyDocumentInvalid as exc:
        return render(request, "web/admin/_policy_validation.html",
                      errors=locate(document, exc.details["errors"]), summary={})  # fmt: skip
    except DomainError as exc:
        return render(request, "web/admin/_policy_explain.html", problem=exc.code,
                      problems=exc.details.get("problems", []))  # fmt: skip
    return render(request, "web/admin/_policy_explain.html", result=result, effects=EFFECTS,
                  reason_text=reason_text)  # fmt: skip


@router.post("/replay")
async def replay(
    request: Request,
    db: DbSession,
    actor: ManagePolicy,
    _csrf: CsrfChecked,
    document: Document,
    days: Annotated[int, Form()] = 7,
) -> HTMLResponse:
    """The recorded decisions of the last ``days`` replayed against the draft."""
    document = lf(document)
    assert actor.organisation_id is not None  # noqa: S101 -- staff belong to an organisation
    since = datetime.now(UTC) - timedelta(days=days if days in REPLAY_DAYS else 7)
    try:
        result = await service.simulate(
            db, organisation_id=actor.organisation_id, draft=document, since=since
        )
    except service.PolicyDocumentInvalid as exc:
        return render(request, "web/admin/_policy_validation.html",
                      errors=locate(document, exc.details["errors"]), summary={})  # fmt: skip
    return render(request, "web/admin/_policy_replay.html", result=result, effects=EFFECTS,
                  reason_text=reason_text)  # fmt: skip


@router.post("/versions", response_model=None)
async def save(
    request: Request,
    db: DbSession,
    actor: ManagePolicy,
    _csrf: CsrfChecked,
    document: Document,
    comment: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    """Store the draft as a new version; only a valid document is stored."""
    document = lf(document)
    assert actor.organisation_id is not None  # noqa: S101 -- staff belong to an organisation
    try:
        version = await service.upload_version(
            db, organisation_id=actor.organisation_id, document=document,
            comment=comment.strip(), actor=actor,
        )  # fmt: skip
    except service.PolicyDocumentInvalid as exc:
        # Nothing was stored: the document is parsed before the version is added.
        errors = locate(document, exc.details["errors"])
        return await _editor(request, db, actor, document=document, errors=errors, status=422)
    return RedirectResponse(f"/admin/policy?saved={version.number}", status_code=303)


@router.post("/versions/{number}/activate")
async def activate(
    number: int, db: DbSession, actor: ManagePolicy, _csrf: CsrfChecked
) -> RedirectResponse:
    assert actor.organisation_id is not None  # noqa: S101 -- staff belong to an organisation
    version = await service.get_version_or_raise(
        db, organisation_id=actor.organisation_id, number=number
    )
    await service.activate_version(db, version=version, actor=actor)
    return RedirectResponse(f"/admin/policy?activated={number}", status_code=303)


@router.get("/versions/{number}")
async def version_view(
    number: int, request: Request, db: DbSession, actor: ManagePolicy
) -> HTMLResponse:
    """One stored version and its diff with the one before it."""
    assert actor.organisation_id is not None  # noqa: S101 -- staff belong to an organisation
    version = await service.get_version_or_raise(
        db, organisation_id=actor.organisation_id, number=number
    )
    text = await service.diff_with_previous(db, version=version)
    return render(request, "web/admin/policy_version.html", version=version,
                  diff=diff_lines(text))  # fmt: skip


# ---- pilots ----------------------------------------------------------------------------------


def _utc_field(value: str) -> datetime | None:
    """A ``datetime-local`` field (``YYYY-MM-DDTHH:MM``), read as UTC, as the form says."""
    if not value.strip():
        return None
    return datetime.fromisoformat(value.strip()).replace(tzinfo=UTC)


@router.post("/pilots", response_model=None)
async def start_pilot(
    request: Request,
    db: DbSession,
    actor: ManagePolicy,
    _csrf: CsrfChecked,
    version_number: Annotated[int, Form(ge=1)],
    device_group: Annotated[str, Form(max_length=200)],
    starts_at: Annotated[str, Form(max_length=40)] = "",
    ends_at: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    """Pilot a stored version on one device group (the API's rules and error codes)."""
    try:
        starts, ends = _utc_field(starts_at), _utc_field(ends_at)
    except ValueError:
        return await _editor(request, db, actor, pilot_error="pilot_period_invalid", status=422)
    try:
        await pilots.start_pilot(
            db, actor, version_number=version_number, device_group=device_group,
            starts_at=starts or utcnow(), ends_at=ends,
        )  # fmt: skip
    except DomainError as exc:
        await db.rollback()
        return await _editor(request, db, actor, pilot_error=exc.code, status=exc.status)
    return RedirectResponse("/admin/policy?pilot=started#pilots", status_code=303)


@router.post("/pilots/{pilot_id}/stop", response_model=None)
async def stop_pilot(
    pilot_id: uuid.UUID, request: Request, db: DbSession, actor: ManagePolicy, _csrf: CsrfChecked
) -> Response:
    try:
        await pilots.stop_pilot(db, actor, pilot_id)
    except DomainError as exc:
        await db.rollback()
        return await _editor(request, db, actor, pilot_error=exc.code, status=exc.status)
    return RedirectResponse("/admin/policy?pilot=stopped#pilots", status_code=303)
