"""``create_app(settings)``: the ASGI application. Nothing is built at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from sqlalchemy import text

from auxilio import __version__
from auxilio.server.api.errors import install_error_handlers
from auxilio.server.api.router import api_router
from auxilio.server.audit.failures import AUDIT_FAILURES, FailureAggregator, FailureFlusher
from auxilio.server.audit.service import AuditSigner, checkpoint_stale_chains, make_audit_signer
from auxilio.server.automation.scheduler import AutomationScheduler
from auxilio.server.db.engine import create_engine, create_sessionmaker
from auxilio.server.emergency import pages as _emergency_pages  # noqa: F401 -- registers its forms
from auxilio.server.keys import load_or_create_signing_key
from auxilio.server.middleware import RequestContextMiddleware
from auxilio.server.prepare import Prepared, prepare
from auxilio.server.settings import Settings
from auxilio.server.support_sessions.lifecycle import start_support_sessions, stop_support_sessions
from auxilio.server.support_sessions.ws import install_websockets
from auxilio.server.surveys.rounds import SurveyRounds
from auxilio.server.tickets.queue import TicketQueue
from auxilio.server.web.routes import install_web

log = logging.getLogger("auxilio.server")
__all__ = ["Prepared", "create_app", "prepare"]


async def _checkpoint_loop(app: FastAPI, signer: AuditSigner, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            async with app.state.sessionmaker() as db, db.begin():
                await checkpoint_stale_chains(db, signer=signer)
        except Exception:  # a failed round is retried at the next tick; never kill the loop
            log.exception("audit checkpoint round failed")


def create_app(settings: Settings, *, signing_key: Ed25519PrivateKey | None = None) -> FastAPI:
    key = signing_key or load_or_create_signing_key(settings.signing_key_path)
    signer = make_audit_signer(settings, key)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        app.state.engine = engine
        app.state.sessionmaker = create_sessionmaker(engine)
        failures = FailureAggregator()
        app.state.sessionmaker.configure(info={"audit_signer": signer, AUDIT_FAILURES: failures})
        app.state.audit_failures = failures
        flusher = FailureFlusher(app.state.sessionmaker, failures)
        task = asyncio.create_task(_checkpoint_loop(app, signer, settings.audit_checkpoint_seconds))
        # Support sessions: relay hub, bus and scheduler; ends this node's unfinished sessions.
        await start_support_sessions(app, settings=settings, signing_key=key)
        queue = TicketQueue(app.state.sessionmaker, settings.ticket_queue_seconds)
        queue.start()
        app.state.ticket_queue = queue
        automation = AutomationScheduler(app.state.sessionmaker, server_key=key,
                                         bus=app.state.support_sessions.hub.bus)
        automation.start()
        app.state.automation_scheduler = automation
        surveys = SurveyRounds(app.state.sessionmaker)
        surveys.start()
        app.state.survey_rounds = surveys
        log.info("auxilio %s ready on node %s", __version__, settings.node_id)
        try:
            yield
        finally:
            await surveys.stop()
            await automation.stop()
            await queue.stop()
            await stop_support_sessions(app)
            await flusher.stop()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await engine.dispose()
            log.info("auxilio stopped")

    app = FastAPI(
        title="Auxilio",
        version=__version__,
        lifespan=lifespan,
        # /docs is Auxilio's own page over vendored Swagger UI (web/routes.py), not FastAPI's,
        # which loads its scripts from a CDN and starts them inline.
        openapi_url="/openapi.json" if settings.api_docs else None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.signing_key = key
    app.state.audit_signer = signer
    install_error_handlers(app)
    app.include_router(api_router, prefix="/api/v1")
    install_websockets(app)
    install_web(app, settings)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    async def readyz() -> dict[str, str]:
        try:
            async with app.state.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:  # any database failure means "not ready"
            from fastapi.responses import JSONResponse

            return JSONResponse(  # type: ignore[return-value]
                {"error": {"code": "database_unavailable", "message": str(exc), "details": {}}},
                status_code=503,
            )
        return {"status": "ready"}

    app.add_middleware(
        RequestContextMiddleware,
        max_body_bytes=settings.max_body_bytes,
        body_idle_seconds=settings.http_body_idle_seconds,
    )
    _declare_bearer_auth(app)
    return app


# What anyone may call without a token; every other operation takes ``Authorization: Bearer``.
PUBLIC_OPERATIONS = frozenset({
    ("post", "/api/v1/auth/login"), ("get", "/api/v1/server-key"),
    ("get", "/api/v1/audit/public-key"), ("get", "/healthz"), ("get", "/readyz"),
    ("post", "/api/v1/surveys/answer"), ("post", "/api/v1/surveys/decline"),
})  # fmt: skip


def _declare_bearer_auth(app: FastAPI) -> None:
    """The OpenAPI document names the bearer scheme (login and API tokens) on every operation
    that needs it, so that clients, Swagger UI's "Authorize" and schemathesis know it."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(
                title=app.title, version=app.version, openapi_version=app.openapi_version,
                description=app.description, routes=app.routes, tags=app.openapi_tags,
                servers=app.servers,
            )  # fmt: skip
            spec.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer",
                           "description": "A login token (POST /api/v1/auth/login) or an API "
                                          "token (POST /api/v1/me/tokens)."},
            }  # fmt: skip
            for path, operations in spec["paths"].items():
                for method, operation in operations.items():
                    public = (method, path) in PUBLIC_OPERATIONS
                    operation["security"] = [] if public else [{"bearer": []}]
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
