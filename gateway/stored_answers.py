"""Turning stored answers into HTTP responses: shared by the replay middleware and the order handlers."""
from __future__ import annotations

import orjson
from aiohttp import web

from gateway.idempotency import StoredResponse
from gateway.keys import ERROR_CODE, IDEMPOTENCY

REPLAYED_HEADER = "Idempotent-Replayed"


def respond(request: web.Request, response: StoredResponse, replayed: bool) -> web.Response:
    """The answer as stored: the same bytes, content type and location every time it is given."""
    answer = web.Response(body=response.body, status=response.status)
    answer.headers["Content-Type"] = response.content_type
    if response.location is not None:
        answer.headers["Location"] = response.location
    if replayed:
        answer.headers[REPLAYED_HEADER] = "true"
    request[IDEMPOTENCY] = "replayed" if replayed else "stored"
    if response.status >= 400:
        request[ERROR_CODE] = str(orjson.loads(response.body).get("code"))
    return answer
