"""The DomainError hierarchy: every error a service raises, each with a stable ``code``.

Codes never change once shipped. The HTTP mapping lives only in ``auxilio.server.api.errors``.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    code: ClassVar[str] = "error"
    status: ClassVar[int] = 400
    default_message: ClassVar[str] = "The request could not be completed."

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or self.default_message
        self.details = details
        super().__init__(self.message)


class BadRequest(DomainError):
    code = "bad_request"


class ValidationFailed(DomainError):
    code = "validation_failed"
    status = 422
    default_message = "The request is not valid."


class Unauthenticated(DomainError):
    code = "unauthenticated"
    status = 401
    default_message = "Authentication is required."


class InvalidCredentials(Unauthenticated):
    code = "invalid_credentials"
    default_message = "The email or password is wrong."


class MfaRequired(Unauthenticated):
    code = "mfa_required"
    default_message = "A TOTP code is required."


class MfaEnrolmentRequired(DomainError):
    code = "mfa_enrolment_required"
    status = 403
    default_message = "Two-factor authentication must be enrolled before logging in."


class InvalidTotp(Unauthenticated):
    code = "invalid_totp"
    default_message = "The TOTP or recovery code is wrong, expired or already used."


class TokenInvalid(Unauthenticated):
    code = "token_invalid"
    default_message = "The token is unknown, expired or revoked."


class Forbidden(DomainError):
    code = "forbidden"
    status = 403
    default_message = "You are not allowed to do this."


class PolicyDenied(Forbidden):
    code = "policy_denied"
    default_message = "The policy does not allow this."


class NotFound(DomainError):
    code = "not_found"
    status = 404
    default_message = "Not found."


class Conflict(DomainError):
    code = "conflict"
    status = 409
    default_message = "The request conflicts with the current state."


class IllegalTransition(Conflict):
    code = "illegal_transition"
    default_message = "That state change is not allowed from the current state."


class AlreadyExists(Conflict):
    code = "already_exists"
    default_message = "It already exists."


class PayloadTooLarge(DomainError):
    code = "payload_too_large"
    status = 413
    default_message = "The request body is too large."


class AccountLocked(DomainError):
    code = "account_locked"
    status = 429
    default_message = "Too many failed attempts; try again later."


class RateLimited(DomainError):
    code = "rate_limited"
    status = 429
    default_message = "Too many requests; try again later."


class NotStaff(Conflict):
    code = "not_staff"
    default_message = "Only staff members have a profile."


class TicketNotFound(NotFound):
    code = "ticket_not_found"
    default_message = "No such ticket."


class DeviceNotFound(NotFound):
    code = "device_not_found"
    default_message = "No such device."


class InvalidRequester(DomainError):
    code = "invalid_requester"
    status = 422
    default_message = "A ticket's requester must be an active end user of your organisation."


class InvalidAssignee(DomainError):
    code = "invalid_assignee"
    status = 422
    default_message = "The assignee must be an active technician of your organisation."


class DeviceNotOwned(DomainError):
    code = "device_not_owned"
    status = 422
    default_message = "The device does not belong to the ticket's requester."


class TicketNotActive(Conflict):
    code = "ticket_not_active"
    default_message = "Resolved and closed tickets cannot be assigned."


# ---- support sessions ------------------------------------------------------------------------


class ApprovalRequired(Forbidden):
    code = "approval_required"
    default_message = "The policy requires an approval for this."


class SupportSessionNotFound(NotFound):
    code = "support_session_not_found"
    default_message = "No such support session."


class ExtensionNotFound(NotFound):
    code = "extension_not_found"
    default_message = "No such extension request."


class SupportSessionNotEnded(Conflict):
    code = "support_session_not_ended"
    default_message = "The summary can be written only after the support session ended."


class SupportSessionNotActive(Conflict):
    code = "support_session_not_active"
    default_message = "The support session is not active."


class ExtensionNotPending(Conflict):
    code = "extension_not_pending"
    default_message = "The extension was already decided."


class ExtensionInProgress(Conflict):
    code = "extension_in_progress"
    default_message = "Another extension of this session awaits an approver or the person."


class InvalidCapabilities(DomainError):
    code = "invalid_capabilities"
    status = 422
    default_message = "The capabilities are not valid for this mode."


class CapabilityUnavailable(DomainError):
    """A capability that no agent of this version can deliver: it is never offered."""

    code = "capability_unavailable"
    status = 422
    default_message = "No agent can deliver this capability yet."


class SummaryNotApplicable(Conflict):
    code = "summary_not_applicable"
    default_message = "The support session never became active: there is nothing to summarise."


# ---- runbooks (details carry ``rule``: the policy path that refused, where one did) ----------


class RunbookNotFound(NotFound):
    code = "runbook.not_found"
    default_message = "No such runbook (or version) in the organisation's catalogue."


class RunbookNotInCatalogue(DomainError):
    """Asked for in a support session, but with no approved version (details: ``ids``)."""

    code = "runbook.not_in_catalogue"
    status = 422
    default_message = "These runbooks have no approved version in the catalogue."


class RunbookInvalid(ValidationFailed):
    """A draft that is not a valid runbook (details: ``field``, the first, and ``problems``)."""

    code = "runbook.invalid"
    default_message = "The runbook is not valid."


class RunbookNotDraft(Conflict):
    code = "runbook.not_draft"
    default_message = "Only a draft can be approved."


class RunbookAlreadyRetired(Conflict):
    code = "runbook.already_retired"
    default_message = "This runbook version is already retired."


class RunbookSignatureInvalid(Conflict):
    """The stored signed document no longer verifies with the server's key (the key changed, or
    the row was altered): it is not served; approve a new version."""

    code = "runbook.signature_invalid"
    default_message = "The stored signature of this runbook does not verify with the server key."


class RunbooksNotAllowed(PolicyDenied):
    code = "runbook.capability_absent"
    default_message = "The active policy has no runbooks capability: nothing can be approved."


class RunbookApproverRefused(PolicyDenied):
    code = "runbook.approver_role"
    default_message = "The active policy does not name your role among the runbook approvers."


class RunbookSamePerson(PolicyDenied):
    code = "runbook.same_person"
    default_message = "The policy asks for two people: the author cannot approve their runbook."


class RunbookTimeoutTooLong(PolicyDenied):
    code = "runbook.timeout_too_long"
    default_message = "The runbook's time limit is above the policy's max_timeout."


# ---- enrolment and enrolled devices (docs/unattended.md) -------------------------------------


class EnrolmentRefused(DomainError):
    """An agent's enrolment refused; audited, and the audit committed before the answer."""

    code = "enrolment.refused"


class EnrolmentTokenInvalid(EnrolmentRefused):
    code = "enrolment.token_invalid"
    status = 401
    default_message = "The enrolment token is not known to this server."


class EnrolmentTokenExpired(EnrolmentRefused):
    code = "enrolment.token_expired"
    status = 410
    default_message = "The enrolment token has expired; ask for a new one."


class EnrolmentTokenUsed(EnrolmentRefused):
    code = "enrolment.token_used"
    status = 409
    default_message = "The enrolment token was already used to enrol a device."


class EnrolmentTokenRevoked(EnrolmentRefused):
    code = "enrolment.token_revoked"
    status = 410
    default_message = "The enrolment token was revoked."


class EnrolmentProofInvalid(EnrolmentRefused):
    code = "enrolment.proof_invalid"
    default_message = "The enrolment proof is not signed by the device key for this server."


class EnrolmentKeyInUse(EnrolmentRefused):
    code = "enrolment.key_in_use"
    status = 409
    default_message = "This device key is already enrolled as another device."


class EnrolmentTokenNotFound(NotFound):
    code = "enrolment.token_not_found"
    default_message = "No such enrolment token."


class EnrolmentTokenAlreadyRevoked(Conflict):
    code = "enrolment.token_already_revoked"
    default_message = "The enrolment token is already revoked."


class EnrolmentGroupInvalid(ValidationFailed):
    code = "enrolment.group_invalid"
    default_message = "The device group must be a short name (1 to 64 characters, one line)."


class EnrolmentOwnerInvalid(ValidationFailed):
    code = "enrolment.owner_invalid"
    default_message = "The device's owner must be an active end user of your organisation."


class EnrolmentExpiryInvalid(ValidationFailed):
    code = "enrolment.expiry_invalid"
    default_message = "An enrolment token expires after 1 to 720 hours."


class DeviceAlreadyRevoked(Conflict):
    code = "device.already_revoked"
    default_message = "The device is already revoked."


class DeviceRevokeReasonInvalid(ValidationFailed):
    code = "device.reason_invalid"
    default_message = "Say why the device is revoked: 1 to 2000 characters, no control characters."


# ---- reporting (docs/kpis.md) ----------------------------------------------------------------


class ReportPeriodInvalid(ValidationFailed):
    code = "report.period_invalid"
    default_message = (
        "The period needs a start and an end (ISO 8601 dates or times), the end after the start."
    )


class ReportPeriodTooLong(ValidationFailed):
    code = "report.period_too_long"
    default_message = "A report covers at most 400 days."


class ReportMonthInvalid(ValidationFailed):
    code = "report.month_invalid"
    default_message = "The month must be written YYYY-MM (2026-11), between 2000-01 and 2999-12."


class ReportSliceUnknown(ValidationFailed):
    code = "report.slice_unknown"
    default_message = (
        "Slice by one of: team, technician, category, channel, priority, device_group, "
        "policy_version."
    )


class ReportBucketUnknown(ValidationFailed):
    code = "report.bucket_unknown"
    default_message = "A trend is bucketed by day or week."


class ReportFormatUnknown(ValidationFailed):
    code = "report.format_unknown"
    default_message = "That format is not offered here."


class ReportFilterInvalid(ValidationFailed):
    code = "report.filter_invalid"
    default_message = "A filter's value is not valid (one line, 1 to 200 characters)."


# ---- surveys (docs/surveys.md) ---------------------------------------------------------------


class SurveyNotFound(NotFound):
    """Unknown, not sent yet, or another person's: a survey outside the caller's is never
    "forbidden", so its existence is not disclosed."""

    code = "survey.not_found"
    default_message = "No such survey."


class SurveyLinkInvalid(DomainError):
    """Malformed, not signed by this server, or replaced by a newer link (its nonce)."""

    code = "survey.link_invalid"
    status = 403
    default_message = "This survey link is not valid."


class SurveyLinkExpired(DomainError):
    code = "survey.link_expired"
    status = 410
    default_message = "This survey has expired."


class SurveyAlreadyAnswered(Conflict):
    code = "survey.already_answered"
    default_message = "This survey was already answered or declined."


class SurveyWrongSubject(Forbidden):
    code = "survey.wrong_subject"
    default_message = "This survey link belongs to another session or ticket."


class SurveyNotThePerson(Forbidden):
    code = "survey.not_the_person"
    default_message = "A survey is the person's own: staff cannot answer it for them."


class SurveyScoreOutOfScale(ValidationFailed):
    code = "survey.score_out_of_scale"
    default_message = "The score is outside the survey's scale."


class SurveyCommentTooLong(ValidationFailed):
    code = "survey.comment_too_long"
    default_message = "A comment holds at most 2000 characters."


class SurveyCommentInvalid(ValidationFailed):
    code = "survey.comment_invalid"
    default_message = "A comment may not hold control or bidirectional characters."
