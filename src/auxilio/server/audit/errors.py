"""Errors of the audit domain."""

from __future__ import annotations

from auxilio.server.errors import DomainError


class AuditHeadInvalid(DomainError):
    """The head of a chain was not written by this server: appending to it would sign over a
    rewritten or truncated chain, so nothing more is recorded (and no state change commits)
    until an operator has run ``auxilio audit verify``."""

    code = "audit_head_invalid"
    status = 503
    default_message = (
        "The audit log's head does not carry the server's signature; changes are refused "
        "until an operator has verified the audit log."
    )
