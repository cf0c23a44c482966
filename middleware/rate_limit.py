"""Every /v3 request past the credential and correlation checks takes one of its partner's tokens; with none
left it is answered 429 4118. Every answer after this check carries the RateLimit headers."""
from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.errors import ApiError
from gateway.keys import ANSWER_HEADERS, METRICS, PARTNER_ID, RATE_LIMITER
from gateway.wire import is_partner_path


@web.middleware
async def rate_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not is_partner_path(request.path):
        return await handler(request)
    limiter, partner_id = request.app[RATE_LIMITER], request[PARTNER_ID]
    decision = limiter.spend_held(partner_id) or await limiter.admit(partner_id)
    request[ANSWER_HEADERS] = decision.headers()
    if not decision.admitted:
        request.app[METRICS].rate_limited.labels("partner").inc()
        wait = decision.retry_after_seconds
        raise ApiError(
            "4118",
            f"Too many requests for this partner; retry in {wait} s",
            headers={"Retry-After": str(wait)},
        )
    return await handler(request)
