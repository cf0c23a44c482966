"""The OpenAPI 3.0 document, built with apispec from what the aiohttp-apispec decorators leave on handlers.

aiohttp-apispec 2.2.3 emits Swagger 2.0 only. Its decorators attach `__apispec__` (the `docs` keywords:
summary, tags, parameters, responses, produces, consumes, security) and `__schemas__` (each request schema
with the place it is read from) to the handler; this module translates both into OpenAPI 3.0, once, when
the application starts. Request schemas are read from `__schemas__`: aiohttp-apispec pops
`__apispec__["schemas"]` and appends its Swagger 2.0 parameters in their place the first time any
application of the process starts, so only `__schemas__` says the same thing to every application.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from string import Formatter
from typing import Any

import orjson
from aiohttp import hdrs, web
from aiohttp_apispec.aiohttp_apispec import NAME_SWAGGER_SPEC, AiohttpApiSpec, resolver
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from gateway import swagger_ui
from gateway.openapi_answers import (
    ERROR_CODES_KEY,
    PATH_EXAMPLES,
    REQUEST_EXAMPLES,
    SUCCESS_EXAMPLES,
    answer_headers,
    declared_error_codes,
    error_examples,
    refusal_examples,
)
from schemas.headers import OPENAPI3_PARTNER_SECURITY, PARTNER_SECURITY, RESPONSE_HEADERS, SECURITY_SCHEMES

API_TITLE = "Partner Orders Gateway"
API_VERSION = "v3"
OPENAPI_VERSION = "3.0.3"  # apispec 3.x writes OpenAPI 3.0 (Swagger UI 5 renders 3.0 and 3.1)

# The documentation's own routes: served beside the API, not part of what they document.
OPENAPI_ROUTE = "openapi.document"
DOCS_ROUTE = "openapi.docs"
STATIC_ROUTE = "openapi.static"
INITIALIZER_ROUTE = "openapi.initializer"
DOC_ROUTES = frozenset({NAME_SWAGGER_SPEC, OPENAPI_ROUTE, DOCS_ROUTE, STATIC_ROUTE, INITIALIZER_ROUTE})

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
# aiohttp-apispec's request locations that OpenAPI 3 describes as a request body rather than parameters.
_BODY_LOCATIONS = frozenset({"json", "form"})
# Swagger 2.0 puts a parameter's or header's type inline; OpenAPI 3 moves these keys into its `schema`.
_SCHEMA_KEYS = frozenset({
    "type", "format", "items", "enum", "default", "pattern",
    "minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems",
})
# Swagger 2.0 parameter keys that OpenAPI 3 spells otherwise.
_TRANSLATED_KEYS = frozenset({"collectionFormat", "x-example"})
# Operation fields of `docs(...)` that mean the same in both versions.
_OPERATION_KEYS = ("tags", "summary", "description", "deprecated", "security")

Handler = Callable[..., Any]


@dataclasses.dataclass(frozen=True)
class ApiDocs:
    openapi: bytes  # the OpenAPI 3 document, serialized once
    page: str  # the Swagger UI page that renders it
    initializer: str  # the page's script: Swagger UI's configuration


# Each document is a function of the routes alone: built once per process for the same routes (some 30 ms of
# every application's start, which the tests start a thousand times).
_OPENAPI_DOCUMENTS: dict[tuple[Any, ...], bytes] = {}
_SWAGGER2_DOCUMENTS: dict[tuple[Any, ...], dict[str, Any]] = {}


def route_table(app: web.Application) -> tuple[Any, ...]:
    """The documented routes (those whose handler has aiohttp-apispec's decorators), as a key."""
    return tuple((route.resource.canonical, route.method, route.handler) for route in app.router.routes()
                 if route.resource is not None and hasattr(route.handler, "__apispec__"))


def api_docs(app: web.Application) -> ApiDocs:
    """Built once all routes are added; the documents cannot change while the app runs."""
    openapi_url = str(app.router[OPENAPI_ROUTE].url_for())
    static = app.router[STATIC_ROUTE].url_for(filename="swagger-ui.css").parent
    page = swagger_ui.page(API_TITLE, str(static), str(app.router[INITIALIZER_ROUTE].url_for()))
    routes = route_table(app)
    if routes not in _OPENAPI_DOCUMENTS:
        _OPENAPI_DOCUMENTS[routes] = orjson.dumps(build_document(app))
    return ApiDocs(_OPENAPI_DOCUMENTS[routes], page, swagger_ui.initializer(openapi_url))


class Swagger2Spec(AiohttpApiSpec):  # type: ignore[misc]  # aiohttp-apispec is untyped
    """aiohttp-apispec's Swagger 2.0 document (served where it always was), built once per route table."""

    def _register(self, app: web.Application) -> None:
        routes = route_table(app)
        if routes not in _SWAGGER2_DOCUMENTS:
            super()._register(app)
            _SWAGGER2_DOCUMENTS[routes] = app["swagger_dict"]
        app["swagger_dict"] = _SWAGGER2_DOCUMENTS[routes]


def api_operations(app: web.Application) -> Iterator[tuple[str, str, Handler]]:
    """(path, method, handler) of every route of the API: HEAD (aiohttp's twin of each GET) and the
    documentation's own routes left out."""
    for route in app.router.routes():
        if route.method == hdrs.METH_HEAD or route.name in DOC_ROUTES or route.resource is None:
            continue
        yield route.resource.canonical, route.method.lower(), route.handler


def build_document(app: web.Application) -> dict[str, Any]:
    plugin = MarshmallowPlugin(schema_name_resolver=resolver)  # the component names of the 2.0 document
    headers = {name: _header(header) for name, header in RESPONSE_HEADERS.items()}
    headers["X-Request-Id"]["required"] = True  # on every answer of the service
    # apispec 3 has no helper for header components: merged into the document as they are.
    spec = APISpec(API_TITLE, API_VERSION, OPENAPI_VERSION, plugins=[plugin], components={"headers": headers})
    for name, scheme in SECURITY_SCHEMES.items():
        spec.components.security_scheme(name, scheme)
    for path, method, handler in api_operations(app):
        if hasattr(handler, "__apispec__"):
            spec.path(path=path, operations={method: _operation(plugin, path, method, handler)})
    document: dict[str, Any] = spec.to_dict()
    return document


def _operation(plugin: MarshmallowPlugin, path: str, method: str, handler: Handler) -> dict[str, Any]:
    meta: Mapping[str, Any] = getattr(handler, "__apispec__")
    requests: list[Mapping[str, Any]] = getattr(handler, "__schemas__", [])
    operation = {key: meta[key] for key in _OPERATION_KEYS if key in meta}
    operation_id = operation["operationId"] = handler.__name__  # one function per route (STYLE 5): unique
    if operation.get("security") == PARTNER_SECURITY:
        operation["security"] = OPENAPI3_PARTNER_SECURITY
    parameters = _parameters(plugin, path, meta.get("parameters", []), requests)
    if parameters:
        operation["parameters"] = parameters
    body = _request_body(requests, meta.get("consumes", [FORM]), REQUEST_EXAMPLES.get(operation_id, {}))
    if body is not None:
        operation["requestBody"] = body
    produces = meta.get("produces", [JSON])
    responses = {int(code): response for code, response in meta.get("responses", {}).items()}
    successes, codes = SUCCESS_EXAMPLES.get(operation_id, {}), declared_error_codes(handler)
    refusals = refusal_examples(operation_id)
    operation["responses"] = {
        str(status): _response(responses[status], produces, answer_headers(path, method, status),
                               successes.get(status, {}), codes.get(status, []), refusals)
        for status in sorted(responses)
    }
    return operation


def _parameters(
    plugin: MarshmallowPlugin, path: str, declared: list[Mapping[str, Any]], requests: list[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Path parameters from the route, then the declared ones, then those of the request schemas; a later
    one of the same name and place replaces an earlier (aiohttp-apispec may have declared it in 2.0 form)."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for name in (field for _, field, _, _ in Formatter().parse(path) if field):
        found["path", name] = {"in": "path", "name": name, "required": True, "schema": {"type": "string"}}
    for parameter in declared:
        if parameter["in"] not in ("body", "formData"):  # a request body in OpenAPI 3
            found[parameter["in"], parameter["name"]] = _parameter(parameter)
    for request in requests:
        location = (request["locations"] or ["json"])[0]
        if location not in _BODY_LOCATIONS:
            for parameter in plugin.converter.schema2parameters(request["schema"], default_in=location):
                found[parameter["in"], parameter["name"]] = parameter
    for (place, name), parameter in found.items():
        if place == "path" and name in PATH_EXAMPLES:
            parameter["example"] = PATH_EXAMPLES[name]
    return list(found.values())


def _request_body(
    requests: list[Mapping[str, Any]], consumes: list[str], named_examples: Mapping[str, Any]
) -> dict[str, Any] | None:
    for request in requests:
        location = (request["locations"] or ["json"])[0]
        if location in _BODY_LOCATIONS:
            media_type = JSON if location == "json" else consumes[0]
            content: dict[str, Any] = {"schema": request["schema"]}
            if named_examples:
                content["examples"] = {name: {"value": value} for name, value in named_examples.items()}
            # A JSON object is required where one is read; form parameters may come in the query instead.
            return {"required": location == "json", "content": {media_type: content}}
    return None


def _response(
    response: Mapping[str, Any], produces: list[str], headers: list[str], named_examples: Mapping[str, Any],
    error_codes: list[str], refusals: Mapping[str, dict[str, Any]],
) -> dict[str, Any]:
    """A response with a schema is a JSON body (every resource and error of the API), with its examples: those
    named, or one per error code; one without a schema carries the operation's media type when that is not
    JSON (the metrics text), else nothing."""
    converted: dict[str, Any] = {"description": response.get("description", "")}
    if response.get("schema") is not None:
        content: dict[str, Any] = {"schema": response["schema"]}
        examples = {name: {"value": value} for name, value in named_examples.items()}
        examples.update(error_examples(error_codes, refusals))
        if examples:
            content["examples"] = examples
        converted["content"] = {JSON: content}
    elif produces != [JSON]:
        converted["content"] = {media_type: {"schema": {"type": "string"}} for media_type in produces}
    if error_codes:
        converted[ERROR_CODES_KEY] = error_codes
    converted["headers"] = {name: _header_ref(name) for name in headers}
    return converted


def _header_ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/headers/{name}"}


def _parameter(parameter: Mapping[str, Any]) -> dict[str, Any]:
    """A Swagger 2.0 parameter in OpenAPI 3 form."""
    converted = {k: v for k, v in parameter.items() if k not in _SCHEMA_KEYS and k not in _TRANSLATED_KEYS}
    converted.setdefault("schema", {k: v for k, v in parameter.items() if k in _SCHEMA_KEYS})
    if "x-example" in parameter:  # Swagger 2.0 has no parameter example; OpenAPI 3 does
        converted["example"] = parameter["x-example"]
    if parameter.get("collectionFormat") == "multi":  # a repeated parameter: ?status=1000&status=1002
        converted.update(style="form", explode=True)
    return converted


def _header(header: Mapping[str, Any]) -> dict[str, Any]:
    """A Swagger 2.0 response header in OpenAPI 3 form."""
    converted = {k: v for k, v in header.items() if k not in _SCHEMA_KEYS}
    converted["schema"] = {k: v for k, v in header.items() if k in _SCHEMA_KEYS}
    return converted
