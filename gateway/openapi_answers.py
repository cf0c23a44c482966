"""What each operation answers, as the API documents tell it.

Handlers name the error codes an operation can answer (`@error_answers(...)`); the status and
message of each come from gateway.errors' table, so the documents cannot disagree with what is sent. Each
error answer lists its codes in the `x-error-codes` extension (machine-readable; tests/test_documented_answers.py
checks every code it observes is listed there) and shows one example per code. The headers of an answer
follow from its path, method and status (`answer_headers`); the examples of what succeeds are named per
operation here, from schemas.examples.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aiohttp_apispec import docs
from multidict import MultiDict

from gateway import contract
from gateway.errors import ERROR_CODES, ApiError
from gateway.wire import is_partner_path, is_token_path
from schemas import examples
from schemas.common import ErrorSchema, OAuthErrorSchema
from schemas.headers import RATE_LIMIT_HEADERS

ERROR_CODES_KEY = "x-error-codes"
ERROR_CODES_ATTRIBUTE = "__error_codes__"
Handler = Callable[..., Any]

# The codes of the layers every /v3 request passes before its handler, in the order they check; then what
# the HTTP layer refuses of any request, and the failures any handler can meet.
# A slow head (408) and a request the HTTP layer cannot read (400 1117) reach every operation.
PARTNER_CHECKS = ("4115", "4117", "4116", "4119", "4118", "405", "408", "413", "414", "415", "431", "1117", "1124",
                  "503")
# What writes add before their handler: the replay of X-Correlation-Id.
WRITE_CHECKS = (*PARTNER_CHECKS, "4120", "4122", "4123")
# The token endpoints answer their own refusals in RFC 6749's shape, the HTTP layer's in the API's.
TOKEN_CHECKS = ("405", "408", "413", "414", "415", "431", "1124", "503")

# Answers of the credential checks, which run before the rate limit: they carry no RateLimit headers.
_BEFORE_RATE_LIMIT = frozenset({401, 403})
_RETRY_AFTER = frozenset({409, 429, 503})
_REPLAYABLE_ERRORS = frozenset({400})  # a write's 4xx stored for replay are all 400s (the replay rules)
_POLLED = frozenset({200, 304})  # the answers of a polled GET that carry its ETag
_OAUTH_ANSWERS = frozenset({200, 400, 401, 429})  # the token endpoints' own answers, not the HTTP layer's


def error_answers(
    *codes: str, oauth: Mapping[int, Iterable[str]] | None = None, notes: Mapping[int, str] | None = None
) -> Callable[[Handler], Handler]:
    """Declares the error answers of an operation: one per status of the API's `codes`, and one per status of
    `oauth` (status -> RFC 6749 `error` values) in that shape. They go into aiohttp-apispec's metadata (the
    Swagger 2.0 document) and into the handler's `__error_codes__` (status -> codes), which the OpenAPI 3
    document reads: aiohttp-apispec rewrites its metadata when the first app starts, extensions dropped."""
    by_status: dict[int, list[str]] = {}
    for code in dict.fromkeys(codes):
        by_status.setdefault(ERROR_CODES[code][0], []).append(code)
    responses = {
        status: _answer(ErrorSchema, listed, (notes or {}).get(status), [ERROR_CODES[c][1] for c in listed])
        for status, listed in by_status.items()
    }
    for status, errors in (oauth or {}).items():
        listed = list(errors)
        meanings = [examples.OAUTH_ERRORS[error] for error in listed]
        responses[status] = _answer(OAuthErrorSchema, listed, (notes or {}).get(status), meanings)

    def declare(handler: Handler) -> Handler:
        handler = docs(responses=responses)(handler)
        setattr(handler, ERROR_CODES_ATTRIBUTE, {status: r[ERROR_CODES_KEY] for status, r in responses.items()})
        return handler

    return declare


def declared_error_codes(handler: Handler) -> dict[int, list[str]]:
    codes: dict[int, list[str]] = getattr(handler, ERROR_CODES_ATTRIBUTE, {})
    return codes


def _answer(schema: type, codes: list[str], note: str | None, meanings: list[str]) -> dict[str, Any]:
    listed = "; ".join(f"`{code}` {meaning}" for code, meaning in zip(codes, meanings))
    return {"schema": schema, "description": f"{note}. {listed}" if note else listed, ERROR_CODES_KEY: codes}


def error_examples(codes: Iterable[str], refusals: Mapping[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """One named example per code, in the API's error shape or RFC 6749's: the operation's `refusals` where
    one has the code, else what schemas.examples says of it."""
    named = {}
    for code in codes:
        if code in examples.OAUTH_ERRORS:
            value: dict[str, Any] = {"error": code, "error_description": examples.OAUTH_ERRORS[code]}
            named[code] = {"summary": code, "value": value}
            continue
        value = refusals.get(code) or _error(code)
        named[code] = {"summary": f"{code}: {value['message']}", "value": value}
    return named


def _error(code: str) -> dict[str, Any]:
    details, fields = examples.ERROR_DETAILS.get(code, ([], []))
    message = examples.ERROR_MESSAGES.get(code, ERROR_CODES[code][1])
    return {"code": code, "message": message, "additionalDetails": details, "invalidFields": fields}


_CONTRACTS: dict[str, Callable[[Mapping[str, Any]], object]] = {
    "place_order": lambda body: contract.order_request(body, examples.CUSTOMER_ID, MultiDict(), ""),
    "update_order": lambda body: contract.order_update(body, MultiDict(), ""),
}


def refusal_examples(operation_id: str) -> dict[str, dict[str, Any]]:
    """What the request contract answers the operation's examples of refused bodies (schemas.examples):
    code -> the error's body."""
    answers = {}
    for code, body in examples.REFUSED_BODIES.get(operation_id, {}).items():
        try:
            _CONTRACTS[operation_id](body)
        except ApiError as refused:
            answers[code] = refused.body()
        if answers.get(code, {}).get("code") != code:
            raise AssertionError(f"{operation_id}: the refused body of {code} is not answered {code}")
    return answers


def answer_headers(path: str, method: str, status: int) -> list[str]:
    """The names (components of the document) of the headers an answer may carry."""
    names = ["X-Request-Id"]
    partner = is_partner_path(path)
    if partner:
        names.append("X-Correlation-Id")
        if status not in _BEFORE_RATE_LIMIT:
            names += RATE_LIMIT_HEADERS
        if method in ("post", "patch") and (200 <= status < 300 or status in _REPLAYABLE_ERRORS):
            names.append("Idempotent-Replayed")
        if method == "get" and status in _POLLED:
            names += ["ETag", "Cache-Control"]
    elif is_token_path(path) and status in _OAUTH_ANSWERS:
        names.append("Cache-Control")  # no-store on a token and on the OAuth errors (RFC 6749 5.1)
    if status in _RETRY_AFTER:
        names.append("Retry-After")
    names += {401: ["WWW-Authenticate"], 405: ["Allow"], 201: ["Location"]}.get(status, [])
    return names


# Named examples of the answers that succeed: operationId -> status -> name -> value.
SUCCESS_EXAMPLES: dict[str, dict[int, dict[str, Any]]] = {
    "order_history": {200: {"page": examples.ORDER_PAGE}},
    "order_details": {200: {"order": examples.ORDER}},
    "place_order": {201: {"placed": examples.PLACED_ORDER}, 200: {"preview": examples.PREVIEWED_ORDER}},
    "update_order": {200: {"updated": examples.UPDATED_ORDER}},
    "order_events": {200: {"page": examples.EVENT_PAGE}},
    "token_v3": {200: {"token": examples.TOKEN_SECONDS}},
    "token_v2": {200: {"token": examples.TOKEN_MILLISECONDS}},
}
# Named examples of request bodies: operationId -> name -> value. The first is the one Swagger UI fills in.
REQUEST_EXAMPLES: dict[str, dict[str, Any]] = {
    "place_order": {"new": examples.NEW_ORDER, "preview": examples.PREVIEW_ORDER,
                    "renewal": examples.RENEWAL_ORDER, "return": examples.RETURN_ORDER},
    "update_order": {"update": examples.ORDER_UPDATE},
}
# Examples of path parameters: those of the demo data.
PATH_EXAMPLES = {"customerId": examples.CUSTOMER_ID, "orderId": examples.ORDER_ID}
