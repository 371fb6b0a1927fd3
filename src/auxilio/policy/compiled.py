"""A policy compiled once into the lookup structures the engine reads on every decision.

Frozensets for role and mode checks, one regex per platform for zones, per-weekday minute windows
for hours and the consent prompt of every capability resolved in advance: a decision is then a
handful of set lookups, which is what lets the server ask the engine on every request.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from types import MappingProxyType
from typing import cast

from auxilio.policy.decision import ConsentObligation
from auxilio.policy.hours import Schedule, compile_schedule
from auxilio.policy.reasons import ReasonParams
from auxilio.policy.roles import Role
from auxilio.policy.schema import (
    CapabilityRule,
    ConsentOverride,
    ConsentPolicy,
    Direction,
    ExternalToolRule,
    FileTransferRule,
    Platform,
    Policy,
    RunbooksRule,
    SessionMode,
    TerminalRule,
)
from auxilio.policy.zones import ZoneMatcher, compile_zones


@dataclass(frozen=True, slots=True)
class CompiledCapability:
    name: str
    path: str  # "capabilities.terminal" or "capabilities.external_tools.rdp"
    roles: frozenset[Role]
    modes: frozenset[SessionMode]
    consent: ConsentObligation | None  # None: no consent needed
    consent_rule: str  # the rule path that decided whether consent is needed
    max_duration: dt.timedelta | None
    shells: frozenset[str] | None
    approved_runbooks: frozenset[str] | None
    directions: frozenset[str] | None
    max_size: int | None
    ticket_required: bool


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    policy: Policy
    version: str | None
    capabilities: dict[str, CompiledCapability]
    schedule: Schedule | None
    hours_apply_to: frozenset[SessionMode]
    session_consent: ConsentObligation | None
    pre_authorise_roles: frozenset[Role]
    zones: dict[Platform, ZoneMatcher]
    zone_names: dict[Platform, tuple[str, ...]]
    unattended_groups: frozenset[str]
    unattended_scope: frozenset[str]
    emergency_roles: frozenset[Role]
    emergency_actions: tuple[str, ...]
    # Answers precomputed so the hot path does one lookup instead of a loop:
    start_pairs: frozenset[tuple[SessionMode, Role]]  # (mode, role) with at least one tool
    trainings: tuple[tuple[str, dt.timedelta, str], ...]  # (id, max_age, rule path)
    session_grant_reason: str
    session_grant_params: ReasonParams  # the same reason's parameters, for its code
    zone_consent: dict[str, ConsentObligation]  # zone name -> its own consent prompt
    has_zones: bool  # some platform has a personal-data zone (a terminal could read it)


def compile_policy(policy: Policy) -> CompiledPolicy:
    """The compiled form, built on first use and kept on the (immutable) policy object."""
    cached = policy._compiled
    if isinstance(cached, CompiledPolicy):
        return cached
    compiled = _compile(policy)
    policy._compiled = compiled
    return compiled


def _compile(policy: Policy) -> CompiledPolicy:
    consent = policy.consent
    session_consent = (
        ConsentObligation(
            "session", consent.methods, consent.timeout, consent.on_timeout, consent.scope
        )
        if consent.required
        else None
    )
    hours = policy.support_hours
    unattended = policy.unattended
    opa = unattended.owner_pre_authorisation if unattended else None
    actions = policy.emergency.actions
    zones = compile_zones(policy.personal_data_zones)
    zone_names = {p: m.zone_names() for p, m in zones.items()}
    has_zones = any(zone_names.values())
    capabilities = {
        name: _capability(name, rule, consent, terminal_risk=has_zones)
        for name, rule in policy.capabilities.listed().items()
    }
    minutes = int(policy.sessions.max_duration.total_seconds() // 60)
    return CompiledPolicy(
        policy=policy,
        version=policy.version_label,
        capabilities=capabilities,
        schedule=compile_schedule(hours) if hours else None,
        hours_apply_to=frozenset(hours.applies_to) if hours else frozenset(),
        session_consent=session_consent,
        pre_authorise_roles=frozenset(consent.pre_authorise_roles),
        zones=zones,
        zone_names=zone_names,
        unattended_groups=frozenset(unattended.allowed_device_groups)
        if unattended
        else frozenset(),
        unattended_scope=frozenset(opa.scope) if opa else frozenset(),
        emergency_roles=frozenset(policy.emergency.declare_roles),
        emergency_actions=tuple(
            name
            for name, on in (
                ("end_all_sessions", actions.end_all_sessions),
                ("lock_unattended", actions.lock_unattended),
            )
            if on
        ),
        start_pairs=frozenset(
            (mode, role) for c in capabilities.values() for mode in c.modes for role in c.roles
        ),
        trainings=tuple(
            (t.id, t.max_age, f"staff.trainings_required.{t.id}")
            for t in policy.staff.trainings_required
        ),
        session_grant_reason=f"the policy allows this session for {minutes} minutes",
        session_grant_params=MappingProxyType({"minutes": minutes}),
        has_zones=has_zones,
        zone_consent={
            name: ConsentObligation(
                f"zone:{name}",
                consent.methods,
                consent.timeout,
                consent.on_timeout,
                consent.scope,
                reason_required=True,
            )
            for names in zone_names.values()
            for name in names
        },
    )


def _capability(
    name: str, rule: CapabilityRule, consent: ConsentPolicy, *, terminal_risk: bool
) -> CompiledCapability:
    """``terminal_risk``: the policy has personal-data zones, which a terminal can read."""
    path = f"capabilities.{name}"
    overrides = cast("dict[str, ConsentOverride]", consent.capabilities)
    override = overrides.get(name)
    # Precedence (documented): the catalogue's shorthand, then consent.capabilities, then
    # the section default.
    if rule.consent != "inherit":
        required, consent_rule = rule.consent == "required", f"{path}.consent"
    elif override is not None and override.required is not None:
        required, consent_rule = override.required, f"consent.capabilities.{name}.required"
    else:
        required, consent_rule = consent.required, "consent.required"
    if name == "terminal" and terminal_risk and not required:
        # personal_data_zones.terminal: require_consent -- the terminal is asked for on its own
        # even where the policy asks no consent for tools (deny is a rule of its own).
        required, consent_rule = True, "personal_data_zones.terminal"
    obligation = None
    if required:
        obligation = ConsentObligation(
            subject=name,
            methods=(override.methods if override and override.methods else consent.methods),
            timeout=(override.timeout if override and override.timeout else consent.timeout),
            on_timeout=(
                override.on_timeout if override and override.on_timeout else consent.on_timeout
            ),
            scope=consent.scope,
        )
    directions: frozenset[str] | None = None
    if isinstance(rule, FileTransferRule):
        directions = (
            frozenset({"upload", "download"})
            if rule.direction is Direction.BOTH
            else frozenset({rule.direction.value})
        )
    return CompiledCapability(
        name=name,
        path=path,
        roles=frozenset(rule.roles),
        modes=frozenset(rule.modes),
        consent=obligation,
        consent_rule=consent_rule,
        max_duration=rule.max_duration,
        shells=frozenset(rule.shells) if isinstance(rule, TerminalRule) else None,
        approved_runbooks=frozenset(rule.approved) if isinstance(rule, RunbooksRule) else None,
        directions=directions,
        max_size=rule.max_size if isinstance(rule, FileTransferRule) else None,
        ticket_required=rule.ticket_required if isinstance(rule, ExternalToolRule) else False,
    )
