"""The API documents: OpenAPI 3 at /api/docs/openapi.json (rendered by the Swagger UI at /api/docs) and the
Swagger 2.0 one aiohttp-apispec serves beside it; both valid, both listing every route the app serves."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp import hdrs, web
from aiohttp.test_utils import TestClient
from conftest import UNLIMITED, ROOT, TEST_SIGNING_KEY
from openapi_spec_validator import OpenAPIV2SpecValidator, OpenAPIV30SpecValidator, validate

from gateway.app import create_app
from gateway.settings import Settings

DOC_PREFIXES = ("/api/docs", "/static/swagger")  # the documentation itself, not the API it documents
METHODS = {"get", "post", "put", "patch", "delete", "options", "head", "trace"}
ERROR = {"$ref": "#/components/schemas/Error"}
OAUTH_ERROR = {"$ref": "#/components/schemas/OAuthError"}


def served_operations(app: web.Application) -> set[tuple[str, str]]:
    return {
        (route.resource.canonical, route.method.lower())
        for route in app.router.routes()
        if route.resource is not None
        and route.method != hdrs.METH_HEAD
        and not route.resource.canonical.startswith(DOC_PREFIXES)
    }


def documented_operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(path, method) for path, item in document["paths"].items() for method in item if method in METHODS}


@pytest.fixture
async def client(aiohttp_client: Any, tmp_path: Path) -> TestClient:
    """The documents do not depend on the storage backend: SQLite only."""
    settings = Settings(**UNLIMITED, database_url=f"sqlite:///{tmp_path}/gateway.db", jwt_secret=TEST_SIGNING_KEY)
    return await aiohttp_client(create_app(settings))


async def fetch(client: TestClient, path: str) -> dict[str, Any]:
    response = await client.get(path)  # no credentials
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("application/json")
    body: dict[str, Any] = await response.json()
    return body


async def test_openapi_3_document_is_valid_and_lists_every_route(client):
    document = await fetch(client, "/api/docs/openapi.json")
    assert document["openapi"].startswith("3.0.")
    validate(document, cls=OpenAPIV30SpecValidator)
    served = served_operations(client.app)
    assert {("/v3/customers/{customerId}/orders", "post"), ("/ims/token/v2", "post"), ("/metrics", "get")} <= served
    assert documented_operations(document) == served


async def test_swagger_2_document_still_serves(client):
    document = await fetch(client, "/api/docs/swagger.json")
    assert document["swagger"] == "2.0"  # validated in test_documents_of_the_first_app_of_a_process
    served = served_operations(client.app)
    assert documented_operations(document) - {(path, "head") for path, _ in served} == served


async def test_swagger_ui_renders_the_openapi_3_document(client):
    response = await client.get("/api/docs?url=https://example.invalid/x.json")
    assert response.status == 200 and response.content_type == "text/html"
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    page = await response.text()
    assert "example.invalid" not in page and "//" not in page.replace("<!DOCTYPE", "")
    for asset in ("/static/swagger/swagger-ui-bundle.js", "/static/swagger/swagger-ui.css",
                  "/api/docs/swagger-initializer.js"):
        assert f'"{asset}"' in page
        assert (await client.get(asset)).status == 200
    initializer = await (await client.get("/api/docs/swagger-initializer.js")).text()
    config = json.loads(initializer[initializer.index("{", initializer.index("assign(")):initializer.index("}, {") + 1])
    assert config["url"] == "/api/docs/openapi.json" and "urls" not in config and "configUrl" not in config
    assert config["queryConfigEnabled"] is False and config["validatorUrl"] is None
    assert config["layout"] == "BaseLayout"  # no top bar with a box to load another definition


async def test_partner_operations_document_credentials_headers_and_errors(client):
    document = await fetch(client, "/api/docs/openapi.json")
    schemes = document["components"]["securitySchemes"]
    assert schemes["apiKey"] == {**schemes["apiKey"], "type": "apiKey", "in": "header", "name": "X-Api-Key"}
    assert schemes["bearer"]["scheme"] == "bearer"
    v3 = [(path, op) for path, item in document["paths"].items() if path.startswith("/v3/") for op in item.values()]
    assert len(v3) == 5
    for path, operation in v3:
        assert operation["security"] == [{"apiKey": [], "clientCredentials": []}, {"apiKey": [], "bearer": []}]
        headers = {p["name"]: p for p in operation["parameters"] if p["in"] == "header"}
        assert headers["X-Correlation-Id"]["required"] is True
        path_params = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
        assert path_params == {name.strip("{}") for name in path.split("/") if name.startswith("{")}
        # The feed names no customer or order: nothing of it can be missing.
        for status in ("400", "401", "403", "429", "500", *(["404"] if "{customerId}" in path else [])):
            assert operation["responses"][status]["content"]["application/json"]["schema"] == ERROR
        for response in operation["responses"].values():
            assert {"X-Request-Id", "X-Correlation-Id"} <= set(response["headers"])
        responses = operation["responses"]
        assert "Allow" in responses["405"]["headers"] and "Retry-After" in responses["429"]["headers"]
        assert "Retry-After" in responses["503"]["headers"]
    for path, item in document["paths"].items():
        if path.startswith("/v3/"):
            assert {"ETag", "Cache-Control"} <= set(item["get"]["responses"]["304"]["headers"])
    patch = document["paths"]["/v3/customers/{customerId}/orders/{orderId}"]["patch"]["responses"]
    assert "2119" not in patch["400"]["x-error-codes"] and "201" not in patch  # its own codes, not POST's
    assert "Idempotent-Replayed" in patch["200"]["headers"]
    assert schemes["clientCredentials"]["flows"]["clientCredentials"]["tokenUrl"] == "/ims/token/v3"


async def test_bodies_and_repeated_query_parameters(client):
    paths = (await fetch(client, "/api/docs/openapi.json"))["paths"]
    history = paths["/v3/customers/{customerId}/orders"]["get"]
    query = {p["name"]: p for p in history["parameters"] if p["in"] == "query"}
    for name in ("order-type", "status", "offer-id", "subscription-id"):
        assert query[name]["schema"]["type"] == "array"
        assert (query[name]["style"], query[name]["explode"]) == ("form", True)
    assert query["limit"]["schema"] == {"type": "integer", "minimum": 1}
    assert not any(query[name].get("explode") for name in ("limit", "offset", "reseller-id", "start-date"))

    def body_schema(operation: dict[str, Any], code: str) -> Any:
        return operation["responses"][code]["content"]["application/json"]["schema"]

    assert body_schema(history, "200") == {"$ref": "#/components/schemas/OrderPage"}
    details = paths["/v3/customers/{customerId}/orders/{orderId}"]
    assert body_schema(details["get"], "200") == {"$ref": "#/components/schemas/Order"}
    assert body_schema(details["patch"], "200") == {"$ref": "#/components/schemas/Order"}
    assert details["patch"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/UpdateOrderRequest"}
    place = paths["/v3/customers/{customerId}/orders"]["post"]
    assert place["requestBody"]["required"] is True
    assert place["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CreateOrderRequest"}
    for code in ("200", "201"):
        assert body_schema(place, code) == {"$ref": "#/components/schemas/CreatedOrder"}
    assert "Location" in place["responses"]["201"]["headers"]
    for version in ("v2", "v3"):
        token = paths[f"/ims/token/{version}"]["post"]
        assert token["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"] == {
            "$ref": "#/components/schemas/TokenRequest"}
        assert {p["name"] for p in token["parameters"]} == {"grant_type", "client_id", "client_secret", "scope"}
        assert body_schema(token, "200") == {"$ref": "#/components/schemas/Token"}
        assert body_schema(token, "400") == body_schema(token, "401") == OAUTH_ERROR
        assert token["security"] == [{}, {"clientBasic": []}]
    assert set(paths["/metrics"]["get"]["responses"]["200"]["content"]) == {"text/plain", "application/openmetrics-text"}


# A fresh interpreter: aiohttp-apispec rewrites the handlers' metadata, for the whole process, when the first
# app starts (so in this process that has long happened), and only that first app's Swagger 2.0 document has
# every definition: later apps' documents refer to request bodies they do not define. One app per process is
# how the gateway runs.
_FIRST_APP = """
import asyncio, json, sys
from aiohttp import web
from gateway.app import create_app
from gateway.openapi import build_document
from gateway.settings import Settings

async def main():
    settings = Settings(database_url=sys.argv[1], jwt_secret="k" * 64)
    app = create_app(settings)
    before = build_document(app)
    runner = web.AppRunner(app)
    await runner.setup()  # on_startup: aiohttp-apispec builds its Swagger 2.0 document
    try:
        documents = {"before": before, "after": build_document(app), "other": build_document(create_app(settings)),
                     "swagger": app["swagger_dict"]}
    finally:
        await runner.cleanup()
    json.dump(documents, sys.stdout)

asyncio.run(main())
"""


def test_documents_of_the_first_app_of_a_process(tmp_path):
    result = subprocess.run([sys.executable, "-c", _FIRST_APP, f"sqlite:///{tmp_path}/first.db"],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    documents = json.loads(result.stdout)
    assert documents["before"] == documents["after"] == documents["other"]
    validate(documents["swagger"], cls=OpenAPIV2SpecValidator)
