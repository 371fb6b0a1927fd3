"""The console's session pages: what "start a session" offers, the live session page and the
token its script attaches with.

The start form offers what the active policy lists and an agent can deliver; the policy still
decides when the request comes (``POST /api/v1/support-sessions``, made by console.js with the
key it generated), and a refusal comes back with its rule. The live page is the template whose
DOM live-session.js drives (docs/web-client.md), with the ``session-data`` block: the pinned
server key and fingerprint, the session's runbooks; the WS token it asks ``POST /web/ws-token``
for, and the join code it finds in the tab's sessionStorage (the server keeps only its hash).
The device connect page (``/console/devices/{id}/connect``) starts an unattended session with
the same form and script (docs/unattended.md).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.crypto.keys import encode_public_key, fingerprint
from auxilio.policy.roles import Permission
from auxilio.policy.schema import Direction, FileTransferRule, Policy, TerminalRule
from auxilio.protocol.frames import AGENT_CAPABILITIES
from auxilio.protocol.types import Capability
from auxilio.server.api.deps import DbSession
from auxilio.server.context import Actor
from auxilio.server.db.base import utcnow
from auxilio.server.devices import channel, preauth
from auxilio.server.devices.models import Device
from auxilio.server.errors import DeviceNotFound, Forbidden
from auxilio.server.identity import auth
from auxilio.server.identity.models import User
from auxilio.server.policies.service import get_active_policy
from auxilio.server.runbooks import service as runbooks
from auxilio.server.support_sessions import service as sessions
from auxilio.server.support_sessions.models import SupportSession
from auxilio.server.support_sessions.runtime import SupportSessionRuntime
from auxilio.server.tickets.models import Ticket
from auxilio.server.web.pages import CsrfChecked, WebIdentity, register_pages, render, web_require
from auxilio.server.web.policy_messages import reason_text

router = APIRouter(prefix="/console", include_in_schema=False)
ws_router = APIRouter(prefix="/web", include_in_schema=False)

Requester = Annotated[Actor, web_require(Permission.SUPPORT_SESSION_REQUEST)]


def _org(actor: Actor) -> uuid.UUID:
    assert actor.organisation_id is not None  # noqa: S101 -- staff belong to an organisation
    return actor.organisation_id


# ---- the start form --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CapabilityChoice:
    """A capability the start form offers: the policy lists it and agents deliver it."""

    name: str
    roles: tuple[str, ...]
    allowed_for_me: bool  # the technician's role is among the rule's roles (the policy decides)


@dataclass(frozen=True, slots=True)
class StartOptions:
    capabilities: list[CapabilityChoice]
    shells: tuple[str, ...] = ()
    directions: tuple[str, ...] = ()
    runbooks: list[tuple[str, str]] = field(default_factory=list)  # (id, name or "")
    recording: str = "off"
    policy_version: str = ""


async def start_options(db: AsyncSession, actor: Actor) -> StartOptions:
    """What the "start a session" form offers, from the active policy: only capabilities it
    lists that an agent can deliver, the shells it approves, the file directions it allows,
    its approved runbooks (named by the catalogue where it has an approved version)."""
    active = await get_active_policy(db, organisation_id=_org(actor))
    policy: Policy = active.policy
    choices = []
    for capability in Capability:
        rule = policy.capabilities.get(sessions.POLICY_NAMES[capability])
        if capability not in AGENT_CAPABILITIES or rule is None:
            continue
        roles = tuple(str(r) for r in rule.roles)
        choices.append(CapabilityChoice(name=str(capability), roles=roles,
                                        allowed_for_me=str(actor.role) in roles))
    terminal = policy.capabilities.terminal
    files = policy.capabilities.file_transfer
    return StartOptions(
        capabilities=choices,
        shells=terminal.shells if isinstance(terminal, TerminalRule) else (),
        directions=_directions(files),
        runbooks=await _runbook_choices(db, actor, policy),
        recording=str(policy.sessions.recording),
        policy_version=active.version_label,
    )


def _directions(rule: FileTransferRule | None) -> tuple[str, ...]:
    if rule is None:
        return ()
    if rule.direction is Direction.BOTH:
        return ("both", "download", "upload")
    return (str(rule.direction),)


async def _runbook_choices(
    db: AsyncSession, actor: Actor, policy: Policy
) -> list[tuple[str, str]]:
    rule = policy.capabilities.runbooks
    if rule is None:
        return []
    out = []
    for runbook_id in rule.approved:
        row = await runbooks.get_approved(db, organisation_id=_org(actor), runbook_id=runbook_id)
        out.append((runbook_id, row.name if row is not None else ""))
    return out


# ---- the live session ------------------------------------------------------------------------


def _runtime(request: Request) -> SupportSessionRuntime:
    runtime: SupportSessionRuntime = request.app.state.support_sessions
    return runtime


async def _session_runbooks(db: AsyncSession, row: SupportSession) -> list[dict[str, str]]:
    """The runbooks pinned in the session's grant, with their catalogue names."""
    entry = (row.capability_limits or {}).get(str(Capability.RUNBOOKS)) or {}
    pins = (entry.get("limits") or {}).get("runbooks") or []
    out = []
    for pin in pins:
        found = await runbooks.get_version(db, organisation_id=row.organisation_id,
                                           runbook_id=pin["id"], version=int(pin["version"]))
        out.append({"id": pin["id"], "name": found.name if found is not None else pin["id"]})
    return out


def session_decisions(row: SupportSession) -> list[dict[str, Any]]:
    """Every decision the server took for the session, each with its rule: the session's own
    (its effect is not kept, only that a denied session was denied), then each capability's as
    the policy answered the start form's choices (a repeated answer shown once).  A capability's
    decision, like the session's own, keeps its reason's code and parameters (sessions recorded
    before them have none, and show the English reason)."""
    out: list[dict[str, Any]] = []
    if row.decision_rule:
        out.append({"subject": "session",
                    "effect": "deny" if row.state == "denied" else "decided",
                    "rule": row.decision_rule, "reason": row.decision_reason or "",
                    "reason_code": row.decision_reason_code or "",
                    "params": dict(row.decision_params or {})})
    for name, entry in (row.capability_limits or {}).items():
        for decision in entry.get("decisions") or []:
            line = {"subject": name, "effect": str(decision.get("effect", "")),
                    "rule": str(decision.get("rule", "")),
                    "reason": str(decision.get("reason", "")),
                    "reason_code": str(decision.get("reason_code") or ""),
                    "params": dict(decision.get("params") or {})}
            if line not in out:
                out.append(line)
    return out


@router.get("/sessions/{support_session_id}", response_class=HTMLResponse)
async def live_session_page(
    request: Request, support_session_id: uuid.UUID, actor: Requester, db: DbSession
) -> HTMLResponse:
    row = await sessions.get_visible_or_raise(db, support_session_id=support_session_id,
                                              actor=actor)
    ticket = await db.get(Ticket, row.ticket_id)
    public = _runtime(request).signing_key.public_key()
    mine = row.technician_id == actor.id
    data: dict[str, Any] = {
        "support_session_id": str(row.id),
        "join_code": None,  # known only to the page that asked (sessionStorage), see console.js
        "ws_token": None,  # live-session.js asks POST /web/ws-token for one
        "server_public_key": encode_public_key(public),
        "server_fingerprint": fingerprint(public),
        "ticket_id": str(row.ticket_id),
        "runbooks": await _session_runbooks(db, row),
    }
    return render(request, "web/console/session.html", session=row, ticket=ticket, mine=mine,
                  session_data=data, decisions=session_decisions(row),
                  reason_text=reason_text)


WS_TOKEN_KIND = "web_ws"  # noqa: S105 -- a token kind, not a secret
WS_TOKEN_SCOPES = (str(Permission.SUPPORT_SESSION_REQUEST),)


@ws_router.post("/ws-token")
async def ws_token(
    identity: WebIdentity, actor: Requester, db: DbSession, _csrf: CsrfChecked
) -> JSONResponse:
    """A token the live page attaches to ``/ws/technician`` with (the session cookie is
    HttpOnly: script never reads it). It can do only what ``support_session:request`` allows,
    is not a login (no page accepts it), and dies with the browser's login at the latest: the
    relay stops serving a connection whose token expired, so it must not end sooner."""
    login = identity.token
    scopes = [p for p in WS_TOKEN_SCOPES if login.scopes is None or p in login.scopes]
    remaining = login.expires_at - utcnow()
    if not scopes or remaining <= timedelta(seconds=1):
        raise Forbidden(permission=WS_TOKEN_SCOPES[0])
    secret, row = await auth.issue_token(
        db, user=identity.user, kind=WS_TOKEN_KIND, name=f"web-ws:{login.id}", ttl=remaining,
        actor=actor, scopes=scopes, mfa_verified=login.mfa_verified,
    )  # fmt: skip
    return JSONResponse({"token": secret, "expires_at": row.expires_at.isoformat()},
                        headers={"Cache-Control": "no-store"})  # fmt: skip


# ---- connecting to an enrolled device (unattended) -----------------------------------------


OPEN_TICKET_STATUSES = ("new", "open", "pending")


@router.get("/devices/{device_id}/connect", response_class=HTMLResponse)
async def device_connect_page(
    request: Request, device_id: uuid.UUID, actor: Requester, db: DbSession
) -> HTMLResponse:
    """Start an unattended session on an enrolled device: one of its owner's open tickets, and
    capabilities within the owner's pre-authorisation open now (as the device signed it); the
    request itself is console.js's, as on a ticket page (the policy decides then)."""
    device = await db.get(Device, device_id)
    if device is None or device.organisation_id != _org(actor):
        raise DeviceNotFound(device_id=str(device_id))
    now = utcnow()
    open_now = []
    for row in await preauth.live_for_device(db, device.id, now):
        document = preauth.verified(device, row)
        until = document.window.open_until(now) if document is not None else None
        if document is not None and until is not None:
            open_now.append((document, until))
    scope = {str(c) for document, _ in open_now for c in document.scope}
    options = await start_options(db, actor)
    capabilities = [c for c in options.capabilities if c.name in scope]
    tickets = list((await db.execute(
        select(Ticket).where(Ticket.organisation_id == device.organisation_id,
                             Ticket.requester_id == device.owner_id,
                             Ticket.status.in_(OPEN_TICKET_STATUSES))
        .order_by(Ticket.number.desc()).limit(100)
    )).scalars())  # fmt: skip
    owner = await db.get(User, device.owner_id)
    online = await channel.is_online(_runtime(request).hub.bus, device.id)
    return render(request, "web/console/device_connect.html", device=device, owner=owner,
                  online=online, open_now=open_now, tickets=tickets, start=options,
                  capabilities=capabilities,
                  usable=device.revoked_at is None and device.enrolled_at is not None)


register_pages(router)
register_pages(ws_router)
