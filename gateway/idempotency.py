"""X-Correlation-Id replay (docs/placing-orders-and-replay.md): a request's claim on its key, its fingerprint, the answer stored."""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import orjson

RETRY_AFTER_SECONDS = 1  # a duplicate of a request still executing may come back this soon


@dataclasses.dataclass(frozen=True)
class Answer:
    """A response as stored under a correlation id, and replayed byte for byte."""

    status: int
    body: bytes
    content_type: str
    location: str | None = None


@dataclasses.dataclass(frozen=True)
class Claim:
    """One request's claim on its partner's correlation id."""

    partner_id: str
    key: str
    fingerprint: str
    request_id: str
    now: int  # when the request arrived, seconds since the epoch
    not_before: int  # answers stored before this have expired
    traceparent: str | None = None  # the request's W3C trace context, which its writes' events carry on


def canonical_json(value: Any) -> bytes:
    """Key order and white space do not matter."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def fingerprint(method: str, path: str, query: list[tuple[str, str]], body: Any) -> str:
    """Method, path, query parameters in any order, and the JSON body in canonical form."""
    digest = hashlib.sha256()
    digest.update(canonical_json([method.upper(), path, sorted(query), body]))
    return digest.hexdigest()


def fingerprint_of_bytes(method: str, path: str, query: list[tuple[str, str]], body: bytes) -> str:
    """The same, with the body as given: for a body whose parsed value does not stand for it alone, its
    canonical text with the numbers as written (schemas.bodies.JsonBody.as_written), or, for one refused
    for a member sent twice or nesting too deep, its bytes. It never equals a canonical one: that text has no
    line break."""
    digest = hashlib.sha256()
    digest.update(canonical_json([method.upper(), path, sorted(query)]))
    digest.update(b"\n" + body)
    return digest.hexdigest()
