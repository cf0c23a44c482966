"""Turning stored answers into HTTP responses: shared by the replay middleware and the order handlers."""
from __future__ import annotations

import orjson
from aiohttp import web

from gateway.idempotency import Answer
from gateway.keys import ERROR_CODE, IDEMPOTENCY

REPLAYED_HEADER = "Idempotent-Replayed"


def respond(request: web.Request, answer: Answer, replayed: bool) -> web.Response:
    """The answer as stored: the same bytes, content type and location every time it is given."""
    response = web.Response(body=answer.body, status=answer.status)
    response.headers["Content-Type"] = answer.content_type
    if answer.location is not None:
        response.headers["Location"] = answer.location
    if replayed:
        response.headers[REPLAYED_HEADER] = "true"
    request[IDEMPOTENCY] = "replayed" if replayed else "stored"
    if answer.status >= 400:
        request[ERROR_CODE] = str(orjson.loads(answer.body).get("code"))
    return response
