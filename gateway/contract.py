"""Requests loaded through their schemas, and the one translator from what the schemas report to the API's
answers (docs/authentication.md, docs/history-and-paging.md, docs/placing-orders-and-replay.md).

Every problem of a request is reported in one answer, so a client fixes its request once. The first problem
found decides the code and the message; every offending field is named in `invalidFields` and every bad line
gets its own `Line Item: N, Reason: ...` detail, N being the line's extLineItemNumber (its position when that
is not an integer). Answers about a body or a write's query depend on the request alone, so the idempotency
layer stores and replays them.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast
from urllib.parse import unquote, unquote_to_bytes

from marshmallow import Schema, ValidationError
from multidict import MultiMapping

from gateway.errors import ApiError, OAuthError, Problems
from schemas.events import FeedQuery, FeedQuerySchema
from schemas.history import HistoryQuery, HistoryQuerySchema
from schemas.lines import LineItemRequestSchema
from schemas.order_requests import (
    CreateOrderRequestSchema,
    OrderRequest,
    OrderUpdate,
    UpdateOrderRequestSchema,
    WriteQuerySchema,
    path_customer,
)
from schemas.problems import (
    CONFLICT,
    DISCOUNT,
    DUPLICATE,
    INVALID,
    LIST_KEY,
    NUL,
    OUT_OF_RANGE,
    QUERY,
    QUERY_TOO_LONG,
    QUERY_KEY,
    REQUIRED,
    TOO_LONG,
    TOO_MANY,
    UNKNOWN,
    UNSUPPORTED,
    Problem,
    is_int,
)
from schemas.tokens import MAX_FORM_FIELDS, TokenRequest, TokenRequestSchema, repeated_parameters

# The codes of the problems that have one of their own, by the field they name.
FIELD_CODES: dict[tuple[str, str], str] = {
    ("lineItems", TOO_MANY): "2119",
    ("quantity", INVALID): "2120",
    ("quantity", OUT_OF_RANGE): "2120",
    ("extLineItemNumber", DUPLICATE): "2121",
    ("extLineItemNumber", OUT_OF_RANGE): "2123",
    ("externalReferenceId", TOO_LONG): "2126",
    ("flexDiscountCodes", DISCOUNT): "2141",
    ("discountCode", DISCOUNT): "2141",
    ("orderType", UNSUPPORTED): "1117",
}
# The codes of every other problem, by its kind, whatever the field.
KIND_CODES: dict[str, str] = {
    REQUIRED: "1122",
    UNKNOWN: "1121",
    INVALID: "1117",
    TOO_LONG: "1117",  # a string over MAX_STRING; externalReferenceId has its own limit and code
    NUL: "1117",
    QUERY: "1117",
    QUERY_TOO_LONG: "1132",
}
# RFC 6749 5.2 errors of a token request, by the kind of problem with its grant type.
TOKEN_ERRORS: dict[str, tuple[int, str]] = {
    REQUIRED: (400, "invalid_request"),
    UNSUPPORTED: (400, "unsupported_grant_type"),
}
QUERY_CODE = "1132"  # any problem of a history query

# Nested messages: the schema of each item of a list field, whose REPORT_ORDER orders an item's problems.
_ITEMS: dict[str, type[Schema]] = {"lineItems": LineItemRequestSchema}

_CREATE = CreateOrderRequestSchema()
_UPDATE = UpdateOrderRequestSchema()
_WRITE_QUERY = WriteQuerySchema()
_HISTORY = HistoryQuerySchema()
_FEED = FeedQuerySchema()
_TOKEN = TokenRequestSchema()


def order_request(body: Mapping[str, Any], customer_id: str, query: MultiMapping[str],
                  raw_query: str) -> OrderRequest:
    """The order a POST asks for, or ApiError naming every problem of its body and query. `raw_query`: the
    query as sent, still percent-encoded (as for every function here that takes it)."""
    _refuse_undecodable(raw_query, "1117")
    with path_customer(customer_id):
        return cast(OrderRequest, _load_write(_CREATE, body, query))


def order_update(body: Mapping[str, Any], query: MultiMapping[str], raw_query: str) -> OrderUpdate:
    """The change a PATCH asks for, or ApiError naming every problem of its body and query."""
    _refuse_undecodable(raw_query, "1117")
    return cast(OrderUpdate, _load_write(_UPDATE, body, query))


def _refuse_undecodable(raw_query: str, code: str) -> None:
    """A parameter whose name or value, percent-decoded, is not UTF-8 would be read as U+FFFD: matched and
    echoed (in links) as something the client did not send. It is refused, naming it."""
    if "%" not in raw_query:
        return
    names = []
    for pair in raw_query.split("&"):
        name, _, value = pair.partition("=")
        try:
            unquote_to_bytes(name).decode()
            unquote_to_bytes(value).decode()
        except UnicodeDecodeError:
            names.append(unquote(name, errors="replace"))
    if names:
        raise ApiError(code, "Query parameters must be UTF-8 text", fields=names, replayable=True,
                       details=[f"{name}: not UTF-8 text" for name in names])


def history_query(params: MultiMapping[str], raw_query: str) -> HistoryQuery:
    """The history query, or ApiError 1132 naming every bad parameter (one sent twice first)."""
    _refuse_undecodable(raw_query, QUERY_CODE)
    try:
        return cast(HistoryQuery, _HISTORY.load(params))
    except ValidationError as error:
        raise _query_refusal(cast(dict[str, Any], error.messages)) from None


def feed_query(params: MultiMapping[str], raw_query: str) -> FeedQuery:
    """The change feed's query, or ApiError 1132 naming every bad parameter (one sent twice first)."""
    _refuse_undecodable(raw_query, QUERY_CODE)
    try:
        return cast(FeedQuery, _FEED.load(params))
    except ValidationError as error:
        raise _query_refusal(cast(dict[str, Any], error.messages)) from None


def token_request(form: Sequence[tuple[str, str]], query: Sequence[tuple[str, str]]) -> TokenRequest:
    """The token request of a form body and a query (the body wins), or the OAuthError for a malformed form
    (a parameter sent twice in one place; more than MAX_FORM_FIELDS fields) and then for its grant type
    (checked before the credentials, RFC 6749 5.2)."""
    if len(form) > MAX_FORM_FIELDS:
        raise OAuthError(400, "invalid_request", f"a form has at most {MAX_FORM_FIELDS} fields")
    repeated = repeated_parameters(form) + repeated_parameters(query)
    if repeated:
        raise OAuthError(400, "invalid_request", f"{', '.join(dict.fromkeys(repeated))} sent more than once")
    try:
        return cast(TokenRequest, _TOKEN.load({**dict(query), **dict(form)}))
    except ValidationError as error:
        first = _problems(next(iter(cast(dict[str, Any], error.messages).values())))[0]
        status, code = TOKEN_ERRORS[first.kind]
        raise OAuthError(status, code, first.reason) from None


def code_of(problem: Problem) -> str:
    return FIELD_CODES.get((problem.field, problem.kind)) or KIND_CODES[problem.kind]


def _load_write(schema: Schema, body: Mapping[str, Any], query: MultiMapping[str]) -> Any:
    try:
        _WRITE_QUERY.load(query)
        query_problems: list[Problem] = []
    except ValidationError as error:
        query_problems = cast(dict[str, Any], error.messages)[QUERY_KEY]
    try:
        loaded = schema.load(body)
        messages: dict[str, Any] = {}
    except ValidationError as error:
        messages = cast(dict[str, Any], error.messages)
    if not messages and not query_problems:
        return loaded
    raise _refusal(schema, {**messages, QUERY_KEY: query_problems}, body)


def _refusal(schema: Schema, messages: Mapping[str, Any], body: Mapping[str, Any]) -> ApiError:
    """The problems in the schema's REPORT_ORDER; none after its GATE when that is unsupported."""
    problems = Problems()
    for key in getattr(schema, "REPORT_ORDER"):
        found = messages.get(key)
        if key in _ITEMS and isinstance(found, dict):
            _report_items(problems, found, body[key], getattr(_ITEMS[key], "REPORT_ORDER"))
        else:
            _report(problems, found)
        if key == getattr(schema, "GATE") and any(problem.kind == UNSUPPORTED for problem in _problems(found)):
            break
    error = problems.error()
    if error is None:
        raise AssertionError("a refused request reports at least one problem")
    return error


def _report_items(problems: Problems, found: Mapping[Any, Any], raw: Sequence[Any], order: Sequence[str]) -> None:
    _report(problems, found.get(LIST_KEY))
    for index in sorted(key for key in found if isinstance(key, int)):
        item = raw[index]
        number = item.get("extLineItemNumber") if isinstance(item, dict) else None
        label = number if is_int(number) else index + 1
        for key in order:
            _report(problems, found[index].get(key), line=label)


def _report(problems: Problems, found: Any, line: object = None) -> None:
    for problem in _problems(found):
        problems.add(code_of(problem), problem.field, problem.reason, line=line)


def _problems(found: Any) -> list[Problem]:
    if not found:
        return []
    if not isinstance(found, list) or not all(isinstance(problem, Problem) for problem in found):
        # A message of marshmallow's own: a field without its Problem, a bug to fix in the schema.
        raise TypeError(f"not a list of Problems: {found!r}")
    return found


def _query_refusal(messages: Mapping[str, Any]) -> ApiError:
    conflicts = [name for name, why in messages.items() if _is_conflict(why)]
    others = [name for name in messages if name not in conflicts]
    details = [f"{name}: {messages[name][0].reason}" for name in conflicts]
    details += [f"{name}: {_first_message(messages[name])}" for name in others]
    return ApiError(QUERY_CODE, "Invalid query parameters", details=details, fields=[*conflicts, *others])


def _is_conflict(why: Any) -> bool:
    return isinstance(why, list) and bool(why) and isinstance(why[0], Problem) and why[0].kind == CONFLICT


def _first_message(why: Any) -> str:
    while isinstance(why, (dict, list)):
        why = next(iter(why.values())) if isinstance(why, dict) else why[0]
    return str(why)
