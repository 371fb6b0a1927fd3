"""Every integer a client can send is bounded to what a database column holds.

An unbounded ``int`` in a path, a query or a body reached the driver as a number it cannot
convert (``OverflowError``: a 500). The shared types in ``auxilio.server.validation`` carry the
bound; this test reads the OpenAPI document, so a new route with a bare ``int`` fails here.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from auxilio.server.validation import INT64_MAX


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    name = ref.rsplit("/", 1)[-1]
    resolved: dict[str, Any] = spec["components"]["schemas"][name]
    return resolved


def _integers(
    spec: dict[str, Any], schema: dict[str, Any], where: str, seen: set[str]
) -> list[tuple[str, dict[str, Any]]]:
    ref = schema.get("$ref")
    if ref is not None:
        if ref in seen:
            return []
        seen = seen | {ref}
    schema = _resolve(spec, schema)
    found: list[tuple[str, dict[str, Any]]] = []
    if schema.get("type") == "integer":
        found.append((where, schema))
    for key in ("anyOf", "oneOf", "allOf"):
        for index, option in enumerate(schema.get(key, [])):
            found += _integers(spec, option, f"{where}|{index}", seen)
    for name, child in schema.get("properties", {}).items():
        found += _integers(spec, child, f"{where}.{name}", seen)
    for key in ("items", "additionalProperties"):
        child = schema.get(key)
        if isinstance(child, dict):
            found += _integers(spec, child, f"{where}[]", seen)
    return found


def _client_integers(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            for parameter in operation.get("parameters", []):
                found += _integers(spec, parameter["schema"], f"{where} {parameter['name']}", set())
            for media in operation.get("requestBody", {}).get("content", {}).values():
                found += _integers(spec, media["schema"], f"{where} body", set())
    return found


def test_every_integer_a_client_sends_has_a_database_sized_bound(app: FastAPI) -> None:
    integers = _client_integers(app.openapi())
    assert integers, "the walk found no integers at all; it is not reading the document"
    unbounded = [
        where
        for where, schema in integers
        if schema.get("maximum", INT64_MAX + 1) > INT64_MAX
        or schema.get("minimum", -INT64_MAX - 2) < -INT64_MAX - 1
    ]
    assert unbounded == []


def test_the_review_s_parameters_are_among_those_checked(app: FastAPI) -> None:
    checked = {where for where, _ in _client_integers(app.openapi())}
    assert "GET /api/v1/audit/events after_seq" in checked
    assert "GET /api/v1/policies/{number} number" in checked
    assert "POST /api/v1/policies/{number}/activate number" in checked
