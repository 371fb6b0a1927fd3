"""The one mapping of DomainError (``auxilio.server.errors``) to HTTP responses.

Every error body is ``{"error": {"code", "message", "details"}}``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from auxilio.server.errors import DomainError


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _headers(exc: DomainError) -> dict[str, str] | None:
    retry = exc.details.get("retry_after_seconds")
    if exc.status in (429, 503) and retry is not None:
        return {"Retry-After": str(max(1, int(retry)))}
    if exc.status == 401:
        return {"WWW-Authenticate": "Bearer"}
    return None


async def _domain_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)  # noqa: S101 -- registered for DomainError only
    return JSONResponse(
        error_body(exc.code, exc.message, exc.details),
        status_code=exc.status,
        headers=_headers(exc),
    )


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101 -- registered for it only
    problems = []
    for err in exc.errors():
        problems.append(
            {
                "loc": [str(p) for p in err.get("loc", ())],
                "type": err.get("type"),
                "message": err.get("msg"),
            }
        )
    malformed = any(p["type"] == "json_invalid" for p in problems)
    code, message = (
        ("malformed_json", "The body is not valid JSON.")
        if malformed
        else ("validation_failed", "The request is not valid.")
    )
    return JSONResponse(error_body(code, message, {"problems": problems}), status_code=422)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101 -- registered for it only
    codes = {
        404: "not_found",
        405: "method_not_allowed",
        408: "request_timeout",
        413: "payload_too_large",
    }
    code = codes.get(exc.status_code, f"http_{exc.status_code}")
    return JSONResponse(
        error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
