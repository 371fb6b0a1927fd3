"""Builders shared by the policy tests: a small valid policy, and requests with sane defaults."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml

from auxilio.policy import EvaluationContext, Policy, StartSupportSession, parse_policy

# Tuesday 2025-10-07 10:00 in Madrid (UTC+2 in October).
NOW = datetime(2025, 10, 7, 8, 0, tzinfo=UTC)

BASE: dict[str, Any] = {
    "version": 1,
    "name": "test",
    "support_hours": {
        "timezone": "Europe/Madrid",
        "weekly": {"mon-fri": ["08:00-18:00"]},
        "holidays": [{"date": "2025-12-25", "name": "Navidad"}],
        "outside_hours": "deny",
    },
    "consent": {"required": True, "methods": ["device_prompt"], "timeout": "60s"},
    "capabilities": {
        "chat": {"roles": ["technician", "supervisor"]},
        "screen_view": {"roles": ["technician", "supervisor"]},
        "terminal": {"roles": ["supervisor"], "shells": ["bash"], "max_duration": "20m"},
        "file_transfer": {"roles": ["technician"], "direction": "download", "max_size": "10MB"},
        "runbooks": {"roles": ["technician"], "approved": ["clear-cache"]},
        "external_tools": {"rdp": {"roles": ["supervisor"]}},
    },
    "personal_data_zones": {"on_access": "require_consent"},
    "sessions": {
        "max_duration": "1h",
        "warn_before": "5m",
        "recording": "required",
        "extension": {"max": "30m", "max_count": 1, "approver_role": "supervisor"},
    },
    "staff": {"mfa_required": True, "trainings_required": [{"id": "privacy", "max_age": "365d"}]},
}


def policy_dict(**overrides: Any) -> dict[str, Any]:
    """BASE with sections replaced (``None`` removes a section)."""
    data = copy.deepcopy(BASE)
    for key, value in overrides.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def make_policy(**overrides: Any) -> Policy:
    return parse_policy(yaml.safe_dump(policy_dict(**overrides)), version_label="test/1")


def ctx(now: datetime = NOW, **kwargs: Any) -> EvaluationContext:
    return EvaluationContext(now=now, **kwargs)


def start(**kwargs: Any) -> StartSupportSession:
    fields: dict[str, Any] = {
        "mode": "attended",
        "technician_role": "technician",
        "mfa_verified": True,
        "trainings": {"privacy": NOW - timedelta(days=30)},
    }
    fields.update(kwargs)
    return StartSupportSession(**fields)
