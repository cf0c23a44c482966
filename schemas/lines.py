"""The line items of an order request, and the string fields the order and its lines share."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import pycountry
from marshmallow import EXCLUDE, Schema, ValidationError, fields, missing, validate, validates_schema

from schemas.orders import MAX_QUANTITY
from schemas.problems import (
    DISCOUNT,
    DUPLICATE,
    INVALID,
    LINE_KEY,
    LIST_KEY,
    LONG_KEY,
    MAX_STRING,
    NUL_KEY,
    OUT_OF_RANGE,
    REQUIRED,
    TOO_MANY,
    UNKNOWN_KEY,
    Coded,
    CodedPattern,
    Problem,
    is_int,
    field_messages,
    long_problems,
    nul_problems,
    unknown_problems,
)

MAX_LINES = 499  # line items of one order, as the partner API allows
MAX_LINE_NUMBER = 999_999  # the largest extLineItemNumber the partner API takes
CURRENCY_PATTERN = r"^[A-Z]{3}$"  # an ISO 4217 code
ISO_4217_CODES = frozenset(currency.alpha_3 for currency in pycountry.currencies)
DISCOUNT_FIELDS = ("flexDiscountCodes", "discountCode")

# What clients send back from what they read: accepted and ignored.
LINE_ECHO = frozenset({
    "status", "promotions", "links",
    "flexDiscounts", "pricing", "proratedDays", "remainingQuantity", "pricingSummary",
})
_LINE_FIELDS = frozenset({
    "extLineItemNumber", "offerId", "quantity", "subscriptionId", "currencyCode", "deploymentId",
    *DISCOUNT_FIELDS, *LINE_ECHO,
})


def _problem(kind: str, field: str, reason: str) -> list[Problem]:
    return [Problem(kind, field, reason)]


def _required(field: str, reason: str = "") -> Problem:
    return Problem(REQUIRED, field, reason or f"{field} is required")


_NO_CURRENCY = _required("currencyCode", "currencyCode is required on the order or on every line")


class Sent(fields.String):
    """Documented as a string, taken as sent: the rule that needs it checks it, knowing the order type."""

    def deserialize(self, value: Any, attr: str | None = None, data: Any = None, **kwargs: Any) -> Any:
        return value


class String(fields.String):
    """A JSON string. With `null_is_absent`, a null counts as not sent (unlike allow_none, which would
    document the field as nullable)."""

    def __init__(self, *, null_is_absent: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.null_is_absent = null_is_absent

    def deserialize(self, value: Any, attr: str | None = None, data: Any = None, **kwargs: Any) -> Any:
        if value is None and self.null_is_absent:
            return missing
        return super().deserialize(value, attr, data, **kwargs)


class WholeNumber(fields.Integer):
    """A JSON integer as sent: no float, no boolean, no numeric string."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if not is_int(value):
            raise self.make_error("invalid")
        return int(value)


class _CurrencyCode(CodedPattern):
    """Three capitals (the documented pattern) that ISO 4217 lists as a currency's code (the documented enum)."""

    def __call__(self, value: Any) -> Any:
        if super().__call__(value) not in ISO_4217_CODES:
            raise ValidationError([self.problem])
        return value


def currency_code(*, null_is_absent: bool, **kwargs: Any) -> String:
    """currencyCode, of the order or of a line: null counts as not sent at either (as for deploymentId)."""
    iso = Problem(INVALID, "currencyCode", "currencyCode must be an ISO 4217 code")
    documented = {**kwargs.pop("metadata", {}), "enum": sorted(ISO_4217_CODES)}
    return String(
        null_is_absent=null_is_absent,
        validate=_CurrencyCode(CURRENCY_PATTERN, iso),
        error_messages=field_messages(invalid=iso, null=_NO_CURRENCY),
        metadata=documented,
        **kwargs,
    )


# What an empty list field may be sent as: it asks for nothing.
EMPTY: tuple[Any, ...] = (None, "", [], {})


def discount_problems(data: Mapping[str, Any], why: str) -> dict[str, list[Problem]]:
    """The gateway knows no discounts: placing the order without the one asked for would bill the wrong price.
    An empty code (EMPTY) asks for none."""
    return {
        name: _problem(DISCOUNT, name, f"discount codes are not supported: {why}")
        for name in DISCOUNT_FIELDS
        if data.get(name) not in EMPTY
    }


@dataclasses.dataclass(frozen=True)
class LineRequest:
    number: int
    offer_id: str
    quantity: int
    subscription_id: str
    currency_code: str
    deployment_id: str | None

    @classmethod
    def of(cls, part: Mapping[str, Any], raw: Mapping[str, Any], order_type: str, currency: str | None) -> LineRequest:
        """A validated line: `part` as loaded, `raw` as sent, the order's type and currency."""
        return cls(
            number=part["extLineItemNumber"],
            offer_id=part["offerId"],
            quantity=part["quantity"],
            subscription_id=raw.get("subscriptionId", "") if order_type == "RENEWAL" else "",
            currency_code=part.get("currencyCode", currency),
            deployment_id=part.get("deploymentId"),
        )


_MUST_BE_INT = Problem(INVALID, "extLineItemNumber", "extLineItemNumber must be an integer")
_OFFER = Problem(INVALID, "offerId", "offerId must be a non-empty string")
_QUANTITY = Problem(INVALID, "quantity", "quantity must be an integer of at least 1")
_DEPLOYMENT = Problem(INVALID, "deploymentId", "deploymentId must be a string")


class LineItemRequestSchema(Schema):
    class Meta:
        unknown = EXCLUDE  # reported by _rules, in the order sent, with the accepted echoes left out

    # The answer lists a line's problems in this order.
    REPORT_ORDER: ClassVar[tuple[str, ...]] = (
        LINE_KEY, NUL_KEY, UNKNOWN_KEY, LONG_KEY, "extLineItemNumber", "offerId", "quantity", "subscriptionId",
        "currencyCode", "deploymentId", *DISCOUNT_FIELDS,
    )

    extLineItemNumber = WholeNumber(
        required=True,
        validate=Coded(validate.Range(min=0, max=MAX_LINE_NUMBER),
                       Problem(OUT_OF_RANGE, "extLineItemNumber", f"extLineItemNumber must be 0 to {MAX_LINE_NUMBER}")),
        error_messages=field_messages(required=_required("extLineItemNumber"), null=_required("extLineItemNumber"),
                                      invalid=_MUST_BE_INT),
        metadata={"description": "Unique in the order"},
    )
    offerId = fields.String(
        required=True, validate=Coded(validate.Length(min=1), _OFFER),
        error_messages=field_messages(required=_required("offerId"), null=_required("offerId"), invalid=_OFFER),
        metadata={"maxLength": MAX_STRING},  # checked with every string of the line, by _rules
    )
    quantity = WholeNumber(
        required=True,
        validate=[Coded(validate.Range(min=1), _QUANTITY),
                  Coded(validate.Range(max=MAX_QUANTITY),
                        Problem(OUT_OF_RANGE, "quantity", f"quantity must be at most {MAX_QUANTITY}"))],
        error_messages=field_messages(required=_required("quantity"), null=_required("quantity"), invalid=_QUANTITY),
    )
    subscriptionId = Sent(metadata={"description": "Required on RENEWAL lines; ignored on others",
                                    "maxLength": MAX_STRING})
    currencyCode = currency_code(null_is_absent=True, metadata={"description": "ISO 4217; the order's when absent"})
    deploymentId = String(null_is_absent=True, error_messages=field_messages(invalid=_DEPLOYMENT),
                          metadata={"maxLength": MAX_STRING})

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def _rules(self, data: dict[str, Any], original: Mapping[str, Any], **kwargs: Any) -> None:
        found: dict[str, list[Problem]] = {
            NUL_KEY: nul_problems(original), UNKNOWN_KEY: unknown_problems(original, _LINE_FIELDS),
            LONG_KEY: long_problems(original),
        }
        found.update(discount_problems(original, "the line would be billed without them"))
        found = {key: value for key, value in found.items() if value}
        if found:
            raise ValidationError(found)


class Lines(fields.List):
    """lineItems: a list of 1 to MAX_LINES objects. A line that fails still gives what it got right (its
    number, its currency) to the order's rules. A list that is too long has its first MAX_LINES lines checked
    with it; the rest are only counted: one request's work and answer stay bounded however many it sends."""

    def __init__(self, cls_or_instance: fields.Field, **kwargs: Any) -> None:
        too_many = Problem(TOO_MANY, "lineItems", f"an order has at most {MAX_LINES} line items")
        messages = field_messages(required=_required("lineItems"), null=_required("lineItems"))
        super().__init__(cls_or_instance, validate=Coded(validate.Length(min=1, max=MAX_LINES), too_many),
                         error_messages=messages, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[Any]:
        if not isinstance(value, list):
            raise ValidationError(_problem(INVALID, "lineItems", "lineItems must be a list"))
        if not value:
            raise ValidationError(_problem(INVALID, "lineItems", "lineItems must not be empty"))
        found: dict[Any, Any] = {}
        try:
            self._validate(value)
        except ValidationError as error:
            found[LIST_KEY] = error.messages
        parts: list[Any] = []
        for index, item in enumerate(value[:MAX_LINES]):
            if not isinstance(item, dict):
                found[index] = {LINE_KEY: _problem(INVALID, "lineItems", "a line item must be an object")}
                parts.append(None)
                continue
            try:
                parts.append(self.inner.deserialize(item, **kwargs))
            except ValidationError as error:
                found[index] = error.messages
                parts.append(error.valid_data or {})
        if found:
            raise ValidationError(found, valid_data=parts)
        return parts


def line_rules(
    order_type: str | None, order_currency: str | None, raw_lines: Sequence[Any], parts: Sequence[Any],
    order_sent_currency: bool = False,
) -> tuple[dict[int, dict[str, list[Problem]]], list[Problem]]:
    """The rules of lines that need the other lines or the order: unique numbers, a subscription on RENEWAL
    lines, a currency on every line (its own or the order's) and one currency for all; `order_type` None when
    it is not valid (the rules of one type are then left out). `parts` are the lines as loaded (None for a
    line that is not an object); `order_currency` the order's valid currency, and `order_sent_currency`
    whether it sent one at all (an invalid one is its own problem, not the lines')."""
    found: dict[int, dict[str, list[Problem]]] = {}
    seen: set[int] = set()
    currencies: set[str] = set()
    for index, (raw, part) in enumerate(zip(raw_lines, parts)):
        if part is None:
            continue
        line: dict[str, list[Problem]] = {}
        number = part.get("extLineItemNumber")
        if number in seen:
            line["extLineItemNumber"] = _problem(DUPLICATE, "extLineItemNumber",
                                                 f"extLineItemNumber {number} is used twice")
        elif number is not None:
            seen.add(number)
        subscription = raw.get("subscriptionId", "")
        if order_type == "RENEWAL" and subscription in ("", None):
            line["subscriptionId"] = [_required("subscriptionId", "subscriptionId is required on a RENEWAL line")]
        elif order_type == "RENEWAL" and not isinstance(subscription, str):
            line["subscriptionId"] = _problem(INVALID, "subscriptionId", "subscriptionId must be a string")
        if "currencyCode" in part:
            currencies.add(part["currencyCode"])
        elif raw.get("currencyCode") is None and order_currency is None and not order_sent_currency:
            line["currencyCode"] = [_NO_CURRENCY]
        if line:
            found[index] = line
    if order_currency is not None:
        currencies.add(order_currency)
    shared = _problem(INVALID, "currencyCode", "the order and all its lines must share one currency")
    return found, shared if len(currencies) > 1 else []
