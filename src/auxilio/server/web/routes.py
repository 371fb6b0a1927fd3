"""Static files and the API docs page (Swagger UI from local files, no CDN)."""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from auxilio import __version__
from auxilio.server.settings import Settings

_HERE = Path(__file__).parent
STATIC_DIR = _HERE / "static"
DOCS_PAGE = _HERE / "templates" / "docs.html"
HOME_PAGE = _HERE / "templates" / "home.html"


def install_web(app: FastAPI, settings: Settings) -> None:
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    home = _home_page(settings)

    @app.get("/", include_in_schema=False)
    async def index() -> HTMLResponse:
        # What this server is and where to go from here (the web console replaces it later).
        return HTMLResponse(home)

    if not settings.api_docs:
        return
    page = DOCS_PAGE.read_text(encoding="utf-8")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(page)


def _home_page(settings: Settings) -> str:
    scheme = "https" if settings.tls_cert else "http"
    server = settings.public_url or f"{scheme}://{settings.host}:{settings.port}"
    docs = '<a href="/docs">/docs</a> and ' if settings.api_docs else ""
    return (
        HOME_PAGE.read_text(encoding="utf-8")
        .replace("{server}", html.escape(server))
        .replace("{docs}", docs)
        .replace("{version}", html.escape(__version__))
    )
