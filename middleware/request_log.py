"""Outermost middleware: request id, correlation echo, and the one `request` log line per request."""
from __future__ import annotations

import re
import time
import uuid

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.keys import API_KEY_ID, ERROR, ERROR_CODE, IDEMPOTENCY, METRICS, PARTNER_ID, REQUEST_ID

log = structlog.get_logger("gateway.request")

# Probes and scrapes would drown the log at info level: they are logged at debug.
QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


# Control characters, and the surrogates aiohttp decodes bytes that are not UTF-8 to: such a value can be
# neither sent back in a header nor stored.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


def header_safe(value: str) -> bool:
    return _UNSAFE.search(value) is None


@web.middleware
async def request_log_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    sent = request.headers.get("X-Request-Id")
    # One that could not be echoed is treated as absent.
    request_id = sent if sent and header_safe(sent) else str(uuid.uuid4())
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
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else None
    elapsed = time.perf_counter() - started
    idempotency = request.get(IDEMPOTENCY)
    error_code = request.get(ERROR_CODE)
    # Unmatched paths share one label, so probing for routes cannot grow the metric without bound.
    request.app[METRICS].observe(route or "unmatched", request.method, response.status, elapsed, error_code,
                                 idempotency)
    fields = {
        "method": request.method,
        "path": request.path,
        "route": route,
        "status": response.status,
        "duration_ms": round(elapsed * 1000, 3),
        "correlation_id": correlation_id,
        "partner_id": request.get(PARTNER_ID),
        "api_key_id": request.get(API_KEY_ID),
        "customer_id": request.match_info.get("customerId"),
        "error_code": error_code,
        "remote": request.remote,
        "user_agent": request.headers.get("User-Agent"),
    }
    if idempotency is not None:
        fields["idempotency"] = idempotency
    if error is not None:
        log.error("request", exc_info=error, **fields)
    elif request.path in QUIET_PATHS:
        log.debug("request", **fields)
    else:
        log.info("request", **fields)
    return response
