"""Static files, the login pages, the page modules' routers and the API docs page (Swagger UI
from local files, no CDN)."""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from auxilio import __version__
from auxilio.server.api.deps import DbSession
from auxilio.server.identity.auth import ENROLMENT_SCOPE
from auxilio.server.settings import Settings
from auxilio.server.web import devices as _devices_pages  # noqa: F401 -- registers its pages
from auxilio.server.web.login import router as login_router
from auxilio.server.web.pages import (
    current_identity,
    home_path,
    install_error_pages,
    page_routers,
    record_page_paths,
    render,
)

_HERE = Path(__file__).parent
STATIC_DIR = _HERE / "static"
DOCS_PAGE = _HERE / "templates" / "docs.html"
HOME_PAGE = _HERE / "templates" / "home.html"


def install_web(app: FastAPI, settings: Settings) -> None:
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    home = _home_page(settings)
    install_error_pages(app)
    app.include_router(login_router)
    routers = page_routers()
    for router in routers:
        app.include_router(router)
    record_page_paths(app, routers)

    @app.get("/", include_in_schema=False)
    async def index(request: Request, db: DbSession) -> Response:
        # A logged-in person goes to their area (portal or console) when it exists; anyone
        # else reads what this server is and where to go from here.
        identity = await current_identity(request, db)
        if identity is not None and identity.token.scopes != [ENROLMENT_SCOPE]:
            target = home_path(request, identity.actor)
            if target:
                return RedirectResponse(target, status_code=303)
            return render(request, "web/home.html", server=_server_url(settings))
        return HTMLResponse(home)

    if not settings.api_docs:
        return
    page = DOCS_PAGE.read_text(encoding="utf-8")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(page)


def _server_url(settings: Settings) -> str:
    scheme = "https" if settings.tls_cert else "http"
    return settings.public_url or f"{scheme}://{settings.host}:{settings.port}"


def _home_page(settings: Settings) -> str:
    server = _server_url(settings)
    docs = '<a href="/docs">/docs</a> and ' if settings.api_docs else ""
    return (
        HOME_PAGE.read_text(encoding="utf-8")
        .replace("{server}", html.escape(server))
        .replace("{docs}", docs)
        .replace("{version}", html.escape(__version__))
    )
