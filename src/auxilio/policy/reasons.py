"""Every reason the engine can give, by its stable code, with the parameters it carries.

A decision's ``reason`` is an English sentence for the API, the CLI and the audit trail; its
``reason_code`` and ``params`` say the same thing for a page that words it in the reader's
language.  A code never changes meaning once shipped, and its parameters are always the ones
listed here (plain strings and integers, ready for JSON).

A code whose parameters include ``situation`` adds a clause to another reason: ``situation`` is
that reason's code, and the parameters also carry that reason's own (support hours closed, and
what the policy does outside them).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

ReasonParams = Mapping[str, str | int]

# Shared by every outcome without parameters: read-only, so one instance is safe to reuse.
NO_PARAMS: Final[ReasonParams] = MappingProxyType({})

SITUATION: Final = "situation"

REASONS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        # support_session.start
        "roles.session_start_denied": ("role",),
        "staff.mfa_required.unverified": (),
        "staff.training.expired": ("training", "expired_on"),
        "staff.training.missing": ("training",),
        "staff.training.current": ("training",),
        "sessions.ticket_access.assignee": (),
        "sessions.ticket_access.any_technician": (),
        "sessions.ticket_access.senior": ("role",),
        "sessions.ticket_access.assigned_to_other": ("floor",),
        "sessions.ticket_access.unassigned": ("floor",),
        "staff.max_concurrent_sessions.reached": ("running", "limit"),
        "capabilities.none_for_mode": ("role", "mode"),
        "unattended.not_allowed": (),
        "emergency.unattended_locked": (),
        "unattended.device_group_not_approved": ("group",),
        "unattended.ticket_missing": (),
        "unattended.owner_pre_authorisation.missing": (),
        "unattended.owner_pre_authorisation.outside_window": (),
        "unattended.owner_pre_authorisation.present": (),
        "unattended.approval.recorded": (),
        "unattended.approval.required": (),
        "support_hours.holiday": ("date", "holiday"),
        "support_hours.holiday_unnamed": ("date",),
        "support_hours.inside": ("day", "time"),
        "support_hours.outside": ("day", "time", "zone"),
        "support_hours.closed.approval_recorded": (SITUATION,),
        "support_hours.closed.approval_required": (SITUATION,),
        "support_hours.closed.emergency_allowed": (SITUATION,),
        "support_hours.closed.emergency_only": (SITUATION,),
        "consent.session.not_required": (),
        "consent.session.given": (),
        "consent.session.required": (),
        "sessions.granted": ("minutes",),
        # capability.use and external tools
        "capabilities.not_in_catalogue": ("capability",),
        "capabilities.role_allowed": ("role", "capability"),
        "capabilities.role_denied": ("role", "capability"),
        "capabilities.mode_allowed": ("capability", "mode"),
        "capabilities.mode_denied": ("capability", "mode"),
        "capabilities.shell_not_approved": ("shell",),
        "capabilities.runbook_not_approved": ("runbook",),
        "capabilities.direction_not_allowed": ("direction",),
        "capabilities.direction_unstated": (),
        "capabilities.too_large": ("size", "max"),
        "capabilities.ticket_required": ("capability",),
        "personal_data_zones.terminal.denied": (),
        "personal_data_zones.terminal.consent": (),
        "unattended.scope.covered": ("capability",),
        "unattended.scope.not_covered": ("capability",),
        "consent.capability.not_required": ("capability",),
        "consent.capability.given": ("capability",),
        "consent.capability.required": ("capability",),
        "capabilities.granted": ("capability",),
        # file.access (and the paths of a file transfer)
        "personal_data_zones.not_absolute": ("path",),
        "personal_data_zones.exception": (),
        "personal_data_zones.outside": (),
        "personal_data_zones.denied": ("zone",),
        "personal_data_zones.reason_missing": ("zone",),
        "personal_data_zones.consented": ("zone",),
        "personal_data_zones.consent_required": ("zone",),
        "personal_data_zones.follows_consent": ("zone",),
        # session.extend
        "sessions.extension.none": (),
        "sessions.extension.reason_missing": (),
        "sessions.extension.exceeds_max": (),
        "sessions.extension.count_reached": ("count",),
        "sessions.extension.approval_required": ("approver",),
        "sessions.extension.approver_too_junior": ("role", "approver"),
        "sessions.extension.approved": ("role",),
        "sessions.extension.granted": (),
        # emergency.declare
        "emergency.declare.denied": ("role",),
        "emergency.declare.allowed": ("role",),
        # the engine itself and permission checks
        "default.no_rule_allows": (),
        "roles.permission_held": ("role", "permission"),
        "roles.permission_missing": ("role", "permission"),
        "roles.unknown": (),
    }
)


def params_complete(code: str, params: ReasonParams) -> bool:
    """Does ``params`` carry exactly what ``code`` declares (and, for a clause, its situation's)?"""
    declared = REASONS.get(code)
    if declared is None:
        return False
    if SITUATION not in declared:
        return set(params) == set(declared)
    situation = params.get(SITUATION)
    inner = REASONS.get(str(situation))
    if inner is None or SITUATION in inner:
        return False
    return set(params) == {SITUATION, *inner}
