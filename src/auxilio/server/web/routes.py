"""Static files and the API docs page (Swagger UI from local files, no CDN)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from auxilio.server.settings import Settings

_HERE = Path(__file__).parent
STATIC_DIR = _HERE / "static"
DOCS_PAGE = _HERE / "templates" / "docs.html"


def install_web(app: FastAPI, settings: Settings) -> None:
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    if not settings.api_docs:
        return
    page = DOCS_PAGE.read_text(encoding="utf-8")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(page)
