"""Liveness and readiness probes; no credentials."""
from __future__ import annotations

from aiohttp import web
from aiohttp_apispec import docs

from gateway.keys import STORAGE

routes = web.RouteTableDef()


@docs(tags=["operations"], summary="The process is up")
@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@docs(tags=["operations"], summary="The database answers", responses={503: {"description": "Database unavailable"}})
@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    try:
        await request.app[STORAGE].ping()
    except Exception:  # any failure of the database means "not ready", whatever the driver raises
        return web.json_response({"status": "unavailable"}, status=503)
    return web.json_response({"status": "ok"})

