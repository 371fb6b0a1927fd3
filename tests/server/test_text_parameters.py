"""A NUL or another control character in any text parameter of a read is a 4xx on every backend.

PostgreSQL refuses NUL in a text parameter, so ``GET /audit/events?action=%00`` was a 500 there
while SQLite answered 200; schemathesis runs on SQLite only. This test reads the OpenAPI document
and sends every string parameter of every GET operation a NUL, as an admin, on each backend.
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI

from auxilio.policy.roles import Role
from tests.factories import make_org, make_user

HOSTILE = ["a\x00b", "\x07", "\u202e"]


def _string_parameters(spec: dict[str, Any]) -> list[tuple[str, list[dict[str, Any]], str]]:
    """(path, every parameter of the GET, the name of one string parameter) for each case."""
    cases = []
    for path, operations in spec["paths"].items():
        get = operations.get("get")
        if get is None:
            continue
        parameters = get.get("parameters", [])
        for parameter in parameters:
            schema = parameter.get("schema", {})
            options = schema.get("anyOf", [schema])
            if any(o.get("type") == "string" and "format" not in o for o in options):
                cases.append((path, parameters, parameter["name"]))
    return cases


def _placeholder(parameter: dict[str, Any]) -> str:
    schema = parameter.get("schema", {})
    options = schema.get("anyOf", [schema])
    if any(o.get("format") == "uuid" for o in options):
        return str(uuid.uuid4())
    if any(o.get("type") == "integer" for o in options):
        return "1"
    return "x"


async def test_every_text_parameter_of_a_read_refuses_control_characters(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    admin = await make_user(app, await make_org(app), Role.ADMIN)
    cases = _string_parameters(app.openapi())
    assert any(name == "action" for _, _, name in cases), "the walk misses /audit/events"
    failures = []
    for path, parameters, name in cases:
        for hostile in HOSTILE:
            url = path
            query = {}
            for parameter in parameters:
                value = hostile if parameter["name"] == name else _placeholder(parameter)
                if parameter["in"] == "path":
                    url = url.replace("{" + parameter["name"] + "}", quote(value, safe=""))
                elif parameter["name"] == name:
                    query[name] = value
            response = await client.get(url, params=query, headers=admin.headers)
            if response.status_code >= 500:
                failures.append((path, name, repr(hostile), response.status_code))
    assert failures == []


@pytest.mark.parametrize("hostile", HOSTILE)
async def test_an_audit_filter_with_a_control_character_is_refused(
    app: FastAPI, client: httpx.AsyncClient, hostile: str
) -> None:
    admin = await make_user(app, await make_org(app), Role.ADMIN)
    response = await client.get(
        "/api/v1/audit/events", params={"action": hostile}, headers=admin.headers
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_failed"
