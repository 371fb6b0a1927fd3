"""Imports every domain's models so that the metadata is complete (migrations, create_all)."""

from auxilio.server.audit import models as audit_models
from auxilio.server.automation import models as automation_models
from auxilio.server.db.base import Base
from auxilio.server.devices import models as device_models
from auxilio.server.emergency import models as emergency_models
from auxilio.server.identity import models as identity_models
from auxilio.server.policies import models as policy_models
from auxilio.server.recordings import models as recording_models
from auxilio.server.runbooks import models as runbook_models
from auxilio.server.support_sessions import models as support_session_models
from auxilio.server.surveys import models as survey_models
from auxilio.server.tickets import attachment_models as ticket_attachment_models
from auxilio.server.tickets import models as ticket_models

__all__ = [
    "Base",
    "audit_models",
    "automation_models",
    "device_models",
    "emergency_models",
    "identity_models",
    "policy_models",
    "recording_models",
    "runbook_models",
    "support_session_models",
    "survey_models",
    "ticket_attachment_models",
    "ticket_models",
]
