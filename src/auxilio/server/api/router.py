"""Every REST route under /api/v1, one router per domain."""

from __future__ import annotations

from fastapi import APIRouter

from auxilio.server.audit.routes import router as audit_router
from auxilio.server.automation.routes import router as automation_router
from auxilio.server.devices import routes as devices
from auxilio.server.emergency.routes import router as emergency_router
from auxilio.server.identity.routes import router as identity_router
from auxilio.server.policies.routes import router as policies_router
from auxilio.server.recordings.routes import router as recordings_router
from auxilio.server.reporting.routes import router as reporting_router
from auxilio.server.runbooks.routes import router as runbooks_router
from auxilio.server.support_sessions import routes as support_sessions
from auxilio.server.surveys.routes import router as surveys_router
from auxilio.server.tickets.routes import router as tickets_router

api_router = APIRouter()
api_router.include_router(identity_router)
api_router.include_router(audit_router)
api_router.include_router(policies_router)
api_router.include_router(tickets_router)
api_router.include_router(devices.router)
api_router.include_router(devices.tokens_router)
api_router.include_router(devices.agents_router)
api_router.include_router(runbooks_router)
api_router.include_router(recordings_router)
api_router.include_router(emergency_router)
api_router.include_router(support_sessions.router)
api_router.include_router(support_sessions.me_router)
api_router.include_router(support_sessions.tickets_router)
api_router.include_router(support_sessions.public_router)
api_router.include_router(automation_router)
api_router.include_router(reporting_router)
api_router.include_router(surveys_router)
