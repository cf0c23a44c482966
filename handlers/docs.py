"""The API's documentation: the OpenAPI 3 document and the Swagger UI page that renders it; no credentials.
(aiohttp-apispec serves the Swagger 2.0 document beside them, at /api/docs/swagger.json.)"""
from __future__ import annotations

from aiohttp import web

from gateway.keys import API_DOCS
from gateway.openapi import DOCS_ROUTE, INITIALIZER_ROUTE, OPENAPI_ROUTE, STATIC_ROUTE
from gateway.swagger_ui import CONTENT_SECURITY_POLICY, SWAGGER_UI_FILES

routes = web.RouteTableDef()
routes.static("/static/swagger", SWAGGER_UI_FILES, name=STATIC_ROUTE)

_PAGE_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Content-Type-Options": "nosniff"}


@routes.get("/api/docs/openapi.json", name=OPENAPI_ROUTE)
async def openapi_document(request: web.Request) -> web.Response:
    return web.Response(body=request.app[API_DOCS].openapi, content_type="application/json")


@routes.get("/api/docs", name=DOCS_ROUTE)
async def swagger_ui(request: web.Request) -> web.Response:
    """The same page whatever the query: Swagger UI is configured not to read it."""
    return web.Response(text=request.app[API_DOCS].page, content_type="text/html", headers=_PAGE_HEADERS)


@routes.get("/api/docs/swagger-initializer.js", name=INITIALIZER_ROUTE)
async def swagger_ui_initializer(request: web.Request) -> web.Response:
    return web.Response(text=request.app[API_DOCS].initializer, content_type="text/javascript")
