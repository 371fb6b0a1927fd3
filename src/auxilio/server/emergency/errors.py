"""The emergency service's errors, each with its stable code (docs/emergency.md)."""

from __future__ import annotations

from auxilio.server.errors import Conflict, ValidationFailed


class EmergencyAlreadyActive(Conflict):
    code = "emergency.already_active"
    default_message = "The organisation already has an active emergency; lift it first."


class EmergencyNotActive(Conflict):
    code = "emergency.not_active"
    default_message = "The organisation has no active emergency to lift."


class EmergencyReasonRequired(ValidationFailed):
    code = "emergency.reason_required"
    default_message = "Say why: a reason is required."


class EmergencyReasonTooLong(ValidationFailed):
    code = "emergency.reason_too_long"
    default_message = "The reason is too long."


class EmergencyReasonInvalid(ValidationFailed):
    code = "emergency.reason_invalid"
    default_message = "The reason holds a control or bidirectional override character."
