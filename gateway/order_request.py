"""Validation of order creation and update requests (SPEC 6).

Every problem of a request is collected and reported in one answer, so a client fixes its request once.
The first problem found decides the code; every offending field is named in `invalidFields` and every bad
line gets its own `Line Item: N, Reason: ...` detail. These answers depend on the request alone, so the
idempotency layer stores and replays them.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

from gateway.errors import ApiError
from schemas.enums import CREATE_ORDER_TYPES, UNSUPPORTED_ORDER_TYPES
from schemas.orders import MAX_QUANTITY

MAX_LINES = 499
MAX_LINE_NUMBER = 999_999
MAX_EXTERNAL_REFERENCE = 35
FORBIDDEN_REFERENCE_CHARS = frozenset('<>"[]')
_CURRENCY = re.compile(r"[A-Z]{3}")

# What clients send back from what they read: accepted and ignored.
_ORDER_ECHO = frozenset({
    "orderId", "creationDate", "status", "source", "links",
    "flexDiscounts", "pricing", "proratedDays", "remainingQuantity", "pricingSummary",
})
_LINE_ECHO = frozenset({
    "status", "promotions", "links",
    "flexDiscounts", "pricing", "proratedDays", "remainingQuantity", "pricingSummary",
})
_DISCOUNT_FIELDS = ("flexDiscountCodes", "discountCode")
_ORDER_FIELDS = frozenset({
    "orderType", "externalReferenceId", "referenceOrderId", "currencyCode", "lineItems", "customerId",
    "cancellingItems", *_DISCOUNT_FIELDS, *_ORDER_ECHO,
})
_LINE_FIELDS = frozenset({
    "extLineItemNumber", "offerId", "quantity", "subscriptionId", "currencyCode", "deploymentId",
    *_DISCOUNT_FIELDS, *_LINE_ECHO,
})
QUERY_FLAGS = {"fetch-price": ("true", "false")}


@dataclasses.dataclass(frozen=True)
class LineRequest:
    number: int
    offer_id: str
    quantity: int
    subscription_id: str
    currency_code: str
    deployment_id: str | None


@dataclasses.dataclass(frozen=True)
class OrderRequest:
    order_type: str
    external_reference_id: str
    reference_order_id: str
    currency_code: str
    lines: tuple[LineRequest, ...]


class Problems:
    """Collects every problem of a request; the first one found decides the code."""

    def __init__(self, replayable: bool = True) -> None:
        self.replayable = replayable
        self.code: str | None = None
        self.message = ""
        self.fields: list[str] = []
        self.details: list[str] = []

    def add(self, code: str, field: str, why: str, line: Any = None) -> None:
        if self.code is None:
            self.code, self.message = code, why
        if field not in self.fields:
            self.fields.append(field)
        self.details.append(f"Line Item: {line}, Reason: {why}" if line is not None else f"{field}: {why}")

    def raise_any(self) -> None:
        if self.code is not None:
            raise ApiError(
                self.code, self.message, details=self.details, fields=self.fields, replayable=self.replayable
            )


def _check_query(problems: Problems, params: Mapping[str, str]) -> None:
    """POST and PATCH take only `fetch-price` (true/false; no prices are known, so it changes nothing)."""
    for name, value in params.items():
        allowed = QUERY_FLAGS.get(name)
        if allowed is None:
            problems.add("1117", name, f"unknown query parameter {name}")
        elif value not in allowed:
            problems.add("1117", name, f"{name} must be one of {', '.join(allowed)}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _empty_discount(value: Any) -> bool:
    return value is None or value == "" or value == []


def _check_reference(problems: Problems, value: Any) -> str:
    if not isinstance(value, str):
        problems.add("1117", "externalReferenceId", "externalReferenceId must be a string")
        return ""
    if len(value) > MAX_EXTERNAL_REFERENCE:
        problems.add("2126", "externalReferenceId", f"externalReferenceId is longer than {MAX_EXTERNAL_REFERENCE}")
    if FORBIDDEN_REFERENCE_CHARS.intersection(value):
        problems.add("1117", "externalReferenceId", 'externalReferenceId must not contain < > " [ ]')
    return value


def _check_nul(problems: Problems, value: Any, field: str = "") -> None:
    """No identifier or reference holds a NUL character (PostgreSQL text cannot store one)."""
    if isinstance(value, str):
        if "\x00" in value:
            problems.add("1117", field, f"{field} must not contain NUL characters")
    elif isinstance(value, Mapping):
        for name, item in value.items():
            _check_nul(problems, item, str(name))
    elif isinstance(value, list):
        for item in value:
            _check_nul(problems, item, field)


def parse_order(body: Mapping[str, Any], customer_id: str, query: Mapping[str, str]) -> OrderRequest:
    problems = Problems()
    _check_nul(problems, body)
    _check_query(problems, query)
    order_type = body.get("orderType")
    if "orderType" not in body:
        problems.add("1122", "orderType", "orderType is required")
    elif order_type in UNSUPPORTED_ORDER_TYPES:
        problems.add("1117", "orderType", f"orderType {order_type} is not supported by this gateway")
    elif order_type not in CREATE_ORDER_TYPES:
        problems.add("1117", "orderType", f"orderType must be one of {', '.join(CREATE_ORDER_TYPES)}")
    if not isinstance(order_type, str) or order_type not in CREATE_ORDER_TYPES:
        # The remaining rules depend on the order type: without a valid one there is nothing more to say.
        problems.raise_any()
        raise AssertionError("unreachable: an invalid orderType is always a problem")

    for name in body:
        if name not in _ORDER_FIELDS:
            problems.add("1121", name, f"unknown field {name}")
    if "customerId" in body and body["customerId"] != customer_id:
        problems.add("1117", "customerId", "customerId differs from the customer of the path")
    reference = body.get("referenceOrderId", "")
    if order_type == "RETURN":
        if reference == "" or reference is None:
            problems.add("1122", "referenceOrderId", "referenceOrderId is required on a RETURN")
        elif not isinstance(reference, str):
            problems.add("1117", "referenceOrderId", "referenceOrderId must be a string")
    elif reference != "":
        problems.add("1117", "referenceOrderId", "referenceOrderId must be empty unless the order is a RETURN")
    external = _check_reference(problems, body.get("externalReferenceId", ""))
    currency = body.get("currencyCode")
    if currency is not None and (not isinstance(currency, str) or not _CURRENCY.fullmatch(currency)):
        problems.add("1117", "currencyCode", "currencyCode must be an ISO 4217 code")
        currency = None
    for name in _DISCOUNT_FIELDS:
        if not _empty_discount(body.get(name)):
            problems.add("2141", name, "discount codes are not supported: the order would be billed without them")
    if body.get("cancellingItems") not in (None, []):
        problems.add("1117", "cancellingItems", "cancellingItems must be empty")

    lines = _parse_lines(problems, body, order_type, currency)
    problems.raise_any()
    currencies = {line.currency_code for line in lines}
    return OrderRequest(
        order_type=order_type,
        external_reference_id=external,
        reference_order_id=reference if order_type == "RETURN" else "",
        currency_code=currencies.pop() if len(currencies) == 1 else "",
        lines=lines,
    )


def _parse_lines(
    problems: Problems, body: Mapping[str, Any], order_type: str, order_currency: str | None
) -> tuple[LineRequest, ...]:
    items = body.get("lineItems")
    if "lineItems" not in body or items is None:
        problems.add("1122", "lineItems", "lineItems is required")
        return ()
    if not isinstance(items, list):
        problems.add("1117", "lineItems", "lineItems must be a list")
        return ()
    if not items:
        problems.add("1117", "lineItems", "lineItems must not be empty")
        return ()
    if len(items) > MAX_LINES:
        problems.add("2119", "lineItems", f"an order has at most {MAX_LINES} line items")
    lines: list[LineRequest] = []
    seen: set[int] = set()
    currencies: set[str] = set()
    for position, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            problems.add("1117", "lineItems", "a line item must be an object", line=position)
            continue
        number: Any = item.get("extLineItemNumber")
        label = number if _is_int(number) else position
        ok = True

        def bad(code: str, field: str, why: str) -> None:
            nonlocal ok
            ok = False
            problems.add(code, field, why, line=label)

        for name in item:
            if name not in _LINE_FIELDS:
                bad("1121", name, f"unknown field {name}")
        if number is None:
            bad("1122", "extLineItemNumber", "extLineItemNumber is required")
        elif not _is_int(number):
            bad("1117", "extLineItemNumber", "extLineItemNumber must be an integer")
        elif not 0 <= number <= MAX_LINE_NUMBER:
            bad("2123", "extLineItemNumber", f"extLineItemNumber must be 0 to {MAX_LINE_NUMBER}")
        elif number in seen:
            bad("2121", "extLineItemNumber", f"extLineItemNumber {number} is used twice")
        else:
            seen.add(number)
        offer: Any = item.get("offerId")
        if offer is None:
            bad("1122", "offerId", "offerId is required")
        elif not isinstance(offer, str) or not offer:
            bad("1117", "offerId", "offerId must be a non-empty string")
        quantity: Any = item.get("quantity")
        if quantity is None:
            bad("1122", "quantity", "quantity is required")
        elif not _is_int(quantity) or quantity < 1:
            bad("2120", "quantity", "quantity must be an integer of at least 1")
        elif quantity > MAX_QUANTITY:
            bad("2120", "quantity", f"quantity must be at most {MAX_QUANTITY}")
        subscription = item.get("subscriptionId", "")
        if order_type == "RENEWAL":
            if subscription in ("", None):
                bad("1122", "subscriptionId", "subscriptionId is required on a RENEWAL line")
            elif not isinstance(subscription, str):
                bad("1117", "subscriptionId", "subscriptionId must be a string")
        currency: Any = item.get("currencyCode", order_currency)
        if currency is None:
            bad("1122", "currencyCode", "currencyCode is required on the order or on every line")
        elif not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
            bad("1117", "currencyCode", "currencyCode must be an ISO 4217 code")
        else:
            currencies.add(currency)
        deployment = item.get("deploymentId")
        if deployment is not None and not isinstance(deployment, str):
            bad("1117", "deploymentId", "deploymentId must be a string")
        for name in _DISCOUNT_FIELDS:
            if not _empty_discount(item.get(name)):
                bad("2141", name, "discount codes are not supported: the line would be billed without them")
        if ok:
            lines.append(
                LineRequest(
                    number=number,
                    offer_id=offer,
                    quantity=quantity,
                    subscription_id=subscription if order_type == "RENEWAL" else "",
                    currency_code=currency,
                    deployment_id=deployment,
                )
            )
    if order_currency is not None:
        currencies.add(order_currency)
    if len(currencies) > 1:
        problems.add("1117", "currencyCode", "the order and all its lines must share one currency")
    return tuple(lines)


def parse_patch(body: Mapping[str, Any], query: Mapping[str, str]) -> str:
    """The new externalReferenceId: the only field an update may change."""
    problems = Problems()
    _check_query(problems, query)
    _check_nul(problems, body)
    for name in body:
        if name != "externalReferenceId":
            problems.add("1121", name, f"unknown field {name}: only externalReferenceId can be changed")
    if "externalReferenceId" not in body:
        problems.add("1122", "externalReferenceId", "externalReferenceId is required")
    value = _check_reference(problems, body.get("externalReferenceId", ""))
    problems.raise_any()
    return value
