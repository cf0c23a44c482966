"""Every /v3 request names itself with an X-Correlation-Id (the idempotency key of POST and PATCH)."""
from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.errors import ApiError
from gateway.wire import is_partner_path, sent_twice, valid_correlation_id
from schemas.headers import MAX_CORRELATION_ID


@web.middleware
async def correlation_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not is_partner_path(request.path):
        return await handler(request)
    if sent_twice(request.headers, "X-Correlation-Id"):
        raise ApiError("4119", "X-Correlation-Id sent more than once", fields=["X-Correlation-Id"])
    if not valid_correlation_id(request.headers.get("X-Correlation-Id")):
        raise ApiError(
            "4119",
            f"X-Correlation-Id is required: 1 to {MAX_CORRELATION_ID} characters, no control characters",
            fields=["X-Correlation-Id"],
        )
    return await handler(request)
