"""The requests the client sends and the answers it reads, as plain data.

Nothing here does I/O: the synchronous and the asynchronous client hand these values to their own transport,
so that every decision about what to send and how to read the answer is made once, for both.
"""
from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timezone
from typing import Any
from urllib.parse import quote, urlencode

from partner_orders_client.errors import ApiError, NetworkError, UnexpectedAnswer

JSON = "application/json"
QueryValue = str | int | bool | date | datetime | Iterable[str] | None


@dataclass(frozen=True)
class Request:
    """One HTTP request, sent as it is on every attempt: its correlation id is minted once, with it."""

    method: str
    target: str  # root-relative path with its query string, as the gateway's own links are
    # Out of its repr: they hold the client secret and the bearer token, and a traceback that shows local
    # variables (error trackers record them) would keep them.
    body: bytes | None = field(default=None, repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)

    def with_headers(self, **extra: str) -> Request:
        return replace(self, headers={**self.headers, **extra})


@dataclass(frozen=True)
class Answer:
    """What came back: status, headers (a case-insensitive mapping from the transport) and the raw body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class Failure:
    """No answer: the transport's exception (connection refused or dropped, timeout)."""

    error: Exception


Reply = Answer | Failure


def api_request(
    method: str, target: str, *, body: Mapping[str, Any] | None = None, correlation_id: str | None = None
) -> Request:
    """A /v3 request without its credentials (added on each attempt, as the token may be renewed in
    between): a correlation id, the caller's or a new one, that every attempt of this call shares."""
    headers = {"X-Correlation-Id": str(uuid.uuid4()) if correlation_id is None else _sendable(correlation_id),
               "Accept": JSON}
    if body is None:
        return Request(method, target, headers=headers)
    headers["Content-Type"] = JSON
    return Request(method, target, json.dumps(body, separators=(",", ":")).encode(), headers)


MAX_CORRELATION_ID = 255
# Printable ASCII, spaces only inside: what goes into a header as it is, and what the gateway takes as a key.
_CORRELATION_ID = re.compile(r"[!-~](?:[ -~]{0,%d}[!-~])?" % (MAX_CORRELATION_ID - 2))


def _sendable(correlation_id: str) -> str:
    """The caller's correlation id, refused before anything is sent when no attempt could succeed: retried,
    an id the HTTP library cannot send was "no answer" six times over, and an empty one was replaced."""
    if not _CORRELATION_ID.fullmatch(correlation_id):
        raise ValueError(f"correlation_id must be 1 to {MAX_CORRELATION_ID} printable ASCII characters, spaces "
                         f"only inside: {correlation_id[:300]!r}")
    return correlation_id


def path(*segments: str) -> str:
    """A root-relative path; ids are opaque strings, so each is escaped whole (a `/` in one stays in it), and
    an id of `.` or `..` is sent as the id it is, not as a step up the path that the URL would be resolved to."""
    return "/" + "/".join(_DOTS.get(segment) or quote(segment, safe="") for segment in segments)


_DOTS = {".": "%2E", "..": "%2E%2E"}  # RFC 3986 6.2.2.2: encoded, they are no dot-segments


def with_query(target: str, params: Mapping[str, QueryValue]) -> str:
    """The target with the parameters that have a value; a sequence is sent as the parameter repeated."""
    pairs: list[tuple[str, str]] = []
    for name, value in params.items():
        pairs.extend((name, text) for text in _query_texts(value))
    return f"{target}?{urlencode(pairs, quote_via=quote)}" if pairs else target


def _query_texts(value: QueryValue) -> list[str]:
    if value is None:
        return []
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, datetime):
        return [_zulu(value)]
    if isinstance(value, date):
        return [value.isoformat()]
    if isinstance(value, (str, int)):
        return [str(value)]
    return [str(item) for item in value]


def _zulu(moment: datetime) -> str:
    """The only timestamp form the API accepts: UTC with a `Z`, its fraction of a second too (the API compares
    at full precision). A naive datetime has no known zone."""
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} has no time zone: pass an aware datetime (the API compares in UTC)")
    form = "%Y-%m-%dT%H:%M:%S.%fZ" if moment.microsecond else "%Y-%m-%dT%H:%M:%SZ"
    return moment.astimezone(timezone.utc).strftime(form)


def json_object(answer: Answer) -> dict[str, Any]:
    """The answer's JSON object; anything else came from something other than the gateway."""
    try:
        body = json.loads(answer.body)
    except ValueError as error:
        raise UnexpectedAnswer(f"{answer.status} answer is not JSON: {answer.body[:200]!r}") from error
    if not isinstance(body, dict):
        raise UnexpectedAnswer(f"{answer.status} answer is not a JSON object: {answer.body[:200]!r}")
    return body


def refusal(reply: Reply, attempts: int) -> Exception:
    """The exception that ends a call whose last reply was not a success."""
    if isinstance(reply, Failure):
        return NetworkError(f"no answer after {attempts} attempt(s): {reply.error!r}", attempts)
    return api_error(reply)


def api_error(answer: Answer) -> ApiError:
    """Reads the API's error shape, or the token endpoint's OAuth one (RFC 6749 5.2)."""
    try:
        body = json_object(answer)
    except UnexpectedAnswer:
        body = {}
    request_id = answer.headers.get("X-Request-Id")
    if "code" in body:
        return ApiError(
            answer.status, str(body["code"]), str(body.get("message", "")),
            _strings(body.get("additionalDetails")), _strings(body.get("invalidFields")), request_id=request_id,
        )
    if "error" in body:
        return ApiError(answer.status, str(body["error"]), str(body.get("error_description", "")),
                        request_id=request_id)
    text = answer.body[:200].decode("utf-8", errors="replace")
    return ApiError(answer.status, str(answer.status), text, request_id=request_id)


def error_code(reply: Reply) -> str | None:
    """The API code of an error answer, None for a success, a failure or a body without one."""
    if isinstance(reply, Failure) or reply.status < 400:
        return None
    return api_error(reply).code


def _strings(value: Any) -> list[str]:
    return [str(item) for item in value] if isinstance(value, list) else []
