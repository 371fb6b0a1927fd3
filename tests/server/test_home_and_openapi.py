"""What a newcomer meets at the server's root, and the bearer scheme in the OpenAPI document."""

from __future__ import annotations

import httpx

from auxilio.server.app import PUBLIC_OPERATIONS


async def test_the_root_page_says_what_the_server_is_and_where_the_docs_are(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "This is an Auxilio server" in page.text
    assert 'href="/docs"' in page.text and 'href="/openapi.json"' in page.text
    assert "auxilio agent join CODE --server http://127.0.0.1:8000" in page.text
    assert "<script" not in page.text  # nothing the CSP would have to allow


async def test_openapi_declares_the_bearer_scheme_on_every_operation_that_needs_it(
    client: httpx.AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer",
        "description": spec["components"]["securitySchemes"]["bearer"]["description"],
    }  # fmt: skip
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            expected = [] if (method, path) in PUBLIC_OPERATIONS else [{"bearer": []}]
            assert operation["security"] == expected, (method, path)
    assert spec["paths"]["/api/v1/tickets"]["post"]["security"] == [{"bearer": []}]
    assert spec["paths"]["/api/v1/auth/login"]["post"]["security"] == []
