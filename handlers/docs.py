"""The API's documentation: the OpenAPI 3 document and the Swagger UI page that renders it; no credentials.
(aiohttp-apispec serves the Swagger 2.0 document beside them, at /api/docs/swagger.json.)"""
from __future__ import annotations

from aiohttp import web

from gateway.keys import API_DOCS
from gateway.openapi import DOCS_ROUTE, OPENAPI_ROUTE, STATIC_ROUTE, SWAGGER_UI_FILES

routes = web.RouteTableDef()
routes.static("/static/swagger", SWAGGER_UI_FILES, name=STATIC_ROUTE)


@routes.get("/api/docs/openapi.json", name=OPENAPI_ROUTE)
async def openapi_document(request: web.Request) -> web.Response:
    return web.Response(body=request.app[API_DOCS].openapi, content_type="application/json")


@routes.get("/api/docs", name=DOCS_ROUTE)
async def swagger_ui(request: web.Request) -> web.Response:
    return web.Response(text=request.app[API_DOCS].page, content_type="text/html")
