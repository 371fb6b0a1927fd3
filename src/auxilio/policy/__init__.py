"""Auxilio's policy engine: a pure package (no I/O, no clock) shared by server and agent.

Load a document with :func:`parse_policy`, ask with :func:`evaluate` (or :func:`explain` for the
trail of rules), and answer route permissions with :func:`authorize`.  See docs/policy.md.
"""

from auxilio.policy.compiled import CompiledPolicy, compile_policy
from auxilio.policy.decision import (
    ConsentObligation,
    Decision,
    Effect,
    Explanation,
    Obligations,
    RuleOutcome,
)
from auxilio.policy.engine import authorize, evaluate, explain
from auxilio.policy.errors import ERROR_CODES, PolicyError, PolicyInvalid
from auxilio.policy.hours import holidays_from_ical
from auxilio.policy.loader import parse_policy
from auxilio.policy.requests import (
    AccessFile,
    CheckPermission,
    DeclareEmergency,
    EvaluationContext,
    ExtendSession,
    Request,
    StartSupportSession,
    UseCapability,
    UseExternalTool,
    parse_request,
)
from auxilio.policy.roles import Permission, Role
from auxilio.policy.schema import Holiday, Platform, Policy, SessionMode, review_overdue
from auxilio.policy.templates import list_templates, load_template
from auxilio.policy.zones import Zone, match_zone

__all__ = [
    "ERROR_CODES",
    "AccessFile",
    "CheckPermission",
    "CompiledPolicy",
    "ConsentObligation",
    "Decision",
    "DeclareEmergency",
    "Effect",
    "EvaluationContext",
    "Explanation",
    "ExtendSession",
    "Holiday",
    "Obligations",
    "Permission",
    "Platform",
    "Policy",
    "PolicyError",
    "PolicyInvalid",
    "Request",
    "Role",
    "RuleOutcome",
    "SessionMode",
    "StartSupportSession",
    "UseCapability",
    "UseExternalTool",
    "Zone",
    "authorize",
    "compile_policy",
    "evaluate",
    "explain",
    "holidays_from_ical",
    "list_templates",
    "load_template",
    "match_zone",
    "parse_policy",
    "parse_request",
    "review_overdue",
]
