"""X-Correlation-Id replay (SPEC 7): request fingerprints and the records stored with each outcome."""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import orjson
from aiohttp import web

from gateway.keys import ERROR_CODE, IDEMPOTENCY

RETRY_AFTER_SECONDS = 1  # a duplicate of a request still executing may come back this soon


@dataclasses.dataclass(frozen=True)
class StoredResponse:
    status: int
    body: bytes
    content_type: str
    location: str | None = None


@dataclasses.dataclass(frozen=True)
class IdempotencyKey:
    """One request's claim on its partner's correlation id."""

    partner_id: str
    key: str
    fingerprint: str
    request_id: str
    now: int  # when the request arrived, seconds since the epoch
    not_before: int  # outcomes stored before this have expired

    def record(self, response: StoredResponse) -> IdempotencyRecord:
        return IdempotencyRecord(self, response)


@dataclasses.dataclass(frozen=True)
class IdempotencyRecord:
    claim: IdempotencyKey
    response: StoredResponse


def canonical_json(value: Any) -> bytes:
    """Key order and white space do not matter."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def fingerprint(method: str, path: str, query: list[tuple[str, str]], body: Any) -> str:
    """Method, path, query parameters in any order, and the JSON body in canonical form."""
    digest = hashlib.sha256()
    digest.update(canonical_json([method.upper(), path, sorted(query), body]))
    return digest.hexdigest()


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
