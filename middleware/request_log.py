"""Outermost middleware: request id, correlation echo, and the one `request` log line per request."""
from __future__ import annotations

import time
import uuid

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.keys import API_KEY_ID, ERROR, ERROR_CODE, IDEMPOTENCY, PARTNER_ID, REQUEST_ID

log = structlog.get_logger("gateway.request")

# Probes and scrapes would drown the log at info level: they are logged at debug.
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def header_safe(value: str) -> bool:
    return not any(ord(char) < 32 or ord(char) == 127 for char in value)


@web.middleware
async def request_log_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    request_id = request.headers.get("X-Request-Id") or str(uuid.uuid4())
    request[REQUEST_ID] = request_id
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    correlation_id = request.headers.get("X-Correlation-Id")
    response = await handler(request)
    if not response.prepared:
        response.headers["X-Request-Id"] = request_id
        if correlation_id is not None and header_safe(correlation_id):
            response.headers["X-Correlation-Id"] = correlation_id
    error = request.get(ERROR)
    route = request.match_info.route.resource
    fields = {
        "method": request.method,
        "path": request.path,
        "route": route.canonical if route is not None else None,
        "status": response.status,
        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        "correlation_id": correlation_id,
        "partner_id": request.get(PARTNER_ID),
        "api_key_id": request.get(API_KEY_ID),
        "customer_id": request.match_info.get("customerId"),
        "error_code": request.get(ERROR_CODE),
        "remote": request.remote,
        "user_agent": request.headers.get("User-Agent"),
    }
    idempotency = request.get(IDEMPOTENCY)
    if idempotency is not None:
        fields["idempotency"] = idempotency
    if error is not None:
        log.error("request", exc_info=error, **fields)
    elif request.path in QUIET_PATHS:
        log.debug("request", **fields)
    else:
        log.info("request", **fields)
    return response
