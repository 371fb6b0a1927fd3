"""What the organisation's active policy promises, as data a template can put into plain words.

The portal's policy page is generated from the policy model (and its compiled form, which
resolves what each capability's consent really is): nothing here is written per organisation,
so the page cannot drift from the rules the server enforces. Words live in the template and
in the label tables below (marked with ``N_`` so the catalogue test finds them); values stay
typed (durations, dates, sizes) so the template formats them in the person's locale.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace

from auxilio.policy import CompiledPolicy, Policy
from auxilio.policy.hours_parse import parse_day_spec, parse_window
from auxilio.policy.schema import (
    BUILTIN_CAPABILITIES,
    FileTransferRule,
    RunbooksRule,
    TerminalRule,
)
from auxilio.policy.zones import DEFAULT_ZONES
from auxilio.server.web.pages import N_

CAPABILITY_LABELS = {
    "chat": N_("Chat"),
    "terminal": N_("Terminal (commands on your computer)"),
    "file_transfer": N_("File transfer"),
    "diagnostics": N_("Diagnostics report"),
    "runbooks": N_("Approved scripts (runbooks)"),
    "screen_view": N_("Seeing your screen"),
    "remote_control": N_("Controlling your mouse and keyboard"),
    "clipboard": N_("Your clipboard"),
    "external_tools.rdp": N_("Remote desktop (RDP)"),
    "external_tools.ssh": N_("SSH"),
    "external_tools.vnc": N_("VNC"),
    "external_tools.teamviewer": N_("TeamViewer"),
    "external_tools.anydesk": N_("AnyDesk"),
    "external_tools.remotepc": N_("RemotePC"),
}
ROLE_LABELS = {
    "end_user": N_("end users"),
    "technician": N_("technicians"),
    "senior_technician": N_("senior technicians"),
    "supervisor": N_("supervisors"),
    "admin": N_("administrators"),
    "auditor": N_("auditors"),
}
MODE_LABELS = {
    "attended": N_("with you present"),
    "unattended": N_("unattended (nobody at the device)"),
    "automated": N_("automated"),
    "chat_only": N_("chat only"),
}
METHOD_LABELS = {
    "device_prompt": N_("a question on your device"),
    "web_form": N_("a form in the browser"),
    "written_message": N_("a written message"),
}
DIRECTION_LABELS = {
    "upload": N_("only to your computer"),
    "download": N_("only from your computer"),
    "both": N_("to and from your computer"),
}
ZONE_LABELS = {
    "documents": N_("Documents"),
    "desktop": N_("Desktop"),
    "pictures": N_("Pictures"),
    "downloads": N_("Downloads"),
    "media": N_("Videos and music"),
    "mail": N_("Email"),
    "browser_profiles": N_("Browser profiles (history, passwords)"),
    "cloud_sync": N_("Cloud-synced folders"),
    "credentials": N_("Keys and credentials"),
}
RETENTION_LABELS = {
    "recordings": N_("Session recordings"),
    "chat": N_("Chat messages"),
    "tickets": N_("Tickets"),
    "audit": N_("Audit log"),
}


@dataclass(frozen=True, slots=True)
class HoursRow:
    days: tuple[int, ...]  # 0 = Monday
    windows: tuple[str, ...]  # "08:00-14:00"


@dataclass(frozen=True, slots=True)
class Hours:
    timezone: str
    weekly: tuple[HoursRow, ...]
    holidays: tuple[tuple[dt.date, str], ...]
    outside_hours: str  # deny | require_approval | emergency_only
    applies_to: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CapabilityView:
    name: str
    label: str
    roles: tuple[str, ...]
    modes: tuple[str, ...]
    consent: bool  # the person is asked before it is used
    max_duration: dt.timedelta | None
    shells: tuple[str, ...] = ()
    direction: str | None = None
    max_size: int | None = None
    runbooks: tuple[str, ...] = ()
    pre_authorised: tuple[str, ...] = ()
    approver_roles: tuple[str, ...] = ()
    two_person: bool = False
    max_timeout: dt.timedelta | None = None
    ticket_required: bool = False


@dataclass(frozen=True, slots=True)
class PolicyView:
    name: str
    description: str
    version_label: str
    hours: Hours | None
    capabilities: tuple[CapabilityView, ...]
    never: tuple[str, ...]  # built-in capabilities the policy does not allow at all
    consent_required: bool
    consent_methods: tuple[str, ...]
    consent_timeout: dt.timedelta
    consent_per_capability: bool
    pre_authorise_roles: tuple[str, ...]
    zones: tuple[str, ...]
    zones_on_access: str  # deny | require_consent
    zones_terminal: str  # deny | require_consent
    zone_exceptions: bool
    max_duration: dt.timedelta
    warn_before: dt.timedelta
    idle_timeout: dt.timedelta | None
    extension_max: dt.timedelta | None
    extension_count: int | None
    extension_reason_required: bool
    extension_approver: str | None
    recording: str  # required | optional | off
    notify_user_of_actions: bool
    unattended_groups: tuple[str, ...]
    unattended_owner_window: dt.timedelta | None
    retention: tuple[tuple[str, dt.timedelta], ...]
    data_residency: str | None
    consent_texts: dict[str, str] = field(default_factory=dict)
    summary_to_user: bool = True
    survey_scale: tuple[int, int] | None = None
    survey_delay: dt.timedelta | None = None


def _hours(policy: Policy) -> Hours | None:
    hours = policy.support_hours
    if hours is None:
        return None
    weekly = tuple(
        HoursRow(parse_day_spec(spec), tuple(_window_text(w) for w in windows))
        for spec, windows in hours.weekly.items()
    )
    return Hours(
        timezone=hours.timezone,
        weekly=tuple(sorted(weekly, key=lambda row: row.days)),
        holidays=tuple((h.date, h.name) for h in sorted(hours.holidays, key=lambda h: h.date)),
        outside_hours=str(hours.outside_hours),
        applies_to=tuple(str(m) for m in hours.applies_to),
    )


def _window_text(window: str) -> str:
    start, end = parse_window(window)
    return f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"


def _capability(compiled: CompiledPolicy, name: str) -> CapabilityView:
    rule = compiled.policy.capabilities.get(name)
    cap = compiled.capabilities[name]
    assert rule is not None  # noqa: S101 -- listed() named it
    view = CapabilityView(
        name=name, label=CAPABILITY_LABELS.get(name, name),
        roles=tuple(str(r) for r in rule.roles), modes=tuple(str(m) for m in rule.modes),
        consent=cap.consent is not None, max_duration=rule.max_duration,
        ticket_required=cap.ticket_required and name.startswith("external_tools."),
    )
    if isinstance(rule, TerminalRule):
        view = replace(view, shells=rule.shells)
    if isinstance(rule, FileTransferRule):
        view = replace(view, direction=str(rule.direction), max_size=rule.max_size)
    if isinstance(rule, RunbooksRule):
        view = replace(view, runbooks=rule.approved, pre_authorised=rule.pre_authorised,
                       approver_roles=tuple(str(r) for r in rule.approver_roles),
                       two_person=rule.two_person, max_timeout=rule.max_timeout)  # fmt: skip
    return view


def _zones(policy: Policy) -> tuple[str, ...]:
    config = policy.personal_data_zones
    names = [zone.name for zone in config.zones]
    if config.include_defaults:
        names.extend(DEFAULT_ZONES)
    return tuple(dict.fromkeys(names))


def describe_policy(compiled: CompiledPolicy, *, version_label: str) -> PolicyView:
    """Everything the policy promises an end user, in the order the page tells it."""
    policy = compiled.policy
    listed = policy.capabilities.listed()
    sessions, consent, privacy = policy.sessions, policy.consent, policy.privacy
    extension = sessions.extension
    unattended = policy.unattended
    owner = unattended.owner_pre_authorisation if unattended else None
    survey = policy.post_session.survey
    zones_config = policy.personal_data_zones
    exceptions = zones_config.exceptions
    return PolicyView(
        name=policy.name, description=policy.description, version_label=version_label,
        hours=_hours(policy),
        capabilities=tuple(_capability(compiled, name) for name in listed),
        never=tuple(n for n in BUILTIN_CAPABILITIES if n not in listed),
        consent_required=consent.required, consent_methods=tuple(str(m) for m in consent.methods),
        consent_timeout=consent.timeout, consent_per_capability=consent.scope == "per_capability",
        pre_authorise_roles=tuple(str(r) for r in consent.pre_authorise_roles),
        zones=_zones(policy), zones_on_access=str(zones_config.on_access),
        zones_terminal=str(zones_config.terminal),
        zone_exceptions=bool(exceptions.windows or exceptions.macos or exceptions.linux),
        max_duration=sessions.max_duration, warn_before=sessions.warn_before,
        idle_timeout=sessions.idle_timeout,
        extension_max=extension.max if extension else None,
        extension_count=extension.max_count if extension else None,
        extension_reason_required=bool(extension and extension.reason_required),
        extension_approver=str(extension.approver_role) if extension and extension.approver_role
        else None,
        recording=str(sessions.recording), notify_user_of_actions=sessions.notify_user_of_actions,
        unattended_groups=unattended.allowed_device_groups if unattended else (),
        unattended_owner_window=owner.window if owner and owner.required else None,
        retention=tuple((name, value) for name in RETENTION_LABELS
                        if (value := getattr(privacy.retention, name)) is not None),
        data_residency=privacy.data_residency,
        consent_texts=dict(privacy.consent_text),
        summary_to_user=policy.post_session.summary_to_user,
        survey_scale=survey.scale if survey and survey.enabled else None,
        survey_delay=survey.delay if survey and survey.enabled else None,
    )


def duration_parts(value: dt.timedelta) -> list[tuple[str, int]]:
    """``1h30m`` -> [("hours", 1), ("minutes", 30)]: the template says each with ngettext."""
    remaining = int(value.total_seconds())
    parts: list[tuple[str, int]] = []
    for unit, seconds in (("days", 86_400), ("hours", 3_600), ("minutes", 60), ("seconds", 1)):
        amount, remaining = divmod(remaining, seconds)
        if amount:
            parts.append((unit, amount))
    return parts or [("seconds", 0)]


def size_parts(size: int) -> tuple[float, str]:
    """Bytes as the largest decimal unit that keeps a number of at least 1: (100.0, "MB")."""
    value, unit = float(size), "B"
    for bigger in ("KB", "MB", "GB", "TB"):
        if value < 1000:
            break
        value, unit = value / 1000, bigger
    return value, unit
