"""Roles and permissions: the single role -> permission table.

Every route asks one permission; the engine (``auxilio.policy.engine``) answers it from this
table so that there is one place that decides.  Anything not listed is denied.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    END_USER = "end_user"
    TECHNICIAN = "technician"
    SENIOR_TECHNICIAN = "senior_technician"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"
    AUDITOR = "auditor"


STAFF_ROLES: frozenset[Role] = frozenset(
    {Role.TECHNICIAN, Role.SENIOR_TECHNICIAN, Role.SUPERVISOR, Role.ADMIN, Role.AUDITOR}
)


class Permission(StrEnum):
    ORG_READ = "org:read"
    ORG_MANAGE = "org:manage"
    USER_READ_SELF = "user:read_self"
    USER_READ = "user:read"
    USER_MANAGE = "user:manage"
    STAFF_MANAGE = "staff:manage"
    TOKEN_MANAGE_OWN = "token:manage_own"  # noqa: S105 - a permission name, not a secret
    # Reading is granted to every role; what each one sees is narrowed in the service by
    # ticket:read_all vs ticket:read_own (likewise for devices and support sessions).
    TICKET_READ = "ticket:read"
    DEVICE_READ = "device:read"
    SUPPORT_SESSION_READ = "support_session:read"
    TICKET_CREATE = "ticket:create"
    TICKET_READ_OWN = "ticket:read_own"
    TICKET_READ_ALL = "ticket:read_all"
    TICKET_UPDATE = "ticket:update"
    TICKET_ASSIGN = "ticket:assign"
    TICKET_COMMENT = "ticket:comment"
    TICKET_COMMENT_INTERNAL = "ticket:comment_internal"
    DEVICE_REGISTER_OWN = "device:register_own"
    DEVICE_READ_OWN = "device:read_own"
    DEVICE_READ_ALL = "device:read_all"
    # Unattended access: making enrolment tokens, revoking an enrolled device, scheduling
    # automated runs. Whether a given connection or run is allowed is the policy's unattended
    # rules and the owner's pre-authorisation; these only gate who may ask.
    DEVICE_ENROL = "device:enrol"
    DEVICE_REVOKE = "device:revoke"
    AUTOMATION_MANAGE = "automation:manage"
    AUDIT_READ = "audit:read"
    POLICY_READ = "policy:read"
    POLICY_MANAGE = "policy:manage"
    SUPPORT_SESSION_REQUEST = "support_session:request"
    SUPPORT_SESSION_READ_OWN = "support_session:read_own"
    SUPPORT_SESSION_READ_ALL = "support_session:read_all"
    SUPPORT_SESSION_APPROVE = "support_session:approve"
    SUPPORT_SESSION_END_ANY = "support_session:end_any"
    EMERGENCY_DECLARE = "emergency:declare"
    REPORT_READ = "report:read"
    # The runbook catalogue: reading it, writing drafts (and retiring), asking to approve. Who
    # may actually approve is the active policy's capabilities.runbooks.approver_roles.
    RUNBOOK_READ = "runbook:read"
    RUNBOOK_WRITE = "runbook:write"
    RUNBOOK_APPROVE = "runbook:approve"


_P = Permission

_EVERYONE = {_P.TICKET_READ, _P.DEVICE_READ, _P.SUPPORT_SESSION_READ}
_END_USER = _EVERYONE | {
    _P.USER_READ_SELF, _P.TOKEN_MANAGE_OWN, _P.TICKET_CREATE, _P.TICKET_READ_OWN,
    _P.TICKET_COMMENT, _P.DEVICE_REGISTER_OWN, _P.DEVICE_READ_OWN, _P.SUPPORT_SESSION_READ_OWN,
    _P.POLICY_READ,
}
_TECHNICIAN = _EVERYONE | {
    _P.USER_READ_SELF, _P.USER_READ, _P.TOKEN_MANAGE_OWN, _P.ORG_READ, _P.TICKET_CREATE,
    _P.TICKET_READ_ALL, _P.TICKET_UPDATE, _P.TICKET_COMMENT, _P.TICKET_COMMENT_INTERNAL,
    _P.DEVICE_READ_ALL, _P.SUPPORT_SESSION_REQUEST, _P.SUPPORT_SESSION_READ_ALL, _P.POLICY_READ,
    _P.RUNBOOK_READ, _P.RUNBOOK_APPROVE,
}
_SENIOR = _TECHNICIAN | {
    _P.TICKET_ASSIGN, _P.SUPPORT_SESSION_APPROVE, _P.RUNBOOK_WRITE, _P.DEVICE_ENROL,
    _P.AUTOMATION_MANAGE,
}
_SUPERVISOR = _SENIOR | {
    _P.STAFF_MANAGE, _P.REPORT_READ, _P.EMERGENCY_DECLARE, _P.SUPPORT_SESSION_END_ANY,
    _P.DEVICE_REVOKE,
}
_ADMIN = _SUPERVISOR | {_P.ORG_MANAGE, _P.USER_MANAGE, _P.AUDIT_READ, _P.POLICY_MANAGE}
# An auditor reads everything that is evidence and never writes (its own tokens aside).
_AUDITOR = _EVERYONE | {
    _P.USER_READ_SELF, _P.USER_READ, _P.TOKEN_MANAGE_OWN, _P.ORG_READ, _P.TICKET_READ_ALL,
    _P.DEVICE_READ_ALL, _P.AUDIT_READ, _P.POLICY_READ, _P.SUPPORT_SESSION_READ_ALL,
    _P.REPORT_READ, _P.RUNBOOK_READ,
}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.END_USER: frozenset(_END_USER),
    Role.TECHNICIAN: frozenset(_TECHNICIAN),
    Role.SENIOR_TECHNICIAN: frozenset(_SENIOR),
    Role.SUPERVISOR: frozenset(_SUPERVISOR),
    Role.ADMIN: frozenset(_ADMIN),
    Role.AUDITOR: frozenset(_AUDITOR),
}


def role_has_permission(role: Role, permission: Permission) -> bool:
    """The raw table lookup; callers go through the engine's ``authorize``."""
    return permission in ROLE_PERMISSIONS.get(role, frozenset())
