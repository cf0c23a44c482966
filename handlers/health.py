"""Liveness and readiness probes and the metrics scrape; no credentials."""
from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp_apispec import docs

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.keys import METRICS, STORAGE

routes = web.RouteTableDef()

READY_TIMEOUT_SECONDS = 2.0  # a database slower than this to answer a ping is not ready


@docs(tags=["operations"], summary="The process is up")
@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@docs(tags=["operations"], summary="The database answers", responses={503: {"description": "Database unavailable"}})
@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    try:
        await asyncio.wait_for(request.app[STORAGE].ping(), READY_TIMEOUT_SECONDS)
    except Exception:  # any failure of the database means "not ready", whatever the driver raises
        return web.json_response({"status": "unavailable"}, status=503)
    return web.json_response({"status": "ok"})



@docs(tags=["operations"], summary="Prometheus metrics (text exposition format)")
@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    response = web.Response(body=generate_latest(request.app[METRICS].registry))
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response
