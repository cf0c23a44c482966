"""X-Correlation-Id replay for POST and PATCH under /v3 (docs/placing-orders-and-replay.md).

A repeated key with the same request gets the stored answer; with another request, 422 4123; while the
first is still executing in this process, 409 4122. The decisive check is repeated inside the write
transaction (gateway.order_writes), so duplicates racing through different processes still make one order.
"""
from __future__ import annotations

import time

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.errors import ApiError
from gateway.idempotency import RETRY_AFTER_SECONDS, Answer, Claim, fingerprint, fingerprint_of_bytes
from gateway.keys import CLAIM, IDEMPOTENCY, IN_FLIGHT, JSON_BODY, PARTNER_ID, REQUEST_ID, SETTINGS, STORAGE, TRACE
from gateway.order_writes import JSON, keep_answer, replay
from gateway.stored_answers import respond
from gateway.wire import is_partner_path
from schemas.bodies import BodyProblem, JsonBody, parse_object

WRITE_METHODS = frozenset({"POST", "PATCH"})


@web.middleware
async def idempotency_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not is_partner_path(request.path) or request.match_info.http_exception is not None:
        return await handler(request)  # routing answers 404/405 first
    # The 413 of the check table for every method: a body a GET does not read was taken at any size (aiohttp
    # refuses one only as it reads it, past the limit).
    if (request.content_length or 0) > request.app[SETTINGS].max_body_bytes:
        raise ApiError("413")
    if request.method not in WRITE_METHODS:
        return await handler(request)
    raw = await request.read()
    try:
        body = parse_object(raw)
    except BodyProblem as problem:
        refusal = ApiError("1117", problem.reason, details=[problem.reason], fields=problem.fields, replayable=True)
        if not problem.an_object:  # not stored: the layers before the handler refuse it, whatever the key
            raise refusal from None
        body, handler = JsonBody({}, as_written=raw), _refusing(refusal)  # stored like the handler's refusals
    line = _request_line(request)
    claim = _claim(request, fingerprint(*line, body.value) if body.as_written is None
                   else fingerprint_of_bytes(*line, body.as_written))
    try:
        return await _answer(request, handler, claim, body.value)
    except ApiError as error:
        if error.code == "4123":
            request[IDEMPOTENCY] = "mismatch"
        raise


def _request_line(request: web.Request) -> tuple[str, str, list[tuple[str, str]]]:
    return request.method, request.path, list(request.query.items())


def _refusing(refusal: ApiError) -> Handler:
    async def refuse(request: web.Request) -> web.StreamResponse:
        raise refusal

    return refuse


def _claim(request: web.Request, request_fingerprint: str) -> Claim:
    now = int(time.time())
    return Claim(
        partner_id=request[PARTNER_ID],
        key=request.headers["X-Correlation-Id"],
        fingerprint=request_fingerprint,
        request_id=request[REQUEST_ID],
        now=now,
        not_before=now - request.app[SETTINGS].idempotency_retention_seconds,
        traceparent=request[TRACE].header() if TRACE in request else None,
    )


async def _answer(request: web.Request, handler: Handler, claim: Claim, body: dict[str, object]) -> web.StreamResponse:
    """The stored answer replayed, a refusal of the key, or the handler's answer (stored by it, or here)."""
    storage, in_flight, key = request.app[STORAGE], request.app[IN_FLIGHT], (claim.partner_id, claim.key)
    stored = await storage.stored_answer(claim.partner_id, claim.key, claim.not_before)
    if stored is not None:
        reply = replay(stored, claim)
        return respond(request, reply.answer, reply.replayed)
    if key in in_flight:
        request[IDEMPOTENCY] = "conflict"
        raise ApiError("4122", headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    if "X-Request-Id" in request.headers and await storage.request_id_used(
        claim.partner_id, claim.request_id, claim.not_before
    ):
        raise ApiError("4120", fields=["X-Request-Id"])
    request[CLAIM], request[JSON_BODY] = claim, body
    in_flight.add(key)
    try:
        return await handler(request)
    except ApiError as error:
        if not error.replayable:
            raise
        reply = await keep_answer(storage, claim, Answer(error.status, orjson.dumps(error.body()), JSON))
        return respond(request, reply.answer, reply.replayed)
    finally:
        in_flight.discard(key)
