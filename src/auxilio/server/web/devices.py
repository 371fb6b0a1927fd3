"""The console's devices: the organisation's devices with their owner's pre-authorisation, and
enrolling and revoking them.

=========================================  ==================  ================================
page                                       permission          what
=========================================  ==================  ================================
GET  /console/devices(?group=&online=1)    device:read_all     the list, with its filters
GET  /console/devices/{id}                 device:read_all     one device: pre-authorisations,
                                                               sessions, automated runs
POST /console/devices/enrol                device:enrol        a token, shown once on the page
POST /console/devices/{id}/revoke          device:revoke       supervisors; ends its sessions
=========================================  ==================  ================================

Online is the bus presence (``devices/channel.py``: some node holds the device's connection).
A pre-authorisation is shown as the device signed it: each stored document is verified with the
device's key before its window is read, and one that does not verify is shown as invalid and
never counts as live. "Connect (unattended)" links to ``/console/devices/{id}/connect`` only
while the device is online and a live pre-authorisation's window covers now.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

from babel.dates import get_day_names
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from auxilio.crypto.errors import CryptoError
from auxilio.crypto.keys import decode_ed25519_public_key
from auxilio.crypto.preauth import PreAuthorisation, verify_pre_authorisation
from auxilio.policy.roles import Permission, Role
from auxilio.protocol.types import SignedDocument
from auxilio.server.api.deps import DbSession
from auxilio.server.automation.models import AutomationRun
from auxilio.server.context import Actor
from auxilio.server.db.base import utcnow
from auxilio.server.devices import enrolment
from auxilio.server.devices.channel import online_devices
from auxilio.server.devices.models import Device, PreAuthorisationRecord
from auxilio.server.devices.routes import announce_revoked
from auxilio.server.errors import DeviceNotFound, DomainError
from auxilio.server.identity.models import User
from auxilio.server.support_sessions.models import SupportSession
from auxilio.server.support_sessions.runtime import SupportSessionRuntime
from auxilio.server.validation import forbidden_character
from auxilio.server.web import i18n
from auxilio.server.web.pages import (
    CsrfChecked,
    allowed,
    flash,
    register_pages,
    render,
    translator,
    web_require,
)

router = APIRouter(prefix="/console/devices", include_in_schema=False)

Staff = Annotated[Actor, web_require(Permission.DEVICE_READ_ALL)]
Enrol = Annotated[Actor, web_require(Permission.DEVICE_ENROL)]
Revoke = Annotated[Actor, web_require(Permission.DEVICE_REVOKE)]

LIST_LIMIT = 200
LAST_SESSIONS = 3


def _org(actor: Actor) -> uuid.UUID:
    assert actor.organisation_id is not None  # noqa: S101 -- staff belong to an organisation
    return actor.organisation_id


# ---- pre-authorisations ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PreAuthView:
    record: PreAuthorisationRecord
    document: PreAuthorisation | None  # None: the stored document does not verify
    state: str  # live | revoked | expired | invalid
    open_now: bool
    next_opening: datetime | None


def read_pre_authorisation(
    record: PreAuthorisationRecord, device: Device, now: datetime
) -> PreAuthView:
    """The record as its signed document says, checked with the device's key."""
    document = None
    try:
        if device.public_key:
            signed = SignedDocument.model_validate(record.document)
            document = verify_pre_authorisation(decode_ed25519_public_key(device.public_key),
                                                signed)  # fmt: skip
            if document.device_id != str(device.id) or document.id != str(record.id):
                document = None
    except (CryptoError, ValidationError):
        document = None
    if document is None:
        return PreAuthView(record, None, "invalid", False, None)
    if record.revoked_at is not None or device.revoked_at is not None:
        return PreAuthView(record, document, "revoked", False, None)
    if document.window.not_after <= now:
        return PreAuthView(record, document, "expired", False, None)
    return PreAuthView(record, document, "live", document.window.covers(now),
                       document.window.next_opening(now))  # fmt: skip


def current_pre_authorisation(views: Iterable[PreAuthView]) -> PreAuthView | None:
    """What a list shows for the device: the live one ending last, else the latest signed."""
    ordered = sorted(views, key=lambda v: v.record.signed_at, reverse=True)
    live = [v for v in ordered if v.state == "live"]
    if live:
        return max(live, key=lambda v: (v.open_now, v.record.not_after))
    return ordered[0] if ordered else None


def window_words(document: PreAuthorisation, locale: str) -> str:
    """"Mon, Tue, Wed 09:00-17:00 (Europe/Madrid)": the window's weekdays in the page's language
    and its daily hours in the window's own zone, as the owner signed them."""
    _ = translator_for(locale)
    window = document.window
    names = get_day_names("abbreviated", locale=locale)
    days = (_("every day") if len(window.weekdays) == 7
            else ", ".join(str(names[d]) for d in sorted(window.weekdays)))  # fmt: skip
    if window.daily_start is not None and window.daily_end is not None:
        hours = f"{window.daily_start:%H:%M}-{window.daily_end:%H:%M}"
    else:
        hours = _("all day")
    return f"{days} {hours} ({window.timezone})"


def translator_for(locale: str) -> Any:
    return i18n.translations(locale).gettext


async def _pre_authorisations(
    db: AsyncSession, devices: list[Device], now: datetime
) -> dict[uuid.UUID, list[PreAuthView]]:
    by_id = {d.id: d for d in devices}
    found: dict[uuid.UUID, list[PreAuthView]] = {d.id: [] for d in devices}
    if not devices:
        return found
    rows = await db.execute(
        select(PreAuthorisationRecord)
        .where(PreAuthorisationRecord.device_id.in_(list(by_id)))
        .order_by(PreAuthorisationRecord.signed_at.desc())
    )
    for record in rows.scalars():
        found[record.device_id].append(read_pre_authorisation(record, by_id[record.device_id], now))
    return found


# ---- sessions and names ----------------------------------------------------------------------


async def _last_sessions(
    db: AsyncSession, device_ids: list[uuid.UUID], per_device: int
) -> dict[uuid.UUID, list[SupportSession]]:
    found: dict[uuid.UUID, list[SupportSession]] = {i: [] for i in device_ids}
    if not device_ids:
        return found
    rank = func.row_number().over(
        partition_by=SupportSession.device_id, order_by=SupportSession.created_at.desc()
    ).label("rank")
    ranked = (select(SupportSession.id, rank)
              .where(SupportSession.device_id.in_(device_ids)).subquery())  # fmt: skip
    rows = await db.execute(
        select(SupportSession).join(ranked, ranked.c.id == SupportSession.id)
        .where(ranked.c.rank <= per_device).order_by(SupportSession.created_at.desc())
    )  # fmt: skip
    for row in rows.scalars():
        assert row.device_id is not None  # noqa: S101 -- selected by it
        found[row.device_id].append(row)
    return found


async def _names(db: AsyncSession, ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = await db.execute(select(User.id, User.display_name).where(User.id.in_(wanted)))
    return {row[0]: row[1] for row in rows}


async def _owners(db: AsyncSession, actor: Actor) -> list[User]:
    """Who may own an enrolled device: the organisation's active end users."""
    rows = await db.execute(select(User).where(
        User.organisation_id == _org(actor), User.is_active.is_(True),
        User.role == str(Role.END_USER),
    ).order_by(User.display_name))  # fmt: skip
    return list(rows.scalars())


def _runtime(request: Request) -> SupportSessionRuntime:
    runtime: SupportSessionRuntime = request.app.state.support_sessions
    return runtime


def server_url(request: Request) -> str:
    public: str | None = request.app.state.settings.public_url
    return (public or str(request.base_url)).rstrip("/")


# ---- the list --------------------------------------------------------------------------------


@dataclass
class Filters:
    group: str | None = None
    online: bool = False


@dataclass
class DeviceRow:
    device: Device
    owner: str
    online: bool
    pre: PreAuthView | None
    sessions: list[SupportSession] = field(default_factory=list)


async def device_rows(
    request: Request, db: AsyncSession, actor: Actor, filters: Filters
) -> tuple[list[DeviceRow], list[str], dict[uuid.UUID, str]]:
    org = _org(actor)
    query = select(Device).where(Device.organisation_id == org)
    if filters.group:
        query = query.where(Device.device_group == filters.group)
    devices = list((await db.execute(
        query.order_by(Device.enrolled_at.desc().nulls_last(), Device.name).limit(LIST_LIMIT)
    )).scalars())  # fmt: skip
    online = await online_devices(_runtime(request).hub.bus, [d.id for d in devices])
    if filters.online:
        devices = [d for d in devices if d.id in online]
    now = utcnow()
    pre = await _pre_authorisations(db, devices, now)
    sessions = await _last_sessions(db, [d.id for d in devices], LAST_SESSIONS)
    names = await _names(db, [d.owner_id for d in devices]
                         + [s.technician_id for rows in sessions.values() for s in rows])
    groups = (await db.execute(
        select(Device.device_group).where(Device.organisation_id == org,
                                          Device.device_group.is_not(None))
        .distinct().order_by(Device.device_group)
    )).scalars()  # fmt: skip
    rows = [DeviceRow(d, names.get(d.owner_id, "?"), d.id in online,
                      current_pre_authorisation(pre[d.id]), sessions[d.id]) for d in devices]
    return rows, [g for g in groups if g], names


async def _list_page(
    request: Request, db: AsyncSession, actor: Actor, filters: Filters,
    issued: enrolment.IssuedToken | None = None, error: DomainError | None = None,
) -> HTMLResponse:  # fmt: skip
    rows, groups, names = await device_rows(request, db, actor, filters)
    may_enrol = allowed(actor, Permission.DEVICE_ENROL)
    return render(
        request, "web/console/devices.html", status_code=error.status if error else 200,
        rows=rows, groups=groups, names=names, filters=filters, may_enrol=may_enrol,
        owners=await _owners(db, actor) if may_enrol else [], issued=issued, error=error,
        server_url=server_url(request), window_words=window_words,
        default_hours=enrolment.DEFAULT_EXPIRY_HOURS, max_hours=enrolment.MAX_EXPIRY_HOURS,
    )  # fmt: skip


@router.get("", response_class=HTMLResponse)
async def devices_page(
    request: Request, actor: Staff, db: DbSession,
    group: Annotated[str | None, Query(max_length=64)] = None,
    online: Annotated[str | None, Query(max_length=8)] = None,
) -> HTMLResponse:  # fmt: skip
    # A hand-edited URL with a control character shows every group (PostgreSQL refuses NUL).
    clean = group if group and forbidden_character(group, multiline=False) is None else None
    filters = Filters(group=clean, online=online in {"1", "on", "true"})
    return await _list_page(request, db, actor, filters)


@router.post("/enrol", response_class=HTMLResponse)
async def enrol_device(
    request: Request, actor: Enrol, db: DbSession, _csrf: CsrfChecked,
    device_group: Annotated[str, Form(max_length=200)] = "",
    owner_id: Annotated[str, Form(max_length=64)] = "",
    label: Annotated[str, Form(max_length=200)] = "",
    expires_in_hours: Annotated[str, Form(max_length=12)] = "",
) -> HTMLResponse:  # fmt: skip
    """A token for the form's group and owner, shown once on the page that answers (never in a
    URL, never again): the person copies the command line from here."""
    try:
        owner = uuid.UUID(owner_id)
    except ValueError:
        owner = uuid.UUID(int=0)  # no such person: the service answers enrolment.owner_invalid
    try:
        hours = int(expires_in_hours) if expires_in_hours.strip() else \
            enrolment.DEFAULT_EXPIRY_HOURS  # fmt: skip
    except ValueError:
        hours = 0  # the service answers enrolment.expiry_invalid
    try:
        async with db.begin_nested():
            issued = await enrolment.create_token(
                db, device_group=device_group, owner_id=owner, label=label,
                expires_in_hours=hours, actor=actor,
            )  # fmt: skip
    except DomainError as exc:
        return await _list_page(request, db, actor, Filters(), error=exc)
    return await _list_page(request, db, actor, Filters(), issued=issued)


# ---- one device ------------------------------------------------------------------------------


async def _device_page(
    request: Request, db: AsyncSession, actor: Actor, device_id: uuid.UUID,
    error: DomainError | None = None,
) -> HTMLResponse:  # fmt: skip
    device = await db.get(Device, device_id)
    if device is None or device.organisation_id != _org(actor):
        raise DeviceNotFound(device_id=str(device_id))
    now = utcnow()
    pre = (await _pre_authorisations(db, [device], now))[device.id]
    sessions = (await _last_sessions(db, [device.id], 50))[device.id]
    runs = list((await db.execute(
        select(AutomationRun).where(AutomationRun.device_id == device.id)
        .order_by(AutomationRun.due_at.desc()).limit(50)
    )).scalars())  # fmt: skip
    names = await _names(db, [device.owner_id, device.revoked_by,
                              *(s.technician_id for s in sessions)])  # fmt: skip
    online = device.id in await online_devices(_runtime(request).hub.bus, [device.id])
    covering = [v for v in pre if v.state == "live" and v.open_now]
    return render(
        request, "web/console/device.html", status_code=error.status if error else 200,
        device=device, pre=pre, sessions=sessions, runs=runs, names=names, online=online,
        may_connect=(online and bool(covering) and device.revoked_at is None
                     and allowed(actor, Permission.SUPPORT_SESSION_REQUEST)),
        may_revoke=device.revoked_at is None and allowed(actor, Permission.DEVICE_REVOKE),
        window_words=window_words, error=error,
    )  # fmt: skip


@router.get("/{device_id}", response_class=HTMLResponse)
async def device_page(
    request: Request, device_id: uuid.UUID, actor: Staff, db: DbSession
) -> HTMLResponse:
    return await _device_page(request, db, actor, device_id)


@router.post("/{device_id}/revoke")
async def revoke_device(
    request: Request, device_id: uuid.UUID, actor: Revoke, db: DbSession, _csrf: CsrfChecked,
    reason: Annotated[str, Form(max_length=20_000)] = "",
) -> Response:  # fmt: skip
    try:
        async with db.begin_nested():
            revoked = await enrolment.revoke_device(db, device_id=device_id, reason=reason,
                                                    actor=actor)  # fmt: skip
    except DeviceNotFound:
        raise
    except DomainError as exc:
        return await _device_page(request, db, actor, device_id, error=exc)
    await db.commit()
    await announce_revoked(_runtime(request), revoked)
    _ = translator(request)
    response = RedirectResponse(f"/console/devices/{device_id}", status_code=303)
    flash(response, request, _("The device is revoked."))
    return response


register_pages(router)
