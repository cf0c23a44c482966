"""Liveness and readiness probes and the metrics scrape; no credentials."""
from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp_apispec import docs, response_schema

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.openmetrics import exposition as openmetrics

from gateway.errors import DATABASE_RETRY_AFTER_SECONDS
from gateway.keys import METRICS, STORAGE
from schemas.common import ErrorSchema
from schemas.health import ProbeSchema

routes = web.RouteTableDef()

READY_TIMEOUT_SECONDS = 2.0  # a database slower than this to answer a ping is not ready

# What any request can meet, these too: the HTTP layer's refusals, and a crash.
_CRASH = {
    405: {"schema": ErrorSchema, "description": "Method not allowed (405), with Allow"},
    414: {"schema": ErrorSchema, "description": "Request target over 8 KiB (414)"},
    415: {"schema": ErrorSchema, "description": "Content-Encoding other than gzip, deflate or identity (415)"},
    431: {"schema": ErrorSchema, "description": "Header fields over 8 KiB or more than 100 of them (431)"},
    500: {"schema": ErrorSchema, "description": "Unexpected error (1124)"},
}


@docs(tags=["operations"], summary="The process is up", responses=_CRASH)
@response_schema(ProbeSchema, 200, description="Up")
@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@docs(
    tags=["operations"],
    summary="The database answers and can take a write now",
    responses={**_CRASH, 503: {"schema": ProbeSchema, "description": "Database unavailable"}},
)
@response_schema(ProbeSchema, 200, description="Ready")
@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    try:
        await asyncio.wait_for(request.app[STORAGE].ready(), READY_TIMEOUT_SECONDS)
    except Exception:  # any failure of the database means "not ready", whatever the driver raises
        return web.json_response({"status": "unavailable"}, status=503,
                                 headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)})
    return web.json_response({"status": "ok"})



@docs(
    tags=["operations"],
    summary="Prometheus metrics (text exposition format; OpenMetrics when the Accept header asks for it)",
    produces=["text/plain", "application/openmetrics-text"],
    responses={**_CRASH, 200: {"description": "The metrics"}},
)
@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """OpenMetrics to a scraper that asks for it (Prometheus does), the text format to anyone else."""
    registry = request.app[METRICS].exposition()
    if "application/openmetrics-text" in request.headers.get("Accept", ""):
        body = openmetrics.generate_latest(registry)  # type: ignore[no-untyped-call]  # untyped upstream
        content_type = openmetrics.CONTENT_TYPE_LATEST
    else:
        body, content_type = generate_latest(registry), CONTENT_TYPE_LATEST
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    response.headers["Vary"] = "Accept"
    return response
