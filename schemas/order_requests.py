"""What a client sends to place (POST) or update (PATCH) an order, and the query those two take.

These schemas validate in production and document the same limits. They report every problem of a request
at once, as Problems (schemas.problems), under the key of the field or rule that found them; REPORT_ORDER
says in which order the answer lists them, and gateway.contract gives them the API's codes.
"""
from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from typing import Any, ClassVar

from marshmallow import EXCLUDE, Schema, ValidationError, fields, post_load, validate, validates_schema
from multidict import MultiMapping

from schemas.enums import CREATE_ORDER_TYPES, UNSUPPORTED_ORDER_TYPES
from schemas.lines import (
    DISCOUNT_FIELDS,
    EMPTY,
    MAX_LINES,
    LineItemRequestSchema,
    LineRequest,
    Lines,
    Sent,
    currency_code,
    discount_problems,
    line_rules,
)
from schemas.problems import (
    INVALID,
    LONG_KEY,
    MAX_STRING,
    NUL_KEY,
    QUERY,
    QUERY_TOO_LONG,
    SENT_TWICE,
    QUERY_KEY,
    REQUIRED,
    SHARED_KEY,
    TOO_LONG,
    UNKNOWN_KEY,
    UNSUPPORTED,
    Coded,
    CodedPattern,
    Problem,
    fail,
    field_messages,
    nul_problems,
    shorter_than_their_limits,
    unknown_problems,
)

MAX_EXTERNAL_REFERENCE = 35  # characters of externalReferenceId, as the partner API allows
FORBIDDEN_REFERENCE_CHARS = '<>"[]'  # the partner API refuses these in externalReferenceId
EXTERNAL_REFERENCE_PATTERN = f"^[^{re.escape(FORBIDDEN_REFERENCE_CHARS)}]*$"
FETCH_PRICE = "fetch-price"
FLAG_VALUES = ("true", "false")

# What clients send back from what they read: accepted and ignored.
ORDER_ECHO = frozenset({
    "orderId", "creationDate", "status", "source", "links",
    "flexDiscounts", "pricing", "proratedDays", "remainingQuantity", "pricingSummary",
})
_ORDER_FIELDS = frozenset({
    "orderType", "externalReferenceId", "referenceOrderId", "currencyCode", "lineItems", "customerId",
    "cancellingItems", *DISCOUNT_FIELDS, *ORDER_ECHO,
})

# Strings with a limit of their own (MAX_EXTERNAL_REFERENCE, 2126); every other one has MAX_STRING.
_OWN_LIMITS = frozenset({"externalReferenceId"})

# The customer of the request's path, which a customerId in the body must equal (marshmallow 3.24 deprecated
# schema context in favour of a ContextVar).
_PATH_CUSTOMER: ContextVar[str] = ContextVar("path_customer")


@contextlib.contextmanager
def path_customer(customer_id: str) -> Iterator[None]:
    token = _PATH_CUSTOMER.set(customer_id)
    try:
        yield
    finally:
        _PATH_CUSTOMER.reset(token)


@dataclasses.dataclass(frozen=True)
class OrderRequest:
    order_type: str
    external_reference_id: str
    reference_order_id: str
    currency_code: str
    lines: tuple[LineRequest, ...]


@dataclasses.dataclass(frozen=True)
class OrderUpdate:
    external_reference_id: str


@dataclasses.dataclass(frozen=True)
class WriteQuery:
    fetch_price: bool  # accepted; no prices are known, so it changes nothing


def _problem(kind: str, field: str, reason: str) -> list[Problem]:
    return [Problem(kind, field, reason)]


def _external_reference(required: bool) -> fields.String:
    name = "externalReferenceId"
    not_string = Problem(INVALID, name, f"{name} must be a string")
    return fields.String(
        required=required,
        validate=[
            Coded(validate.Length(max=MAX_EXTERNAL_REFERENCE),
                  Problem(TOO_LONG, name, f"{name} is longer than {MAX_EXTERNAL_REFERENCE}")),
            CodedPattern(EXTERNAL_REFERENCE_PATTERN, Problem(INVALID, name, f"{name} must not contain < > \" [ ]")),
        ],
        error_messages=field_messages(invalid=not_string, null=not_string,
                                      required=Problem(REQUIRED, name, f"{name} is required")),
        metadata={"description": f"At most {MAX_EXTERNAL_REFERENCE} characters, none of {FORBIDDEN_REFERENCE_CHARS}"},
    )


class OrderType(fields.String):
    """One of the types this gateway places; the partner API's others are named as unsupported."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if value in UNSUPPORTED_ORDER_TYPES:
            raise fail(UNSUPPORTED, "orderType", f"orderType {value} is not supported by this gateway")
        if value not in CREATE_ORDER_TYPES:
            raise self.make_error("invalid")
        return str(value)


_ONE_OF = Problem(INVALID, "orderType", f"orderType must be one of {', '.join(CREATE_ORDER_TYPES)}")


class CreateOrderRequestSchema(Schema):
    """What a client sends; fields of the order resource it read back are accepted and ignored."""

    class Meta:
        unknown = EXCLUDE  # reported by _rules, in the order sent, with the accepted echoes left out

    # The answer lists problems in this order. An orderType of the partner API that this gateway does not
    # support answers alone (GATE): the rest of such a request is written for another kind of order.
    REPORT_ORDER: ClassVar[tuple[str, ...]] = (
        NUL_KEY, QUERY_KEY, "orderType", UNKNOWN_KEY, LONG_KEY, "customerId", "referenceOrderId", "externalReferenceId",
        "currencyCode", *DISCOUNT_FIELDS, "cancellingItems", "lineItems", SHARED_KEY,
    )
    GATE: ClassVar[str | None] = "orderType"

    orderType = OrderType(
        required=True, validate=validate.OneOf(CREATE_ORDER_TYPES),
        error_messages=field_messages(required=Problem(REQUIRED, "orderType", "orderType is required"),
                                      invalid=_ONE_OF, null=_ONE_OF),
    )
    externalReferenceId = _external_reference(required=False)
    referenceOrderId = Sent(metadata={"description": "Required on RETURN; empty otherwise", "maxLength": MAX_STRING})
    currencyCode = currency_code(null_is_absent=True,
                                metadata={"description": "ISO 4217; here or on every line, the same everywhere"})
    customerId = Sent(metadata={"description": "Accepted when equal to the path's", "maxLength": MAX_STRING})
    lineItems = Lines(fields.Nested(LineItemRequestSchema), required=True,
                      metadata={"description": f"1 to {MAX_LINES} lines"})

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def _rules(self, data: dict[str, Any], original: Mapping[str, Any], **kwargs: Any) -> None:
        """The rules that need more than one field, or the members no field declares."""
        order_type = data.get("orderType")
        found: dict[str, Any] = {
            # Each line reports its own NULs, with its Line Item detail.
            NUL_KEY: nul_problems({name: value for name, value in original.items() if name != "lineItems"}),
            UNKNOWN_KEY: unknown_problems(original, _ORDER_FIELDS),
            # Each line reports its own long strings, with its Line Item detail.
            LONG_KEY: shorter_than_their_limits(original, _OWN_LIMITS | {"lineItems"}),
        }
        if "customerId" in original and original["customerId"] != _PATH_CUSTOMER.get():
            found["customerId"] = _problem(INVALID, "customerId", "customerId differs from the customer of the path")
        found["referenceOrderId"] = _reference_problems(order_type, original.get("referenceOrderId", ""))
        found.update(discount_problems(original, "the order would be billed without them"))
        if original.get("cancellingItems") not in EMPTY:
            found["cancellingItems"] = _problem(INVALID, "cancellingItems", "cancellingItems must be empty")
        if data.get("lineItems") is not None:  # without a valid orderType, the rules that do not need it
            lines, shared = line_rules(order_type, data.get("currencyCode"), original["lineItems"], data["lineItems"],
                                       order_sent_currency=original.get("currencyCode") is not None)
            found["lineItems"], found[SHARED_KEY] = lines, shared
        found = {key: value for key, value in found.items() if value}
        if found:
            raise ValidationError(found)

    @post_load(pass_original=True)
    def _order(self, data: dict[str, Any], original: Mapping[str, Any], **kwargs: Any) -> OrderRequest:
        order_type, currency = data["orderType"], data.get("currencyCode")
        lines = tuple(
            LineRequest.of(part, raw, order_type, currency)
            for part, raw in zip(data["lineItems"], original["lineItems"])
        )
        return OrderRequest(
            order_type=order_type,
            external_reference_id=data.get("externalReferenceId", ""),
            reference_order_id=data["referenceOrderId"] if order_type == "RETURN" else "",
            currency_code=lines[0].currency_code,  # validated: every line and the order share one
            lines=lines,
        )


def _reference_problems(order_type: str | None, reference: Any) -> list[Problem]:
    name = "referenceOrderId"
    if order_type is None:
        return []
    if order_type == "RETURN":
        if reference == "" or reference is None:
            return _problem(REQUIRED, name, f"{name} is required on a RETURN")
        if not isinstance(reference, str):
            return _problem(INVALID, name, f"{name} must be a string")
    elif reference != "":
        return _problem(INVALID, name, f"{name} must be empty unless the order is a RETURN")
    return []


class UpdateOrderRequestSchema(Schema):
    class Meta:
        unknown = EXCLUDE  # reported by _rules, in the order sent

    REPORT_ORDER: ClassVar[tuple[str, ...]] = (QUERY_KEY, NUL_KEY, UNKNOWN_KEY, LONG_KEY, "externalReferenceId")
    GATE: ClassVar[str | None] = None

    externalReferenceId = _external_reference(required=True)

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def _rules(self, data: dict[str, Any], original: Mapping[str, Any], **kwargs: Any) -> None:
        found = {
            NUL_KEY: nul_problems(original),
            UNKNOWN_KEY: unknown_problems(
                original, {"externalReferenceId"}, ": only externalReferenceId can be changed"
            ),
            LONG_KEY: shorter_than_their_limits(original, _OWN_LIMITS),
        }
        found = {key: value for key, value in found.items() if value}
        if found:
            raise ValidationError(found)

    @post_load
    def _update(self, data: dict[str, Any], **kwargs: Any) -> OrderUpdate:
        return OrderUpdate(data["externalReferenceId"])


class _Flag(fields.Boolean):
    """Types the first value; every value, repeated ones included, is checked by WriteQuerySchema._rules."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        return value == "true"


class WriteQuerySchema(Schema):
    """POST and PATCH take only `fetch-price` (true/false; no prices are known, so it changes nothing)."""

    class Meta:
        unknown = EXCLUDE  # reported by _rules, with each value, in the order sent

    fetch_price = _Flag(
        truthy={FLAG_VALUES[0]}, falsy={FLAG_VALUES[1]}, data_key=FETCH_PRICE,
        metadata={"description": "Accepted; no prices"},
    )

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def _rules(self, data: dict[str, Any], original: MultiMapping[str], **kwargs: Any) -> None:
        found: list[Problem] = []
        for name, value in original.items():  # a MultiMapping: every pair, repeated names included
            if name != FETCH_PRICE:
                found.append(Problem(QUERY, name, f"unknown query parameter {name}"))
            elif len(value) > MAX_STRING:
                found.append(Problem(QUERY_TOO_LONG, name, f"{name} is longer than {MAX_STRING} characters"))
            elif value not in FLAG_VALUES:
                found.append(Problem(QUERY, name, f"{name} must be one of {', '.join(FLAG_VALUES)}"))
        if len(set(original.getall(FETCH_PRICE, ()))) > 1:  # sent again while following a link: the same value
            found.append(Problem(QUERY, FETCH_PRICE, SENT_TWICE))
        if found:
            raise ValidationError({QUERY_KEY: found})

    @post_load
    def _query(self, data: dict[str, Any], **kwargs: Any) -> WriteQuery:
        return WriteQuery(fetch_price=data.get("fetch_price", False))

