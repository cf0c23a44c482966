"""At most GATEWAY_MAX_REQUESTS_IN_FLIGHT API requests (partner API and tokens) at once in a process: each may
hold a body of up to the body limit in memory while it arrives. One more is answered 503 before its body is
read, and its connection is closed rather than the body read to its end. Idle connections cost nothing
here, nor do the operations endpoints (a liveness probe of a busy process must not fail)."""
from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.errors import ApiError
from gateway.keys import CAPACITY
from gateway.wire import is_partner_path, is_token_path

RETRY_AFTER_SECONDS = 1
BUSY = "The gateway is serving as many requests as it may at once; retry after the time given"


@web.middleware
async def capacity_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not (is_partner_path(request.path) or is_token_path(request.path)):
        return await handler(request)
    capacity = request.app[CAPACITY]
    if capacity.serving >= capacity.limit:
        raise ApiError("503", BUSY, headers={"Retry-After": str(RETRY_AFTER_SECONDS), "Connection": "close"})
    capacity.serving += 1
    try:
        return await handler(request)
    finally:
        capacity.serving -= 1
