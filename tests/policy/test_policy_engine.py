"""The engine, rule by rule: each row is one situation, the effect and the rule that decided."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from policy_factories import BASE, NOW, ctx, make_policy, start

from auxilio.policy import (
    AccessFile,
    CheckPermission,
    DeclareEmergency,
    Effect,
    ExtendSession,
    Permission,
    Role,
    UseCapability,
    UseExternalTool,
    authorize,
    evaluate,
    explain,
    parse_request,
)
from auxilio.policy.roles import ROLE_PERMISSIONS

SATURDAY = datetime(2025, 10, 11, 8, 0, tzinfo=UTC)
CHRISTMAS = datetime(2025, 12, 25, 10, 0, tzinfo=UTC)
NIGHT = datetime(2025, 10, 7, 20, 0, tzinfo=UTC)  # 22:00 in Madrid
HOURS = BASE["support_hours"]
UNATTENDED = {
    "allowed_device_groups": ["servers"],
    "ticket_required": True,
    "approval_required": True,
    "owner_pre_authorisation": {"window": "7d", "scope": ["terminal"]},
}
UNATTENDED_CAPS = {
    **BASE["capabilities"],
    "terminal": {"roles": ["supervisor"], "shells": ["bash"], "modes": ["attended", "unattended"]},
}
GOOD_UNATTENDED = {
    "mode": "unattended",
    "technician_role": "supervisor",
    "device_group": "servers",
    "ticket_id": "T-1",
    "approval_present": True,
    "owner_pre_authorised_at": NOW - timedelta(days=1),
}


def cap(name: str, role: str = "technician", **kwargs: Any) -> UseCapability:
    return UseCapability(capability=name, technician_role=role, **kwargs)


def extend(**kwargs: Any) -> ExtendSession:
    fields: dict[str, Any] = {
        "requested": timedelta(minutes=15),
        "current_end_at": NOW + timedelta(minutes=5),
        "reason": "the update is still installing",
        "approver_role": "supervisor",
    }
    fields.update(kwargs)
    return ExtendSession(**fields)


# (id, policy overrides, request, context kwargs, effect, rule)
CASES: list[tuple[str, dict[str, Any], Any, dict[str, Any], Effect, str]] = [
    # support_session.start
    (
        "it_asks_consent_before_any_connection",
        {},
        start(),
        {},
        Effect.REQUIRE_CONSENT,
        "consent.required",
    ),
    (
        "it_allows_a_consented_session",
        {},
        start(),
        {"consented": frozenset({"session"})},
        Effect.ALLOW,
        "sessions.max_duration",
    ),
    (
        "it_refuses_a_session_on_another_technicians_ticket",
        {},
        start(ticket_assignee="other"),
        {"consented": frozenset({"session"})},
        Effect.DENY,
        "sessions.ticket_access",
    ),
    (
        "it_refuses_a_session_on_a_ticket_nobody_holds_yet",
        {},
        start(ticket_assignee="nobody"),
        {"consented": frozenset({"session"})},
        Effect.DENY,
        "sessions.ticket_access",
    ),
    (
        "it_lets_a_supervisor_work_on_anyones_ticket",
        {},
        start(ticket_assignee="other", technician_role="supervisor"),
        {"consented": frozenset({"session"})},
        Effect.ALLOW,
        "sessions.max_duration",
    ),
    (
        "it_lets_the_assignee_work_on_their_ticket",
        {},
        start(ticket_assignee="self"),
        {"consented": frozenset({"session"})},
        Effect.ALLOW,
        "sessions.max_duration",
    ),
    (
        "it_refuses_a_senior_on_anothers_ticket_by_default",
        {},
        start(ticket_assignee="other", technician_role="senior_technician"),
        {"consented": frozenset({"session"})},
        Effect.DENY,
        "sessions.ticket_access",
    ),
    (
        "it_lets_seniors_in_where_the_policy_says",
        {
            "sessions": {**BASE["sessions"], "ticket_access": "assignee_and_seniors"},
            "capabilities": {**BASE["capabilities"], "chat": {"roles": ["senior_technician"]}},
        },
        start(ticket_assignee="other", technician_role="senior_technician"),
        {"consented": frozenset({"session"})},
        Effect.ALLOW,
        "sessions.max_duration",
    ),
    (
        "it_lets_anyone_in_where_the_policy_says",
        {"sessions": {**BASE["sessions"], "ticket_access": "any_technician"}},
        start(ticket_assignee="nobody"),
        {"consented": frozenset({"session"})},
        Effect.ALLOW,
        "sessions.max_duration",
    ),
    (
        "it_skips_consent_when_the_policy_does_not_ask",
        {"consent": {"required": False}},
        start(),
        {},
        Effect.ALLOW,
        "sessions.max_duration",
    ),
    (
        "it_accepts_a_pre_authorising_role",
        {"consent": {"pre_authorise_roles": ["supervisor"]}},
        start(),
        {"pre_authorised_by": Role.SUPERVISOR},
        Effect.ALLOW,
        "sessions.max_duration",
    ),
    (
        "it_ignores_a_pre_authorisation_by_an_unlisted_role",
        {"consent": {"pre_authorise_roles": ["supervisor"]}},
        start(),
        {"pre_authorised_by": Role.TECHNICIAN},
        Effect.REQUIRE_CONSENT,
        "consent.required",
    ),
    (
        "it_denies_a_technician_without_mfa",
        {},
        start(mfa_verified=False),
        {},
        Effect.DENY,
        "staff.mfa_required",
    ),
    (
        "it_allows_no_mfa_when_not_required",
        {"staff": {"mfa_required": False}},
        start(mfa_verified=False),
        {"consented": frozenset({"session"})},
        Effect.ALLOW,
        "sessions.max_duration",
    ),
    (
        "it_denies_a_missing_training",
        {},
        start(trainings={}),
        {},
        Effect.DENY,
        "staff.trainings_required.privacy",
    ),
    (
        "it_denies_an_expired_training",
        {},
        start(trainings={"privacy": NOW - timedelta(days=400)}),
        {},
        Effect.DENY,
        "staff.trainings_required.privacy",
    ),
    (
        "it_denies_past_the_concurrency_limit",
        {"staff": {"max_concurrent_sessions": 2}},
        start(concurrent_sessions=2, trainings={}),
        {},
        Effect.DENY,
        "staff.max_concurrent_sessions",
    ),
    (
        "it_denies_an_end_user_starting_a_session",
        {},
        start(technician_role="end_user"),
        {},
        Effect.DENY,
        "roles.end_user",
    ),
    (
        "it_denies_a_mode_no_tool_allows",
        {},
        start(mode="automated", technician_role="supervisor"),
        {},
        Effect.DENY,
        "capabilities",
    ),
    (
        "it_denies_on_a_saturday",
        {},
        start(),
        {"now": SATURDAY},
        Effect.DENY,
        "support_hours.weekly",
    ),
    (
        "it_denies_on_a_holiday",
        {},
        start(),
        {"now": CHRISTMAS},
        Effect.DENY,
        "support_hours.holidays",
    ),
    (
        "it_asks_approval_outside_hours_when_told_to",
        {"support_hours": {**HOURS, "outside_hours": "require_approval"}},
        start(),
        {"now": NIGHT},
        Effect.REQUIRE_APPROVAL,
        "support_hours.weekly",
    ),
    (
        "it_accepts_a_recorded_approval_outside_hours",
        {"support_hours": {**HOURS, "outside_hours": "require_approval"}},
        start(approval_present=True),
        {"now": NIGHT, "consented": frozenset({"session"})},
        Effect.ALLOW,
        "sessions.max_duration",
    ),
    (
        "it_denies_non_emergencies_outside_hours",
        {"support_hours": {**HOURS, "outside_hours": "emergency_only"}},
        start(),
        {"now": NIGHT},
        Effect.DENY,
        "support_hours.weekly",
    ),
    (
        "it_allows_emergencies_outside_hours",
        {"support_hours": {**HOURS, "outside_hours": "emergency_only"}},
        start(emergency=True),
        {"now": NIGHT, "consented": frozenset({"session"})},
        Effect.ALLOW,
        "sessions.max_duration",
    ),
    (
        "it_applies_hours_only_to_listed_modes",
        {"support_hours": {**HOURS, "applies_to": ["unattended"]}},
        start(),
        {"now": SATURDAY, "consented": frozenset({"session"})},
        Effect.ALLOW,
        "sessions.max_duration",
    ),
    (
        "it_denies_unattended_without_the_section",
        {"capabilities": UNATTENDED_CAPS},
        start(**GOOD_UNATTENDED),
        {},
        Effect.DENY,
        "unattended",
    ),
    (
        "it_allows_a_complete_unattended_request",
        {"capabilities": UNATTENDED_CAPS, "unattended": UNATTENDED, "support_hours": None},
        start(**GOOD_UNATTENDED),
        {},
        Effect.ALLOW,
        "sessions.max_duration",
    ),
    (
        "it_denies_unattended_outside_the_device_groups",
        {"capabilities": UNATTENDED_CAPS, "unattended": UNATTENDED},
        start(**{**GOOD_UNATTENDED, "device_group": "laptops"}),
        {},
        Effect.DENY,
        "unattended.allowed_device_groups",
    ),
    (
        "it_denies_unattended_without_a_ticket",
        {"capabilities": UNATTENDED_CAPS, "unattended": UNATTENDED},
        start(**{**GOOD_UNATTENDED, "ticket_id": None}),
        {},
        Effect.DENY,
        "unattended.ticket_required",
    ),
    (
        "it_denies_unattended_without_owner_pre_authorisation",
        {"capabilities": UNATTENDED_CAPS, "unattended": UNATTENDED},
        start(**{**GOOD_UNATTENDED, "owner_pre_authorised_at": None}),
        {},
        Effect.DENY,
        "unattended.owner_pre_authorisation",
    ),
    (
        "it_denies_a_stale_owner_pre_authorisation",
        {"capabilities": UNATTENDED_CAPS, "unattended": UNATTENDED},
        start(**{**GOOD_UNATTENDED, "owner_pre_authorised_at": NOW - timedelta(days=8)}),
        {},
        Effect.DENY,
        "unattended.owner_pre_authorisation.window",
    ),
    (
        "it_asks_approval_for_unattended",
        {"capabilities": UNATTENDED_CAPS, "unattended": UNATTENDED, "support_hours": None},
        start(**{**GOOD_UNATTENDED, "approval_present": False}),
        {},
        Effect.REQUIRE_APPROVAL,
        "unattended.approval_required",
    ),
    (
        "it_locks_unattended_during_an_emergency",
        {"capabilities": UNATTENDED_CAPS, "unattended": UNATTENDED, "support_hours": None},
        start(**GOOD_UNATTENDED),
        {"emergency_active": True},
        Effect.DENY,
        "emergency.actions.lock_unattended",
    ),
    (
        "it_starts_chat_only_without_consent_when_chat_needs_none",
        {"consent": {"capabilities": {"chat": {"required": False}}}},
        start(mode="chat_only"),
        {},
        Effect.ALLOW,
        "sessions.max_duration",
    ),
    # capability.use
    (
        "it_denies_terminal_for_end_user",
        {},
        cap("terminal", "end_user", terminal_shell="bash"),
        {},
        Effect.DENY,
        "capabilities.terminal.roles",
    ),
    (
        "it_denies_terminal_for_a_technician",
        {},
        cap("terminal", terminal_shell="bash"),
        {},
        Effect.DENY,
        "capabilities.terminal.roles",
    ),
    (
        "it_asks_consent_for_terminal",
        {},
        cap("terminal", "supervisor", terminal_shell="bash"),
        {},
        Effect.REQUIRE_CONSENT,
        "consent.required",
    ),
    (
        "it_allows_consented_terminal",
        {},
        cap("terminal", "supervisor", terminal_shell="bash"),
        {"consented": frozenset({"terminal"})},
        Effect.ALLOW,
        "capabilities.terminal",
    ),
    (
        "it_denies_an_unapproved_shell",
        {},
        cap("terminal", "supervisor", terminal_shell="cmd"),
        {},
        Effect.DENY,
        "capabilities.terminal.shells",
    ),
    (
        "it_denies_a_capability_not_listed",
        {},
        cap("remote_control"),
        {},
        Effect.DENY,
        "capabilities.remote_control",
    ),
    (
        "it_denies_an_unknown_capability",
        {},
        cap("keylogger"),
        {},
        Effect.DENY,
        "capabilities.keylogger",
    ),
    (
        "it_denies_a_mode_the_capability_lacks",
        {},
        cap("screen_view", mode="unattended"),
        {},
        Effect.DENY,
        "capabilities.screen_view.modes",
    ),
    (
        "it_denies_an_unapproved_runbook",
        {},
        cap("runbooks", runbook_id="format-disk"),
        {},
        Effect.DENY,
        "capabilities.runbooks.approved",
    ),
    (
        "it_allows_an_approved_runbook",
        {},
        cap("runbooks", runbook_id="clear-cache"),
        {"consented": frozenset({"runbooks"})},
        Effect.ALLOW,
        "capabilities.runbooks",
    ),
    (
        "it_denies_a_direction_not_allowed",
        {},
        cap("file_transfer", direction="upload"),
        {},
        Effect.DENY,
        "capabilities.file_transfer.direction",
    ),
    (
        "it_denies_a_file_over_the_size_limit",
        {},
        cap("file_transfer", direction="download", size=20_000_000),
        {},
        Effect.DENY,
        "capabilities.file_transfer.max_size",
    ),
    (
        "it_asks_zone_consent_for_a_transfer_from_documents",
        {},
        cap(
            "file_transfer",
            direction="download",
            platform="linux",
            path="/home/ana/Documents/a.txt",
            reason="log export",
        ),
        {"consented": frozenset({"file_transfer"})},
        Effect.REQUIRE_CONSENT,
        "personal_data_zones.on_access",
    ),
    (
        "it_uses_the_catalogue_consent_shorthand",
        {
            "capabilities": {
                **BASE["capabilities"],
                "chat": {"roles": ["technician"], "consent": "not_required"},
            }
        },
        cap("chat"),
        {},
        Effect.ALLOW,
        "capabilities.chat",
    ),
    (
        "it_covers_capabilities_with_per_session_consent",
        {"consent": {"scope": "per_session"}},
        cap("screen_view"),
        {"consented": frozenset({"session"})},
        Effect.ALLOW,
        "capabilities.screen_view",
    ),
    (
        "it_does_not_cover_capabilities_with_per_capability_consent",
        {},
        cap("screen_view"),
        {"consented": frozenset({"session"})},
        Effect.REQUIRE_CONSENT,
        "consent.required",
    ),
    (
        "it_allows_unattended_use_within_the_owner_scope",
        {"capabilities": UNATTENDED_CAPS, "unattended": UNATTENDED},
        cap("terminal", "supervisor", terminal_shell="bash", mode="unattended"),
        {},
        Effect.ALLOW,
        "capabilities.terminal",
    ),
    # external_tool.use
    (
        "it_denies_an_unlisted_external_tool",
        {},
        UseExternalTool(tool="teamviewer", technician_role="supervisor", ticket_id="T"),
        {},
        Effect.DENY,
        "capabilities.external_tools.teamviewer",
    ),
    (
        "it_denies_an_external_tool_without_a_ticket",
        {},
        UseExternalTool(tool="rdp", technician_role="supervisor"),
        {},
        Effect.DENY,
        "capabilities.external_tools.rdp.ticket_required",
    ),
    (
        "it_asks_consent_for_an_external_tool",
        {},
        UseExternalTool(tool="rdp", technician_role="supervisor", ticket_id="T"),
        {},
        Effect.REQUIRE_CONSENT,
        "consent.required",
    ),
    # file.access
    (
        "it_allows_a_path_outside_every_zone",
        {},
        AccessFile(platform="linux", path="/var/log/syslog"),
        {},
        Effect.ALLOW,
        "personal_data_zones",
    ),
    (
        "it_denies_a_relative_path",
        {},
        AccessFile(platform="linux", path="Documents/a"),
        {},
        Effect.DENY,
        "personal_data_zones",
    ),
    (
        "it_needs_a_reason_for_a_zone",
        {},
        AccessFile(platform="windows", path="C:/Users/ana/Desktop/x.txt"),
        {},
        Effect.DENY,
        "personal_data_zones.on_access",
    ),
    (
        "it_asks_zone_consent_with_a_reason",
        {},
        AccessFile(platform="windows", path="C:/Users/ana/Desktop/x.txt", reason="printer config"),
        {"consented": frozenset({"session", "file_transfer"})},
        Effect.REQUIRE_CONSENT,
        "personal_data_zones.on_access",
    ),
    (
        "it_allows_a_consented_zone",
        {},
        AccessFile(platform="windows", path="C:/Users/ana/Desktop/x.txt", reason="printer config"),
        {"consented": frozenset({"zone:desktop"})},
        Effect.ALLOW,
        "personal_data_zones",
    ),
    (
        "it_denies_zones_when_the_policy_says_deny",
        {"personal_data_zones": {"on_access": "deny"}},
        AccessFile(platform="macos", path="/Users/bob/Pictures/a.jpg", reason="r"),
        {"consented": frozenset({"zone:pictures"})},
        Effect.DENY,
        "personal_data_zones.on_access",
    ),
    (
        "it_honours_zone_exceptions",
        {"personal_data_zones": {"exceptions": {"linux": ["/home/*/Documents/shared-it/**"]}}},
        AccessFile(platform="linux", path="/home/ana/Documents/shared-it/fix.sh"),
        {},
        Effect.ALLOW,
        "personal_data_zones.exceptions",
    ),
    # session.extend
    ("it_allows_an_approved_extension", {}, extend(), {}, Effect.ALLOW, "sessions.extension"),
    (
        "it_denies_an_extension_without_a_reason",
        {},
        extend(reason="  "),
        {},
        Effect.DENY,
        "sessions.extension.reason_required",
    ),
    (
        "it_denies_an_extension_beyond_the_maximum",
        {},
        extend(requested=timedelta(minutes=45)),
        {},
        Effect.DENY,
        "sessions.extension.max",
    ),
    (
        "it_denies_a_second_extension",
        {},
        extend(extensions_so_far=1),
        {},
        Effect.DENY,
        "sessions.extension.max_count",
    ),
    (
        "it_asks_approval_for_an_extension",
        {},
        extend(approver_role=None),
        {},
        Effect.REQUIRE_APPROVAL,
        "sessions.extension.approver_role",
    ),
    (
        "it_denies_an_approval_by_a_lower_role",
        {},
        extend(approver_role="technician"),
        {},
        Effect.DENY,
        "sessions.extension.approver_role",
    ),
    (
        "it_never_takes_an_auditor_approval",
        {
            "sessions": {
                **BASE["sessions"],
                "extension": {"max": "30m", "approver_role": "end_user"},
            }
        },
        extend(approver_role="auditor"),
        {},
        Effect.DENY,
        "sessions.extension.approver_role",
    ),
    (
        "it_denies_extensions_when_none_are_allowed",
        {"sessions": {"max_duration": "1h"}},
        extend(),
        {},
        Effect.DENY,
        "sessions.extension",
    ),
    # emergency.declare
    (
        "it_lets_a_supervisor_declare_an_emergency",
        {},
        DeclareEmergency(role="supervisor"),
        {},
        Effect.ALLOW,
        "emergency.declare_roles",
    ),
    (
        "it_denies_a_technician_declaring_an_emergency",
        {},
        DeclareEmergency(role="technician"),
        {},
        Effect.DENY,
        "emergency.declare_roles",
    ),
    # role.permission
    (
        "it_answers_a_permission_through_the_engine",
        {},
        CheckPermission(role="auditor", permission="audit:read"),
        {},
        Effect.ALLOW,
        "roles.auditor",
    ),
    (
        "it_denies_a_permission_the_role_lacks",
        {},
        CheckPermission(role="technician", permission="policy:manage"),
        {},
        Effect.DENY,
        "roles.technician",
    ),
]


@pytest.mark.parametrize(
    ("overrides", "request_", "context", "effect", "rule"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_rule(
    overrides: dict[str, Any], request_: Any, context: dict[str, Any], effect: Effect, rule: str
) -> None:
    policy = make_policy(**overrides)
    decision = evaluate(policy, request_, ctx(**context))
    assert (decision.effect, decision.rule) == (effect, rule), decision.reason
    assert decision.reason
    if not isinstance(request_, CheckPermission):
        assert decision.policy_version == "test/1"
    explanation = explain(policy, request_, ctx(**context))
    assert explanation.decision == decision
    assert rule in [o.rule for o in explanation.trail]


def test_a_session_grant_carries_its_time_limits_and_recording() -> None:
    decision = evaluate(make_policy(), start(), ctx(consented=frozenset({"session"})))
    o = decision.obligations
    assert o.end_at == NOW + timedelta(hours=1)
    assert o.warn_at == NOW + timedelta(minutes=55)
    assert o.record == "required"
    assert o.notify_user is True


def test_a_consent_decision_says_how_to_ask() -> None:
    consent = evaluate(make_policy(), start(), ctx()).obligations.consent
    assert consent is not None
    assert (consent.subject, consent.methods, consent.timeout, consent.on_timeout) == (
        "session",
        ("device_prompt",),
        timedelta(seconds=60),
        "deny",
    )


def test_a_zone_consent_needs_a_reason_and_names_the_zone() -> None:
    decision = evaluate(
        make_policy(),
        AccessFile(platform="linux", path="/home/a/.ssh/id_ed25519", reason="fix key"),
        ctx(),
    )
    assert decision.obligations.zones == ("credentials",)
    assert decision.obligations.consent is not None
    assert decision.obligations.consent.reason_required is True


def test_terminal_grants_end_at_the_capability_limit_and_list_the_zones() -> None:
    decision = evaluate(
        make_policy(),
        cap("terminal", "supervisor", terminal_shell="bash", platform="linux"),
        ctx(consented=frozenset({"terminal"})),
    )
    assert decision.obligations.end_at == NOW + timedelta(minutes=20)
    assert "documents" in decision.obligations.zones


def test_explain_lists_every_rule_even_after_a_deny() -> None:
    explanation = explain(make_policy(), start(mfa_verified=False, trainings={}), ctx(now=SATURDAY))
    rules = [o.rule for o in explanation.trail]
    assert explanation.decision.rule == "staff.mfa_required"
    assert {
        "staff.mfa_required",
        "staff.trainings_required.privacy",
        "support_hours.weekly",
    } <= set(rules)


def test_explain_ends_with_default_when_nothing_grants() -> None:
    empty = make_policy(capabilities={})
    explanation = explain(empty, cap("chat"), ctx())
    assert explanation.decision.effect == Effect.DENY


def test_emergency_decision_lists_the_actions() -> None:
    decision = evaluate(make_policy(), DeclareEmergency(role="admin"), ctx())
    assert decision.obligations.emergency_actions == ("end_all_sessions", "lock_unattended")


@pytest.mark.parametrize("role", list(Role))
@pytest.mark.parametrize("permission", list(Permission))
def test_authorize_agrees_with_the_role_table(role: Role, permission: Permission) -> None:
    decision = authorize(role, permission)
    assert decision.allowed == (permission in ROLE_PERMISSIONS[role])
    assert decision.rule == f"roles.{role}"


def test_authorize_denies_unknown_names_by_default() -> None:
    assert authorize("root", "everything").rule == "default"
    assert authorize("admin", "audit:read").allowed


def test_requests_parse_from_json_by_kind() -> None:
    request = parse_request(
        {"kind": "capability.use", "capability": "chat", "technician_role": "technician"}
    )
    assert isinstance(request, UseCapability)
    extension = parse_request(
        {
            "kind": "session.extend",
            "requested": "15m",
            "current_end_at": "2025-10-07T09:00:00Z",
            "reason": "r",
        }
    )
    assert isinstance(extension, ExtendSession)
    assert extension.requested == timedelta(minutes=15)


def test_the_context_refuses_a_naive_time() -> None:
    with pytest.raises(ValueError, match="timezone"):
        ctx(now=datetime(2025, 1, 1))  # noqa: DTZ001 - the naive value is the point of the test


def test_an_expired_training_says_when_it_expired() -> None:
    # Observed: an expired training was refused as "no record".
    policy = make_policy(staff={"trainings_required": [{"id": "privacy", "max_age": "365d"}]})
    lapsed = NOW - timedelta(days=3)
    decision = evaluate(
        policy, start(trainings={}, trainings_expired={"privacy": lapsed}), ctx()
    )
    assert decision.effect is Effect.DENY and decision.rule.startswith("staff.trainings_required")
    assert f"expired on {lapsed:%Y-%m-%d}" in decision.reason
    too_old = evaluate(policy, start(trainings={"privacy": NOW - timedelta(days=400)}), ctx())
    assert f"expired on {NOW - timedelta(days=35):%Y-%m-%d}" in too_old.reason
    never = evaluate(policy, start(trainings={}), ctx())
    assert "no record of the training 'privacy'" in never.reason
