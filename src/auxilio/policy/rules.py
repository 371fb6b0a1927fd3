"""The rules of each request kind, as generators of :class:`RuleOutcome` in evaluation order.

Each generator yields every rule it considers: ``effect=None`` when the rule has no objection,
an effect when it decides something.  A path that should succeed ends with an ALLOW carrying the
obligations; without one the engine denies by default.  The engine stops reading at the first
DENY when it only needs the decision, and reads everything for ``explain``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal, Protocol

from auxilio.policy.compiled import CompiledCapability, CompiledPolicy
from auxilio.policy.decision import Effect, Obligations, RuleOutcome
from auxilio.policy.reasons import NO_PARAMS, SITUATION, ReasonParams
from auxilio.policy.requests import (
    AccessFile,
    DeclareEmergency,
    EvaluationContext,
    ExtendSession,
    StartSupportSession,
)
from auxilio.policy.roles import Permission, Role, role_has_permission
from auxilio.policy.schema import (
    OnZoneAccess,
    Platform,
    SessionMode,
    TerminalWithZones,
    TicketAccess,
)
from auxilio.policy.zones import normalise_path


class CapabilityAsk(Protocol):
    """What the capability rules read: a ``UseCapability``, or the engine's lighter view of an
    external tool as a catalogue entry (no pydantic model built per decision)."""

    @property
    def capability(self) -> str: ...
    @property
    def technician_role(self) -> Role: ...
    @property
    def mode(self) -> SessionMode: ...
    @property
    def platform(self) -> Platform | None: ...
    @property
    def path(self) -> str | None: ...
    @property
    def direction(self) -> Literal["upload", "download"] | None: ...
    @property
    def size(self) -> int | None: ...
    @property
    def runbook_id(self) -> str | None: ...
    @property
    def terminal_shell(self) -> str | None: ...
    @property
    def ticket_id(self) -> str | None: ...
    @property
    def reason(self) -> str: ...


Outcomes = Iterator[RuleOutcome]

ALLOW, DENY = Effect.ALLOW, Effect.DENY
CONSENT, APPROVAL = Effect.REQUIRE_CONSENT, Effect.REQUIRE_APPROVAL

# Who outranks whom when an approval names a role; auditors observe and never approve.
_RANK = {
    Role.END_USER: 0,
    Role.TECHNICIAN: 1,
    Role.SENIOR_TECHNICIAN: 2,
    Role.SUPERVISOR: 3,
    Role.ADMIN: 4,
    Role.AUDITOR: -1,
}


def _a(role: Role) -> str:
    """ "a technician", "an admin": reasons are sentences a person reads."""
    return f"an {role}" if role[0] in "aeiou" else f"a {role}"


def _pass(rule: str, reason: str, code: str, params: ReasonParams = NO_PARAMS) -> RuleOutcome:
    return RuleOutcome(rule, None, reason, None, code, params)


def _out(
    rule: str,
    effect: Effect,
    reason: str,
    code: str,
    params: ReasonParams = NO_PARAMS,
    obligations: Obligations | None = None,
) -> RuleOutcome:
    """An outcome that decides something, its reason said in English and by code."""
    return RuleOutcome(rule, effect, reason, obligations, code, params)


# ------------------------------------------------------------------------ support_session.start


def start_rules(cp: CompiledPolicy, req: StartSupportSession, ctx: EvaluationContext) -> Outcomes:
    policy = cp.policy
    role, mode, now = req.technician_role, req.mode, ctx.now
    if not role_has_permission(role, Permission.SUPPORT_SESSION_REQUEST):
        yield _out(
            f"roles.{role}",
            DENY,
            f"the role {role} may not start support sessions",
            "roles.session_start_denied",
            {"role": str(role)},
        )
    staff = policy.staff
    if staff.mfa_required and not req.mfa_verified:
        yield _out(
            "staff.mfa_required",
            DENY,
            "the technician has not verified a second factor",
            "staff.mfa_required.unverified",
        )
    trainings = req.trainings
    for training_id, max_age, rule in cp.trainings:
        done = trainings.get(training_id)
        lapsed = req.trainings_expired.get(training_id)
        if done is None and lapsed is not None:
            yield _out(
                rule, DENY, f"the training {training_id!r} expired on {lapsed:%Y-%m-%d} and "
                "must be renewed", "staff.training.expired",
                {"training": training_id, "expired_on": f"{lapsed:%Y-%m-%d}"},
            )  # fmt: skip
        elif done is None:
            yield _out(
                rule,
                DENY,
                f"the technician has no record of the training {training_id!r}",
                "staff.training.missing",
                {"training": training_id},
            )
        elif now - done > max_age:
            expired_on = f"{done + max_age:%Y-%m-%d}"
            yield _out(
                rule, DENY, f"the training {training_id!r} expired on "
                f"{expired_on} and must be renewed", "staff.training.expired",
                {"training": training_id, "expired_on": expired_on},
            )  # fmt: skip
        else:
            yield _pass(
                rule, "the training is current", "staff.training.current", {"training": training_id}
            )
    if req.ticket_assignee is not None:
        yield _ticket_access_rule(cp, req)
    limit = staff.max_concurrent_sessions
    if limit is not None and req.concurrent_sessions >= limit:
        yield _out(
            "staff.max_concurrent_sessions",
            DENY,
            f"the technician already runs {req.concurrent_sessions} sessions (limit {limit})",
            "staff.max_concurrent_sessions.reached",
            {"running": req.concurrent_sessions, "limit": limit},
        )
    if not any(mode in c.modes and role in c.roles for c in cp.capabilities.values()):
        yield _out(
            "capabilities",
            DENY,
            f"no approved capability allows {_a(role)} in {mode} mode",
            "capabilities.none_for_mode",
            {"role": str(role), "mode": str(mode)},
        )
    if mode is SessionMode.UNATTENDED:
        yield from _unattended_rules(cp, req, ctx)
    if cp.schedule is not None and mode in cp.hours_apply_to:
        yield _hours_rule(cp, req, ctx)
    if mode is not SessionMode.UNATTENDED:
        yield _session_consent_rule(cp, req, ctx)
    yield _session_grant(cp, req, ctx)


def _ticket_access_rule(cp: CompiledPolicy, req: StartSupportSession) -> RuleOutcome:
    rule, role = "sessions.ticket_access", req.technician_role
    access = cp.policy.sessions.ticket_access
    if req.ticket_assignee == "self":
        return _pass(
            rule, "the ticket is assigned to the technician", "sessions.ticket_access.assignee"
        )
    if access is TicketAccess.ANY_TECHNICIAN:
        return _pass(
            rule, "any technician may work on any ticket", "sessions.ticket_access.any_technician"
        )
    seniors = access is TicketAccess.ASSIGNEE_AND_SENIORS
    floor = Role.SENIOR_TECHNICIAN if seniors else Role.SUPERVISOR
    if _RANK[role] >= _RANK[floor]:
        return _pass(
            rule,
            f"{_a(role)} may work on tickets assigned to others",
            "sessions.ticket_access.senior",
            {"role": str(role)},
        )
    if req.ticket_assignee == "other":
        whose, code = "another technician", "sessions.ticket_access.assigned_to_other"
    else:
        whose, code = "nobody yet", "sessions.ticket_access.unassigned"
    return _out(
        rule,
        DENY,
        f"the ticket is assigned to {whose}; only its assignee or {_a(floor)} may",
        code,
        {"floor": str(floor)},
    )


def _unattended_rules(
    cp: CompiledPolicy, req: StartSupportSession, ctx: EvaluationContext
) -> Outcomes:
    unattended = cp.policy.unattended
    if unattended is None:
        yield _out(
            "unattended",
            DENY,
            "this policy does not allow unattended access",
            "unattended.not_allowed",
        )
        return
    if ctx.emergency_active and "lock_unattended" in cp.emergency_actions:
        yield _out(
            "emergency.actions.lock_unattended",
            DENY,
            "unattended access is locked during an emergency",
            "emergency.unattended_locked",
        )
    if req.device_group not in cp.unattended_groups:
        yield _out(
            "unattended.allowed_device_groups",
            DENY,
            f"the device group {req.device_group!r} is not approved for unattended access",
            "unattended.device_group_not_approved",
            {"group": str(req.device_group)},
        )
    if unattended.ticket_required and not req.ticket_id:
        yield _out(
            "unattended.ticket_required",
            DENY,
            "unattended access needs a ticket",
            "unattended.ticket_missing",
        )
    opa = unattended.owner_pre_authorisation
    if opa is not None and opa.required:
        at = req.owner_pre_authorised_at
        if at is None:
            yield _out(
                "unattended.owner_pre_authorisation",
                DENY,
                "the device owner has not pre-authorised access",
                "unattended.owner_pre_authorisation.missing",
            )
        elif at > ctx.now or ctx.now - at > opa.window:
            yield _out(
                "unattended.owner_pre_authorisation.window",
                DENY,
                "the owner's pre-authorisation is outside its validity window",
                "unattended.owner_pre_authorisation.outside_window",
            )
        else:
            yield _pass(
                "unattended.owner_pre_authorisation",
                "the owner pre-authorised access",
                "unattended.owner_pre_authorisation.present",
            )
    if unattended.approval_required:
        if req.approval_present:
            yield _pass(
                "unattended.approval_required",
                "an approval is recorded",
                "unattended.approval.recorded",
            )
        else:
            yield _out(
                "unattended.approval_required",
                APPROVAL,
                "unattended access needs an approval",
                "unattended.approval.required",
            )


def _hours_rule(
    cp: CompiledPolicy, req: StartSupportSession, ctx: EvaluationContext
) -> RuleOutcome:
    assert cp.schedule is not None  # noqa: S101 - narrowed by the caller; documents the invariant
    check = cp.schedule.check(ctx.now)
    if check.open:
        return _pass(check.rule, check.reason, check.reason_code, check.params)
    outside = cp.policy.support_hours.outside_hours if cp.policy.support_hours else "deny"
    # What the policy does outside hours is a clause added to why support is closed now.
    closed = {SITUATION: check.reason_code, **check.params}
    if outside == "require_approval":
        if req.approval_present:
            return _pass(
                check.rule,
                f"{check.reason}; an approval is recorded",
                "support_hours.closed.approval_recorded",
                closed,
            )
        return _out(
            check.rule,
            APPROVAL,
            f"{check.reason}; support outside hours needs an approval",
            "support_hours.closed.approval_required",
            closed,
        )
    if outside == "emergency_only":
        if req.emergency:
            return _pass(
                check.rule,
                f"{check.reason}; allowed as an emergency",
                "support_hours.closed.emergency_allowed",
                closed,
            )
        return _out(
            check.rule,
            DENY,
            f"{check.reason}; only emergencies are served outside hours",
            "support_hours.closed.emergency_only",
            closed,
        )
    return _out(check.rule, DENY, check.reason, check.reason_code, check.params)


def _consent_satisfied(cp: CompiledPolicy, subject: str, ctx: EvaluationContext) -> bool:
    if subject in ctx.consented:
        return True
    if cp.policy.consent.scope == "per_session" and "session" in ctx.consented:
        return True
    return ctx.pre_authorised_by is not None and ctx.pre_authorised_by in cp.pre_authorise_roles


def _session_consent_rule(
    cp: CompiledPolicy, req: StartSupportSession, ctx: EvaluationContext
) -> RuleOutcome:
    if req.mode is SessionMode.CHAT_ONLY:
        chat = cp.capabilities.get("chat")
        consent, rule = (chat.consent, chat.consent_rule) if chat else (None, "consent.required")
    else:
        consent, rule = cp.session_consent, "consent.required"
    if consent is None:
        return _pass(
            rule,
            "this policy does not ask consent for this connection",
            "consent.session.not_required",
        )
    if _consent_satisfied(cp, "session", ctx):
        return _pass(rule, "the user consented to the connection", "consent.session.given")
    return _out(
        rule,
        CONSENT,
        "the user must consent before any connection",
        "consent.session.required",
        obligations=Obligations(consent=consent),
    )


def _session_grant(
    cp: CompiledPolicy, req: StartSupportSession, ctx: EvaluationContext
) -> RuleOutcome:
    sessions = cp.policy.sessions
    end_at = ctx.now + sessions.max_duration
    consent = None
    if req.mode is not SessionMode.UNATTENDED and not _consent_satisfied(cp, "session", ctx):
        chat = cp.capabilities.get("chat")
        consent = (
            (chat.consent if chat else None)
            if req.mode is SessionMode.CHAT_ONLY
            else cp.session_consent
        )
    obligations = Obligations(
        record=sessions.recording,
        end_at=end_at,
        warn_at=end_at - sessions.warn_before,
        idle_timeout=sessions.idle_timeout,
        consent=consent,
        notify_user=sessions.notify_user_of_actions,
        ticket_required=req.mode is SessionMode.UNATTENDED,
    )
    return _out(
        "sessions.max_duration",
        ALLOW,
        cp.session_grant_reason,
        "sessions.granted",
        cp.session_grant_params,
        obligations,
    )


# ---------------------------------------------------------------- capability.use / external tools


def capability_rules(cp: CompiledPolicy, req: CapabilityAsk, ctx: EvaluationContext) -> Outcomes:
    name = req.capability
    cap = cp.capabilities.get(name)
    if cap is None:
        yield _out(
            f"capabilities.{name}",
            DENY,
            f"{name!r} is not in the catalogue of approved tools",
            "capabilities.not_in_catalogue",
            {"capability": name},
        )
        return
    role, mode = req.technician_role, req.mode
    who = {"role": str(role), "capability": name}
    if role in cap.roles:
        yield _pass(
            f"{cap.path}.roles", f"{_a(role)} may use {name}", "capabilities.role_allowed", who
        )
    else:
        yield _out(
            f"{cap.path}.roles", DENY, f"{_a(role)} may not use {name}",
            "capabilities.role_denied", who,
        )  # fmt: skip
    how = {"capability": name, "mode": str(mode)}
    if mode in cap.modes:
        yield _pass(
            f"{cap.path}.modes",
            f"{name} is approved in {mode} mode",
            "capabilities.mode_allowed",
            how,
        )
    else:
        yield _out(
            f"{cap.path}.modes", DENY, f"{name} is not approved in {mode} mode",
            "capabilities.mode_denied", how,
        )  # fmt: skip
    yield from _limits(cp, cap, req, ctx)
    if name == "terminal" and cp.has_zones:
        yield _terminal_zones_rule(cp)
    yield _capability_consent(cp, cap, req, ctx)
    yield _capability_grant(cp, cap, req, ctx)


def _limits(
    cp: CompiledPolicy, cap: CompiledCapability, req: CapabilityAsk, ctx: EvaluationContext
) -> Outcomes:
    if cap.shells is not None and req.terminal_shell not in cap.shells:
        yield _out(
            f"{cap.path}.shells",
            DENY,
            f"the shell {req.terminal_shell!r} is not approved",
            "capabilities.shell_not_approved",
            {"shell": str(req.terminal_shell)},
        )
    if cap.approved_runbooks is not None and req.runbook_id not in cap.approved_runbooks:
        yield _out(
            f"{cap.path}.approved",
            DENY,
            f"the runbook {req.runbook_id!r} is not approved",
            "capabilities.runbook_not_approved",
            {"runbook": str(req.runbook_id)},
        )
    if cap.directions is not None:
        if req.direction not in cap.directions:
            rule = f"{cap.path}.direction"
            if req.direction:
                yield _out(
                    rule,
                    DENY,
                    f"file transfer {req.direction} is not allowed",
                    "capabilities.direction_not_allowed",
                    {"direction": req.direction},
                )
            else:
                yield _out(
                    rule,
                    DENY,
                    "file transfer (unstated) is not allowed",
                    "capabilities.direction_unstated",
                )
        if cap.max_size is not None and req.size is not None and req.size > cap.max_size:
            yield _out(
                f"{cap.path}.max_size",
                DENY,
                f"{req.size} bytes exceeds the limit of {cap.max_size}",
                "capabilities.too_large",
                {"size": req.size, "max": cap.max_size},
            )
        if req.path is not None and req.platform is not None:
            yield from _zone_rules(cp, req.platform, req.path, req.reason, ctx, grant=False)
    if cap.ticket_required and not req.ticket_id:
        yield _out(
            f"{cap.path}.ticket_required",
            DENY,
            f"{cap.name} must be logged against a ticket",
            "capabilities.ticket_required",
            {"capability": cap.name},
        )


TERMINAL_RISK = "the terminal can read your documents: it cannot be kept out of personal folders"


def _terminal_zones_rule(cp: CompiledPolicy) -> RuleOutcome:
    rule = "personal_data_zones.terminal"
    if cp.policy.personal_data_zones.terminal is TerminalWithZones.DENY:
        return _out(
            rule, DENY, "a terminal cannot be confined to paths and could read personal-data "
            "zones; this policy denies it", "personal_data_zones.terminal.denied",
        )  # fmt: skip
    return _pass(
        rule,
        "a terminal needs its own consent, which names the risk to personal data",
        "personal_data_zones.terminal.consent",
    )


def _capability_consent(
    cp: CompiledPolicy, cap: CompiledCapability, req: CapabilityAsk, ctx: EvaluationContext
) -> RuleOutcome:
    if req.mode is SessionMode.UNATTENDED:
        # Nobody is at the device: the owner's standing pre-authorisation replaces the prompt.
        rule = "unattended.owner_pre_authorisation.scope"
        named = {"capability": cap.name}
        if cap.name in cp.unattended_scope:
            return _pass(
                rule,
                f"the owner pre-authorised {cap.name} for unattended use",
                "unattended.scope.covered",
                named,
            )
        return _out(
            rule,
            DENY,
            f"the owner's pre-authorisation does not cover {cap.name}",
            "unattended.scope.not_covered",
            named,
        )
    named = {"capability": cap.name}
    if cap.consent is None:
        return _pass(
            cap.consent_rule,
            f"{cap.name} needs no consent under this policy",
            "consent.capability.not_required",
            named,
        )
    if _consent_satisfied(cp, cap.name, ctx):
        return _pass(
            cap.consent_rule,
            f"the user consented to {cap.name}",
            "consent.capability.given",
            named,
        )
    return _out(
        cap.consent_rule,
        CONSENT,
        f"the user must consent to {cap.name}",
        "consent.capability.required",
        named,
        Obligations(consent=cap.consent),
    )


def _capability_grant(
    cp: CompiledPolicy, cap: CompiledCapability, req: CapabilityAsk, ctx: EvaluationContext
) -> RuleOutcome:
    needs_consent = (
        cap.consent is not None
        and req.mode is not SessionMode.UNATTENDED
        and not _consent_satisfied(cp, cap.name, ctx)
    )
    zones: tuple[str, ...] = ()
    if cap.name in ("terminal", "file_transfer") and req.platform is not None:
        zones = cp.zone_names[req.platform]
    sessions = cp.policy.sessions
    obligations = Obligations(
        record=sessions.recording,
        end_at=ctx.now + cap.max_duration if cap.max_duration else None,
        consent=cap.consent if needs_consent else None,
        zones=zones,
        notify_user=sessions.notify_user_of_actions,
        ticket_required=cap.ticket_required,
        max_size=cap.max_size,
    )
    return _out(
        cap.path,
        ALLOW,
        f"{cap.name} is an approved tool for this use",
        "capabilities.granted",
        {"capability": cap.name},
        obligations,
    )


# ------------------------------------------------------------------------------------ file.access


def file_rules(cp: CompiledPolicy, req: AccessFile, ctx: EvaluationContext) -> Outcomes:
    yield from _zone_rules(cp, req.platform, req.path, req.reason, ctx, grant=True)


def _zone_rules(
    cp: CompiledPolicy,
    platform: Platform,
    path: str,
    reason: str,
    ctx: EvaluationContext,
    *,
    grant: bool,
) -> Outcomes:
    rule = "personal_data_zones"
    normal = normalise_path(platform, path)
    if normal is None:
        yield _out(
            rule,
            DENY,
            f"{path!r} is not an absolute path and cannot be judged",
            "personal_data_zones.not_absolute",
            {"path": path},
        )
        return
    matcher = cp.zones[platform]
    if matcher.excepted(normal):
        yield RuleOutcome(
            f"{rule}.exceptions",
            ALLOW if grant else None,
            "the path is a listed exception",
            None,
            "personal_data_zones.exception",
        )
        return
    zone = matcher.match(normal)
    if zone is None:
        if grant:
            yield _out(
                rule,
                ALLOW,
                "the path is outside every personal-data zone",
                "personal_data_zones.outside",
            )
        return
    on_access = cp.policy.personal_data_zones.on_access
    where = f"the path is in the personal-data zone {zone.name!r}"
    named = {"zone": zone.name}
    if on_access is OnZoneAccess.DENY:
        yield _out(
            f"{rule}.on_access",
            DENY,
            f"{where}; access is denied",
            "personal_data_zones.denied",
            named,
        )
        return
    if not reason.strip():
        yield _out(
            f"{rule}.on_access",
            DENY,
            f"{where}; access needs a stated reason",
            "personal_data_zones.reason_missing",
            named,
        )
        return
    subject = f"zone:{zone.name}"
    obligation = cp.zone_consent[zone.name]
    # A zone needs its own consent: the session's or the capability's consent never covers it.
    if subject in ctx.consented:
        yield _pass(
            f"{rule}.on_access",
            f"{where}; the user consented to it",
            "personal_data_zones.consented",
            named,
        )
    else:
        yield _out(
            f"{rule}.on_access",
            CONSENT,
            f"{where}; the user must consent to it",
            "personal_data_zones.consent_required",
            named,
            Obligations(consent=obligation, zones=(zone.name,)),
        )
    if grant:
        yield _out(
            rule,
            ALLOW,
            f"{where}; access follows the user's consent",
            "personal_data_zones.follows_consent",
            named,
            Obligations(zones=(zone.name,)),
        )


# --------------------------------------------------------------------------------- session.extend


def extend_rules(cp: CompiledPolicy, req: ExtendSession, ctx: EvaluationContext) -> Outcomes:
    sessions = cp.policy.sessions
    ext = sessions.extension
    if ext is None:
        yield _out(
            "sessions.extension",
            DENY,
            "this policy allows no extensions",
            "sessions.extension.none",
        )
        return
    if ext.reason_required and not req.reason.strip():
        yield _out(
            "sessions.extension.reason_required",
            DENY,
            "an extension needs a written reason",
            "sessions.extension.reason_missing",
        )
    if req.extended_so_far + req.requested > ext.max:
        yield _out(
            "sessions.extension.max",
            DENY,
            "the extension exceeds the most the policy allows",
            "sessions.extension.exceeds_max",
        )
    if ext.max_count is not None and req.extensions_so_far >= ext.max_count:
        yield _out(
            "sessions.extension.max_count",
            DENY,
            f"the session was already extended {req.extensions_so_far} times",
            "sessions.extension.count_reached",
            {"count": req.extensions_so_far},
        )
    if ext.approver_role is not None:
        rule = "sessions.extension.approver_role"
        approver = str(ext.approver_role)
        if req.approver_role is None:
            yield _out(
                rule,
                APPROVAL,
                f"the extension needs {_a(ext.approver_role)}'s approval",
                "sessions.extension.approval_required",
                {"approver": approver},
            )
        elif _RANK[req.approver_role] < _RANK[ext.approver_role] or _RANK[req.approver_role] < 0:
            yield _out(
                rule,
                DENY,
                f"{_a(req.approver_role)} cannot approve; {_a(ext.approver_role)} must",
                "sessions.extension.approver_too_junior",
                {"role": str(req.approver_role), "approver": approver},
            )
        else:
            yield _pass(
                rule,
                f"approved by {_a(req.approver_role)}",
                "sessions.extension.approved",
                {"role": str(req.approver_role)},
            )
    end_at = req.current_end_at + req.requested
    yield _out(
        "sessions.extension",
        ALLOW,
        "the extension is within the policy's documented exceptions",
        "sessions.extension.granted",
        NO_PARAMS,
        Obligations(
            end_at=end_at,
            warn_at=end_at - sessions.warn_before,
            record=sessions.recording,
            approver_role=ext.approver_role,
            notify_user=sessions.notify_user_of_actions,
        ),
    )


# ------------------------------------------------------------------------------ emergency.declare


def emergency_rules(cp: CompiledPolicy, req: DeclareEmergency, ctx: EvaluationContext) -> Outcomes:
    rule = "emergency.declare_roles"
    if req.role not in cp.emergency_roles:
        yield _out(
            rule,
            DENY,
            f"{_a(req.role)} may not declare an emergency",
            "emergency.declare.denied",
            {"role": str(req.role)},
        )
        return
    actions = cp.policy.emergency.actions
    yield _out(
        rule,
        ALLOW,
        f"{_a(req.role)} may declare an emergency",
        "emergency.declare.allowed",
        {"role": str(req.role)},
        Obligations(emergency_actions=cp.emergency_actions, escalate_to=actions.escalate_to),
    )
