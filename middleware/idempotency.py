"""X-Correlation-Id replay for POST and PATCH under /v3 (SPEC 7).

A repeated key with the same request gets the stored answer; with another request, 422 4123; while the
first is still executing in this process, 409 4122. The decisive check is repeated inside the write
transaction (gateway.ordering), so duplicates racing through different processes still make one order.
"""
from __future__ import annotations

import time

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.errors import ApiError
from gateway.idempotency import RETRY_AFTER_SECONDS, IdempotencyKey, StoredResponse, fingerprint
from gateway.stored_answers import respond
from gateway.keys import CLAIM, IDEMPOTENCY, IN_FLIGHT, JSON_BODY, PARTNER_ID, REQUEST_ID, SETTINGS, STORAGE
from gateway.ordering import JSON, earlier_outcome, remember
from gateway.wire import is_partner_path

WRITE_METHODS = frozenset({"POST", "PATCH"})


@web.middleware
async def idempotency_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if (
        request.method not in WRITE_METHODS
        or not is_partner_path(request.path)
        or request.match_info.http_exception is not None  # routing answers 404/405 first
    ):
        return await handler(request)
    raw = await request.read()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise ApiError("1117", "The request body must be a JSON object")

    storage, settings = request.app[STORAGE], request.app[SETTINGS]
    now = int(time.time())
    partner_id, key = request[PARTNER_ID], request.headers["X-Correlation-Id"]
    claim = IdempotencyKey(
        partner_id=partner_id,
        key=key,
        fingerprint=fingerprint(request.method, request.path, list(request.query.items()), body),
        request_id=request[REQUEST_ID],
        now=now,
        not_before=now - settings.idempotency_retention_seconds,
    )
    try:
        stored = await storage.stored_outcome(partner_id, key, claim.not_before)
        if stored is not None:
            outcome = earlier_outcome(stored, claim)
            return respond(request, outcome.response, outcome.replayed)
        in_flight = request.app[IN_FLIGHT]
        if (partner_id, key) in in_flight:
            request[IDEMPOTENCY] = "conflict"
            raise ApiError("4122", headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
        if "X-Request-Id" in request.headers and await storage.request_id_used(
            partner_id, claim.request_id, claim.not_before
        ):
            raise ApiError("4120", fields=["X-Request-Id"])
        request[CLAIM], request[JSON_BODY] = claim, body
        in_flight.add((partner_id, key))
        try:
            return await handler(request)
        except ApiError as error:
            if not error.replayable:
                raise
            refusal = StoredResponse(error.status, orjson.dumps(error.body()), JSON)
            outcome = await remember(storage, claim, refusal)
            return respond(request, outcome.response, outcome.replayed)
        finally:
            in_flight.discard((partner_id, key))
    except ApiError as error:
        if error.code == "4123":
            request[IDEMPOTENCY] = "mismatch"
        raise
