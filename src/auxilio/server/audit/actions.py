"""Every audited action, shaped ``resource:subject:action``.

A value never changes once shipped: verifiers and reports outside this codebase depend on it.
``docs/audit-events.md`` is generated from this enum (``auxilio admin audit-events-doc``).
"""

from __future__ import annotations

from enum import StrEnum


class AuditAction(StrEnum):
    # Identity
    LOGIN_SUCCEEDED = "identity:login:succeeded"
    LOGIN_FAILED = "identity:login:failed"
    LOGIN_LOCKED = "identity:login:locked"
    TOTP_ENROLMENT_STARTED = "identity:totp:enrolment_started"
    TOTP_ENROLLED = "identity:totp:enrolled"
    TOTP_FAILED = "identity:totp:failed"
    RECOVERY_CODE_USED = "identity:recovery_code:used"
    TOKEN_CREATED = "identity:token:created"  # noqa: S105 -- an audit action name, not a secret
    TOKEN_REVOKED = "identity:token:revoked"  # noqa: S105 -- an audit action name, not a secret
    TOKEN_REJECTED = "identity:token:rejected"  # noqa: S105 -- an audit action name, not a secret
    ACCESS_FORBIDDEN = "identity:access:forbidden"
    ORGANISATION_CREATED = "identity:organisation:created"
    ORGANISATION_KPI_SETTINGS_CHANGED = "identity:organisation:kpi_settings_changed"
    USER_CREATED = "identity:user:created"
    USER_UPDATED = "identity:user:updated"
    USER_DEACTIVATED = "identity:user:deactivated"
    PASSWORD_CHANGED = "identity:password:changed"  # noqa: S105 -- an audit action name, not a secret
    STAFF_PROFILE_UPDATED = "identity:staff_profile:updated"
    TRAINING_RECORDED = "identity:training:recorded"
    TRAINING_REMOVED = "identity:training:removed"
    # Tickets
    TICKET_OPENED = "ticket:ticket:opened"
    TICKET_STATUS_CHANGED = "ticket:status:changed"
    TICKET_ASSIGNED = "ticket:assignment:changed"
    TICKET_AUTO_ASSIGN_FAILED = "ticket:assignment:no_candidate"
    TICKET_COMMENTED = "ticket:comment:added"
    TICKET_TIME_LOGGED = "ticket:time:logged"
    TICKET_UPDATED = "ticket:ticket:updated"
    TICKET_ATTACHMENT_ADDED = "ticket:attachment:added"
    # Devices
    DEVICE_REGISTERED = "device:device:registered"
    DEVICE_LINKED = "device:ticket_link:added"
    ENROLMENT_TOKEN_CREATED = "device:enrolment_token:created"  # noqa: S105 -- an action name
    ENROLMENT_TOKEN_REVOKED = "device:enrolment_token:revoked"  # noqa: S105 -- an action name
    DEVICE_ENROLLED = "device:device:enrolled"
    ENROLMENT_REJECTED = "device:enrolment:rejected"
    ENROLMENT_REUSED = "device:enrolment:reused"
    DEVICE_REVOKED = "device:device:revoked"
    PRE_AUTHORISATION_STORED = "device:pre_authorisation:stored"
    PRE_AUTHORISATION_REVOKED = "device:pre_authorisation:revoked"
    # Policy
    POLICY_VERSION_UPLOADED = "policy:version:uploaded"
    POLICY_VERSION_ACTIVATED = "policy:version:activated"
    POLICY_DECISION_DENIED = "policy:decision:denied"
    POLICY_DECISION_MADE = "policy:decision:made"
    POLICY_PILOT_STARTED = "policy:pilot:started"
    POLICY_PILOT_STOPPED = "policy:pilot:stopped"
    # Support sessions
    SUPPORT_SESSION_REQUESTED = "support_session:session:requested"
    SUPPORT_SESSION_DENIED = "support_session:session:denied"
    SUPPORT_SESSION_OFFERED = "support_session:session:offered"
    SUPPORT_SESSION_ACTIVATED = "support_session:session:activated"
    SUPPORT_SESSION_ENDED = "support_session:session:ended"
    SUPPORT_SESSION_WARNING_SENT = "support_session:warning:sent"
    JOIN_CODE_REJECTED = "support_session:join_code:rejected"
    AGENT_DOWNLOADED = "support_session:agent:downloaded"
    CONSENT_RECORDED = "support_session:consent:recorded"
    RECEIPT_REJECTED = "support_session:receipt:rejected"
    ACTIVITY_REPORTED = "support_session:activity:reported"
    ACTIVITY_GAP = "support_session:activity:gap"
    REPORT_MISMATCH = "support_session:report:mismatch"
    EXTENSION_REQUESTED = "support_session:extension:requested"
    EXTENSION_APPROVED = "support_session:extension:approved"
    EXTENSION_DENIED = "support_session:extension:denied"
    EXTENSION_ACCEPTED = "support_session:extension:accepted"
    EXTENSION_DECLINED = "support_session:extension:declined"
    CAPABILITY_REVOKED = "support_session:capability:revoked"
    E2E_ERROR_REPORTED = "support_session:e2e:error_reported"
    SUMMARY_WRITTEN = "support_session:summary:written"
    # Recordings and auditor keys
    AUDITOR_KEY_CREATED = "recording:auditor_key:created"
    AUDITOR_KEY_ROTATED = "recording:auditor_key:rotated"
    RECORDING_STARTED = "recording:recording:started"
    RECORDING_KEY_STORED = "recording:key:stored"
    RECORDING_EXPORTED = "recording:recording:exported"
    RECORDING_DELETED = "recording:recording:deleted"
    # Runbooks (the catalogue; never the script text, only its digest)
    RUNBOOK_CREATED = "runbook:runbook:created"
    RUNBOOK_APPROVED = "runbook:runbook:approved"
    RUNBOOK_RETIRED = "runbook:runbook:retired"
    RUNBOOK_APPROVAL_REFUSED = "runbook:approval:refused"
    # Automated runs (a runbook or diagnostics with no technician, inside a pre-authorisation)
    AUTOMATION_RUN_SCHEDULED = "automation:run:scheduled"
    AUTOMATION_RUN_SENT = "automation:run:sent"
    AUTOMATION_RUN_DONE = "automation:run:done"
    AUTOMATION_RUN_FAILED = "automation:run:failed"
    AUTOMATION_RUN_REFUSED = "automation:run:refused"
    AUTOMATION_RUN_EXPIRED = "automation:run:expired"
    AUTOMATION_RUN_CANCELLED = "automation:run:cancelled"
    AUTOMATION_RESULT_REFUSED = "automation:result:refused"
    # Emergency mode (R18)
    EMERGENCY_DECLARED = "emergency:emergency:declared"
    EMERGENCY_LIFTED = "emergency:emergency:lifted"
    EMERGENCY_ESCALATED = "emergency:escalation:notified"
    # Surveys after a session or a resolved ticket (docs/surveys.md)
    SURVEY_CREATED = "survey:survey:created"
    SURVEY_SENT = "survey:survey:sent"
    SURVEY_LINK_RENEWED = "survey:link:renewed"
    SURVEY_ANSWERED = "survey:survey:answered"
    SURVEY_DECLINED = "survey:survey:declined"
    SURVEY_EXPIRED = "survey:survey:expired"
    # Audit itself
    AUDIT_EXPORTED = "audit:log:exported"
    AUDIT_FAILURES_SUMMARISED = "audit:failures:summarised"


DESCRIPTIONS: dict[AuditAction, str] = {
    AuditAction.LOGIN_SUCCEEDED: "A person logged in (password and, where required, TOTP).",
    AuditAction.LOGIN_FAILED: "A login failed: unknown email, wrong password or wrong TOTP code.",
    AuditAction.LOGIN_LOCKED: "A login was refused because the account or address is locked out.",
    AuditAction.TOTP_ENROLMENT_STARTED: "A TOTP secret was issued; not active until confirmed.",
    AuditAction.TOTP_ENROLLED: "TOTP was confirmed with a valid code and is now required.",
    AuditAction.TOTP_FAILED: "A TOTP or recovery code was wrong, expired or replayed.",
    AuditAction.RECOVERY_CODE_USED: "A single-use recovery code was spent.",
    AuditAction.TOKEN_CREATED: "An API or login token was issued.",
    AuditAction.TOKEN_REVOKED: "A token was revoked.",
    AuditAction.TOKEN_REJECTED: "A request carried an unknown, expired or revoked token (the "
    "first from an address in a minute; the rest are counted in audit:failures:summarised).",
    AuditAction.ACCESS_FORBIDDEN: "A request was denied by the role -> permission rules.",
    AuditAction.ORGANISATION_CREATED: "An organisation was created.",
    AuditAction.ORGANISATION_KPI_SETTINGS_CHANGED: "The organisation's KPI settings (cost rates, "
    "per-session cost, SLA targets) were replaced (details: before, after).",
    AuditAction.USER_CREATED: "A user account was created.",
    AuditAction.USER_UPDATED: "A user's name, role or activity changed.",
    AuditAction.USER_DEACTIVATED: "A user account was deactivated.",
    AuditAction.PASSWORD_CHANGED: "A password was changed.",
    AuditAction.STAFF_PROFILE_UPDATED: "Skills, time zone, working hours, languages, team or "
    "hourly cost changed.",
    AuditAction.TRAINING_RECORDED: "A training completion was recorded for a staff member.",
    AuditAction.TRAINING_REMOVED: "A training record was withdrawn from a staff member.",
    AuditAction.TICKET_OPENED: "A ticket was opened.",
    AuditAction.TICKET_STATUS_CHANGED: "A ticket moved between states (details: from, to).",
    AuditAction.TICKET_ASSIGNED: "A ticket's assignee changed, by hand or automatically.",
    AuditAction.TICKET_AUTO_ASSIGN_FAILED: "Automatic assignment found no eligible technician.",
    AuditAction.TICKET_COMMENTED: "A public or internal comment was added.",
    AuditAction.TICKET_TIME_LOGGED: "Technician time was logged against a ticket.",
    AuditAction.TICKET_UPDATED: "A ticket's title, category or priority changed.",
    AuditAction.TICKET_ATTACHMENT_ADDED: "A result was attached to a ticket (details: kind, "
    "size, sha256, support_session_id; never the content or its name).",
    AuditAction.DEVICE_REGISTERED: "A device was registered to its owner.",
    AuditAction.DEVICE_LINKED: "A device was linked to a ticket.",
    AuditAction.ENROLMENT_TOKEN_CREATED: "An enrolment token was made for a device group and "
    "owner (details: token_id, label, device_group, owner_id, expires_at; never the token).",
    AuditAction.ENROLMENT_TOKEN_REVOKED: "An unused enrolment token was revoked (details: "
    "token_id, device_group).",
    AuditAction.DEVICE_ENROLLED: "An agent enrolled a device with a token and a proof signed by "
    "its key for this server (details: token_id, device_group, owner_id, platform, "
    "fingerprint, agent_version).",
    AuditAction.ENROLMENT_REJECTED: "An enrolment was refused: unknown, expired or revoked token, "
    "a bad proof, or a device key already enrolled (details: code; the first from an address "
    "in a minute, the rest counted in audit:failures:summarised).",
    AuditAction.ENROLMENT_REUSED: "An enrolment token that already enrolled a device was "
    "presented again, perhaps stolen (details: token_id, device_id it enrolled, used_at, the "
    "fingerprint of the key presented); no device was made.",
    AuditAction.DEVICE_REVOKED: "The organisation revoked an enrolled device, with a reason: its "
    "pre-authorisations are void, its live sessions ended with reason device_revoked, its "
    "connection closed (details: reason, pre_authorisations, support_sessions_ended).",
    AuditAction.PRE_AUTHORISATION_STORED: "The server stored an owner's pre-authorisation for "
    "unattended access, verified with the device's key (details: pre_authorisation_id, "
    "owner_name, scope, automated_runs, window, device_fingerprint).",
    AuditAction.PRE_AUTHORISATION_REVOKED: "The owner's signed revocation of a pre-authorisation "
    "was recorded; live unattended sessions on it end at once (details: pre_authorisation_id, "
    "revoked_at as signed, reason).",
    AuditAction.POLICY_VERSION_UPLOADED: "A policy version was stored.",
    AuditAction.POLICY_VERSION_ACTIVATED: "A policy version became the organisation's active one.",
    AuditAction.POLICY_PILOT_STARTED: "A policy version was set to pilot on one device group for "
    "a period (details: number, sha256, device_group, starts_at, ends_at).",
    AuditAction.POLICY_PILOT_STOPPED: "A policy pilot was stopped; its group is decided by the "
    "active policy again (details: device_group, started).",
    AuditAction.POLICY_DECISION_DENIED: "The policy engine denied a support action "
    "(details: request, context, rule path, policy version).",
    AuditAction.POLICY_DECISION_MADE: "The policy engine allowed a support action, or allowed it "
    "under consent or approval (details as for denied); replayed by `policy simulate`.",
    AuditAction.SUPPORT_SESSION_REQUESTED: "A technician requested a support session; the "
    "policy allowed it (details: rule, policy version, mode, capabilities).",
    AuditAction.SUPPORT_SESSION_DENIED: "A support session request was denied by the policy "
    "(details: rule, reason, policy version).",
    AuditAction.SUPPORT_SESSION_OFFERED: "An agent joined with a valid code; the signed grant "
    "and consent prompt were sent to the device.",
    AuditAction.SUPPORT_SESSION_ACTIVATED: "The person consented to at least one capability; "
    "the support session is active (details: granted, not_after).",
    AuditAction.SUPPORT_SESSION_ENDED: "A support session ended, was rejected or expired "
    "(details: ended_by, reason, detail).",
    AuditAction.SUPPORT_SESSION_WARNING_SENT: "Both peers were warned that the time limit is near.",
    AuditAction.AGENT_DOWNLOADED: "The single-file agent was downloaded from the join page for "
    "a live join code, with the server's signed trailer (details: platform, build_sha256, "
    "size, expires_at).",
    AuditAction.JOIN_CODE_REJECTED: "An agent offered a wrong, expired or already used join code "
    "(the first from an address in a minute; the rest are counted in audit:failures:summarised).",
    AuditAction.CONSENT_RECORDED: "A device-signed consent receipt was verified and stored "
    "(details: each capability's decision).",
    AuditAction.RECEIPT_REJECTED: "A consent receipt was refused: bad signature, malformed, or "
    "not for this grant.",
    AuditAction.ACTIVITY_REPORTED: "The agent reported an action: its kind, capability, time "
    "and source, and the SHA-256 of its details sealed to the auditor key; never the details.",
    AuditAction.ACTIVITY_GAP: "An activity report arrived out of sequence: the ones between "
    "were lost or dropped on the way (details: expected and received sequence numbers).",
    AuditAction.REPORT_MISMATCH: "The device says the session report disagrees with its own "
    "log (details: each differing field with both values).",
    AuditAction.EXTENSION_REQUESTED: "A longer support session was requested, with a reason.",
    AuditAction.EXTENSION_APPROVED: (
        "An extension was allowed by the policy (and an approver); its grant went to the device "
        "for the person's answer."
    ),
    AuditAction.EXTENSION_ACCEPTED: (
        "The person accepted an extension on the device (signed answer); the session's end moved."
    ),
    AuditAction.EXTENSION_DECLINED: (
        "The person refused an extension, or did not answer in time; the end did not move."
    ),
    AuditAction.EXTENSION_DENIED: "An extension was refused by the policy or an approver.",
    AuditAction.CAPABILITY_REVOKED: "A capability was revoked during a support session.",
    AuditAction.E2E_ERROR_REPORTED: "A peer reported an end-to-end error (replayed, altered, "
    "truncated frame...) and the support session ended.",
    AuditAction.SUMMARY_WRITTEN: "The technician wrote the summary of an ended support session.",
    AuditAction.AUDITOR_KEY_CREATED: "An organisation's first auditor public key was stored.",
    AuditAction.AUDITOR_KEY_ROTATED: (
        "A new auditor public key replaced the organisation's current one (rotation)."
    ),
    AuditAction.RECORDING_STARTED: (
        "A support session will be recorded (ciphertext only), sealed to the named auditor key."
    ),
    AuditAction.RECORDING_KEY_STORED: (
        "The agent's sealed E2E keys of one handshake epoch of a recording were stored."
    ),
    AuditAction.RECORDING_EXPORTED: "A recording was opened for export with the auditor key.",
    AuditAction.RECORDING_DELETED: "A recording past its retention was deleted.",
    AuditAction.RUNBOOK_CREATED: "A runbook draft (a new version of a runbook id) was written "
    "(details: runbook_id, version, author, SHA-256 of the script; never the script).",
    AuditAction.RUNBOOK_APPROVED: "A runbook version was approved and signed by the server key "
    "(details: runbook_id, version, digest of the signed body, author, approver, the version "
    "it retired).",
    AuditAction.RUNBOOK_RETIRED: "A runbook version was retired: it is no longer served or "
    "pinned in grants (details: runbook_id, version, digest).",
    AuditAction.RUNBOOK_APPROVAL_REFUSED: "An approval was refused by the active policy "
    "(details: runbook_id, version, code, rule: approver_roles, two_person, max_timeout or the "
    "missing runbooks capability).",
    AuditAction.AUTOMATION_RUN_SCHEDULED: "An automated run was scheduled on an enrolled device "
    "after the policy (mode automated, the unattended rules) and a pre-authorisation covering "
    "its due time allowed it, or as the next of a repeating run (details: device_id, kind, "
    "runbook_id, version, ticket_id, pre_authorisation_id, due_at, repeat_seconds).",
    AuditAction.AUTOMATION_RUN_SENT: "The server signed an automated run's order and sent it to "
    "the device, after checking the pre-authorisation, the device and the pinned runbook again "
    "(details: device_id, kind, runbook_id, version, not_after).",
    AuditAction.AUTOMATION_RUN_DONE: "The device's signed result of an automated run was "
    "verified and stored, and attached to the ticket (details: code, exit_code, "
    "output_sha256, attachment_id).",
    AuditAction.AUTOMATION_RUN_FAILED: "An automated run ran and failed, by the device's signed "
    "result (details: code such as runbook.exit_nonzero or runbook.timed_out, exit_code, "
    "output_sha256, attachment_id).",
    AuditAction.AUTOMATION_RUN_REFUSED: "An automated run was refused: when asked for (the "
    "policy or no pre-authorisation: details: code, rule), at send time (the "
    "pre-authorisation revoked or expired, the device revoked, the runbook changed) or by the "
    "device itself in its signed result (details: code).",
    AuditAction.AUTOMATION_RUN_EXPIRED: "An automated run was not carried out in time: its "
    "window shut while the device was offline or during an emergency, or no result came "
    "(details: code).",
    AuditAction.AUTOMATION_RUN_CANCELLED: "Staff cancelled a scheduled or sent automated run "
    "(details: previous_state).",
    AuditAction.AUTOMATION_RESULT_REFUSED: "A device sent an automated run's result the server "
    "did not take: not signed by its key, tampered, another run's id or nonce, or a replay "
    "(details: run_id, code).",
    AuditAction.EMERGENCY_DECLARED: "An emergency was declared with a reason; the policy's "
    "emergency.declare_roles allowed it (details: reason, actions, escalate_to, rule, policy "
    "version, sessions_ended). Each session it ended has its own support_session:session:ended "
    "with reason emergency.",
    AuditAction.EMERGENCY_LIFTED: "The organisation's emergency was lifted, with a reason "
    "(details: emergency_id, reason, declared_at, duration_seconds).",
    AuditAction.EMERGENCY_ESCALATED: "The policy's escalation contacts were notified of an "
    "emergency in the console (details: contacts, channel; no email exists yet).",
    AuditAction.SURVEY_CREATED: "A satisfaction survey was made for a session that ended or a "
    "ticket resolved, sampled in by the policy's post_session.survey (details: subject, "
    "ticket_id, support_session_id, policy_version, send_after).",
    AuditAction.SURVEY_SENT: "A survey became answerable by its person (details: subject, "
    "expires_at).",
    AuditAction.SURVEY_LINK_RENEWED: "The person asked for a new survey link; the old one no "
    "longer works (details: subject).",
    AuditAction.SURVEY_ANSWERED: "The person answered a survey, once (details: subject, score, "
    "via, comment_length).",
    AuditAction.SURVEY_DECLINED: "The person declined a survey (details: subject, via).",
    AuditAction.SURVEY_EXPIRED: "A survey was not answered in time (details: subject).",
    AuditAction.AUDIT_EXPORTED: "The audit log was exported.",
    AuditAction.AUDIT_FAILURES_SUMMARISED: "Unauthenticated failures of one kind from one address "
    "in one minute, after the first (details: action, client_addr, minute, count, reasons; "
    'client_addr "*" when the per-minute address cap was reached, with the number of addresses).',
}
