"""Every typed key of the application and of requests, in one place."""
from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from gateway.auth_failures import FailedAuthentications
    from gateway.credential_cache import CredentialCache
    from gateway.feed import EventFeed
    from gateway.http_limits import Capacity
    from gateway.history import HistoryService
    from gateway.idempotency import Claim
    from gateway.metrics import Metrics
    from gateway.openapi import ApiDocs
    from gateway.rate_limit import RateLimiter
    from gateway.settings import Settings
    from gateway.storage import Storage
    from gateway.tokens import TokenService
    from gateway.tracing import TraceContext

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
STORAGE: web.AppKey[Storage] = web.AppKey("storage")
TOKENS: web.AppKey[TokenService] = web.AppKey("tokens")
CREDENTIALS: web.AppKey[CredentialCache] = web.AppKey("credentials")
HISTORY: web.AppKey[HistoryService] = web.AppKey("history")
FEED: web.AppKey[EventFeed] = web.AppKey("feed")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics")
RATE_LIMITER: web.AppKey[RateLimiter] = web.AppKey("rate_limiter")
AUTH_FAILURES: web.AppKey[FailedAuthentications] = web.AppKey("auth_failures")
# The OpenAPI 3 document and the Swagger UI page, built once at startup.
API_DOCS: web.AppKey[ApiDocs] = web.AppKey("api_docs")

# Handed from middleware to handlers and to the request log.
REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id")
PARTNER_ID: web.RequestKey[str] = web.RequestKey("partner_id")
API_KEY_ID: web.RequestKey[str] = web.RequestKey("api_key_id")
ERROR_CODE: web.RequestKey[str] = web.RequestKey("error_code")
# The request's valid W3C `traceparent`, if it sent one.
TRACE: web.RequestKey[TraceContext] = web.RequestKey("trace")
ERROR: web.RequestKey[BaseException] = web.RequestKey("error")
# Headers every answer to the request carries from here on, whatever answers it (the RateLimit headers).
ANSWER_HEADERS: web.RequestKey[dict[str, str]] = web.RequestKey("answer_headers")
# How the idempotency layer answered: stored, replayed, conflict or mismatch.
IDEMPOTENCY: web.RequestKey[str] = web.RequestKey("idempotency")
# Set by the idempotency middleware for POST and PATCH: the parsed JSON body and the request's claim.
JSON_BODY: web.RequestKey[Mapping[str, Any]] = web.RequestKey("json_body")
CLAIM: web.RequestKey[Claim] = web.RequestKey("claim")
# The API requests this process is serving, against its limit.
CAPACITY: web.AppKey[Capacity] = web.AppKey("capacity")
# Correlation ids of this process's requests still executing: a duplicate is answered 409 at once.
IN_FLIGHT: web.AppKey[set[tuple[str, str]]] = web.AppKey("in_flight")
