"""X-Correlation-Id replay (SPEC 7): request fingerprints and the records stored with each outcome."""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

import orjson

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
