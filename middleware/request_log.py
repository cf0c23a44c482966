"""Outermost middleware: request id, correlation echo, and the one `request` log line per request."""
from __future__ import annotations

import os
import random
import time
import uuid

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.keys import ANSWER_HEADERS, API_KEY_ID, ERROR, ERROR_CODE, IDEMPOTENCY, METRICS, PARTNER_ID, REQUEST_ID
from gateway.keys import TRACE
from gateway.metrics import Metrics
from gateway.tracing import parse_traceparent
from gateway.wire import CLIENT_CLOSED, header_safe, sent_twice, valid_correlation_id

log = structlog.get_logger("gateway.request")


def new_request_id() -> str:
    """A random UUID: an identifier, not a secret, so it need not cost a system call as uuid4() does."""
    return str(uuid.UUID(int=random.getrandbits(128), version=4))


@web.middleware
async def request_log_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    sent = request.headers.get("X-Request-Id")
    # One that could not be echoed is treated as absent.
    request_id = sent if sent and header_safe(sent) else new_request_id()
    request[REQUEST_ID] = request_id
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    correlation_id = request.headers.get("X-Correlation-Id")
    if sent_twice(request.headers, "X-Correlation-Id"):
        correlation_id = None  # it names no one request (4119): neither echoed nor logged
    # Sent twice, it is none: which copy would hold? (W3C Trace Context's own tests expect so.)
    traceparent = None if sent_twice(request.headers, "traceparent") else request.headers.get("traceparent")
    trace = parse_traceparent(traceparent)
    if trace is not None:
        request[TRACE] = trace
    status = CLIENT_CLOSED
    in_flight = request.app[METRICS].in_flight
    in_flight.inc()
    try:
        response = await handler(request)
        status = response.status
        if not response.prepared:
            response.headers.update(request.get(ANSWER_HEADERS, {}))
            response.headers["X-Request-Id"] = request_id
            if correlation_id is not None and header_safe(correlation_id):
                response.headers["X-Correlation-Id"] = correlation_id
        return response
    except web.HTTPException as passed_on:  # below 400 (a redirect): the error layer shapes the others
        status = passed_on.status
        raise
    finally:
        in_flight.dec()
        if request.transport is None:  # the client went away while its request ran: no answer reaches it
            status, request[ERROR_CODE] = CLIENT_CLOSED, "client_closed"  # whatever the answer would have said
        _log_request(request, status, time.perf_counter() - started, correlation_id)


def _log_request(request: web.Request, status: int, elapsed: float, correlation_id: str | None) -> None:
    """The one line (and the metrics) of a request, however it ended."""
    if status == CLIENT_CLOSED and ERROR_CODE not in request:
        request[ERROR_CODE] = "client_closed"
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else None
    fields = {
        "method": request.method,
        "path": request.path,
        "route": route,
        # A value refused as a correlation id (4119: too long, control characters, not UTF-8) is no name of
        # the request but bytes of a header: not logged.
        "correlation_id": correlation_id if valid_correlation_id(correlation_id) else None,
        "partner_id": request.get(PARTNER_ID),
        "api_key_id": request.get(API_KEY_ID),
        "customer_id": request.match_info.get("customerId"),
        "user_agent": request.headers.get("User-Agent"),
        "pid": os.getpid(),  # which process answered: under `serve --workers`, which worker
    }
    if TRACE in request:
        fields["trace_id"] = request[TRACE].trace_id
    _emit(request.app[METRICS], fields, status, elapsed, request.get(ERROR_CODE), request.get(IDEMPOTENCY),
          remote=request.remote, error=request.get(ERROR))


def log_refusal(metrics: Metrics, status: int, error_code: str, request_id: str, remote: str | None,
                correlation_id: str | None = None) -> None:
    """The line of a request the HTTP layer refused before it was parsed: nothing of it is known but where it
    came from and the ids it gave (its other bytes must not be logged), so method, path and the rest are null."""
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    fields = dict.fromkeys(("method", "path", "route", "partner_id", "api_key_id", "customer_id", "user_agent"))
    fields["correlation_id"] = correlation_id if valid_correlation_id(correlation_id) else None
    _emit(metrics, fields, status, 0.0, error_code, None, remote=remote, error=None)


def _emit(metrics: Metrics, fields: dict[str, object], status: int, elapsed: float, error_code: str | None,
          idempotency: str | None, *, remote: str | None, error: BaseException | None) -> None:
    # Unmatched paths share one label, so probing for routes cannot grow the metric without bound.
    metrics.observe(str(fields["route"] or "unmatched"), str(fields["method"] or "UNKNOWN"), status, elapsed,
                    error_code, idempotency)
    fields.update(status=status, duration_ms=round(elapsed * 1000, 3), error_code=error_code, remote=remote)
    if idempotency is not None:
        fields["idempotency"] = idempotency
    if error is not None:
        log.error("request", exc_info=error, **fields)
    else:  # probes and scrapes too: one line per request, whatever it asked for
        log.info("request", **fields)
