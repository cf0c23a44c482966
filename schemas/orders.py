"""Order resource, order history page and the history query."""
from __future__ import annotations

import re
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from schemas.common import LinkSchema, SelfLinksSchema
from schemas.enums import CREATE_ORDER_TYPES, STATUSES, STORED_ORDER_TYPES

MAX_LIMIT = 100  # the partner API caps pages at 100 orders
MAX_QUANTITY = 2**31 - 1  # a 32-bit integer, as the document says and both storage backends keep
DEFAULT_LIMIT = 25

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# Zulu only: "+00:00", other offsets and zone-less timestamps are refused, as the partner API does.
_ZULU = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?Z")
_DIGITS = re.compile(r"\d+")
_DOCUMENTED_INSTANT = r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d+)?Z)?$"  # _DATE or _ZULU, for the documents


class PromotionSchema(Schema):
    code = fields.String(required=True)
    result = fields.String(required=True)


class LineItemSchema(Schema):
    extLineItemNumber = fields.Integer(required=True)
    offerId = fields.String(required=True)
    quantity = fields.Integer(required=True)
    subscriptionId = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    currencyCode = fields.String(required=True)
    deploymentId = fields.String(metadata={"description": "Present only when the line has one"})
    promotions = fields.List(fields.Nested(PromotionSchema), metadata={"description": "Present only when known"})


class OrderSchema(Schema):
    orderId = fields.String(required=True, metadata={"example": "5120008001"})
    customerId = fields.String(required=True)
    externalReferenceId = fields.String(required=True)
    orderType = fields.String(required=True, validate=validate.OneOf(STORED_ORDER_TYPES))
    referenceOrderId = fields.String(required=True)
    currencyCode = fields.String(required=True)
    creationDate = fields.String(required=True, metadata={"example": "2019-05-02T22:49:54Z"})
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    source = fields.String(required=True, metadata={"example": "API"})
    lineItems = fields.List(fields.Nested(LineItemSchema), required=True)
    links = fields.Nested(SelfLinksSchema, required=True)


class PageLinksSchema(Schema):
    self = fields.Nested(LinkSchema, required=True)
    next = fields.Nested(LinkSchema)
    prev = fields.Nested(LinkSchema)


class OrderPageSchema(Schema):
    totalCount = fields.Integer(required=True)
    count = fields.Integer(required=True)
    offset = fields.Integer(required=True)
    limit = fields.Integer(required=True, metadata={"description": "The limit applied (at most 100)"})
    items = fields.List(fields.Nested(OrderSchema), required=True)
    links = fields.Nested(PageLinksSchema, required=True)


class Instant(fields.Field):
    """`2019-05-02` (midnight UTC) or `2019-05-02T22:49:54Z`, as exact seconds since the epoch."""

    default_error_messages = {"invalid": "Use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC, Zulu)."}

    def __init__(self, **kwargs: Any) -> None:
        # A plain Field has no type of its own in the API documents: say what the query string carries.
        documented = {"type": "string", "pattern": _DOCUMENTED_INSTANT}
        super().__init__(**{**kwargs, "metadata": {**documented, **kwargs.get("metadata", {})}})

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Decimal:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        try:
            if _DATE.fullmatch(value):
                midnight = date.fromisoformat(value)
                moment = datetime(midnight.year, midnight.month, midnight.day, tzinfo=timezone.utc)
                return Decimal(int(moment.timestamp()))
            match = _ZULU.fullmatch(value)
            if match:
                year, month, day, hour, minute, second = (int(p) for p in match.groups()[:6])
                moment = datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc)
                return Decimal(int(moment.timestamp())) + Decimal("0" + (match.group(7) or ""))
        except ValueError:
            pass
        raise self.make_error("invalid")


class Count(fields.Field):
    """A plain decimal integer (no sign, no spaces) of at least `minimum`."""

    default_error_messages = {"invalid": "Must be an integer of at least {minimum}."}

    def __init__(self, minimum: int, **kwargs: Any) -> None:
        documented = {"type": "integer", "minimum": minimum}  # as Instant: a plain Field has no type
        super().__init__(**{**kwargs, "metadata": {**documented, **kwargs.get("metadata", {})}})
        self.minimum = minimum

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if not isinstance(value, str) or not _DIGITS.fullmatch(value) or int(value) < self.minimum:
            raise self.make_error("invalid", minimum=self.minimum)
        return int(value)


def _id(name: str, repeatable: bool, description: str) -> fields.Field:
    item = fields.String(validate=validate.Length(min=1))
    meta = {"description": description}
    if repeatable:
        return fields.List(item, data_key=name, metadata=meta)
    return fields.String(data_key=name, validate=validate.Length(min=1), metadata=meta)


class HistoryQuerySchema(Schema):
    """Query of GET /v3/customers/{customerId}/orders. Names are case-sensitive; unknown ones are refused."""

    class Meta:
        unknown = RAISE

    REPEATABLE = frozenset({"order-type", "status", "offer-id", "subscription-id"})

    order_types = fields.List(
        fields.String(validate=validate.OneOf(STORED_ORDER_TYPES)),
        data_key="order-type",
        metadata={"description": "Repeatable; values are ORed"},
    )
    statuses = fields.List(
        fields.String(validate=validate.OneOf(STATUSES)),
        data_key="status",
        metadata={"description": "Repeatable; values are ORed"},
    )
    offer_ids = _id("offer-id", True, "Orders with any line of this offer; repeatable")
    subscription_ids = _id("subscription-id", True, "Orders with any line of this subscription; repeatable")
    reference_order_id = _id("reference-order-id", False, "Orders referencing this order")
    external_reference_id = _id("external-reference-id", False, "Exact match on externalReferenceId")
    reseller_id = _id("reseller-id", False, "One of the partner's resellers")
    start_date = Instant(
        data_key="start-date", metadata={"description": "Inclusive; default: start of the current term"}
    )
    end_date = Instant(data_key="end-date", metadata={"description": "Inclusive; default: now"})
    limit = Count(1, data_key="limit", metadata={"description": "Page size; above 100 becomes 100. Default 25"})
    offset = Count(0, data_key="offset", metadata={"description": "At most totalCount. Default 0"})
    fetch_price = fields.Boolean(
        truthy={"true"}, falsy={"false"}, data_key="fetch-price", metadata={"description": "Accepted; no prices"}
    )

    @validates_schema(skip_on_field_errors=False)
    def _window(self, data: dict[str, Any], **kwargs: Any) -> None:
        start, end = data.get("start_date"), data.get("end_date")
        if start is not None and end is not None and start > end:
            why = ["start-date is after end-date."]
            raise ValidationError({"start-date": why, "end-date": why})


# The request schemas document what gateway.order_request checks (it reports every problem at once, with the
# API's own codes); their validators are there for the documents, which show them as constraints.
_CURRENCY_CODE = validate.Regexp(r"^[A-Z]{3}$")
_EXTERNAL_REFERENCE = [validate.Length(max=35), validate.Regexp(r'^[^<>"\[\]]*$')]


class LineItemRequestSchema(Schema):
    extLineItemNumber = fields.Integer(required=True, validate=validate.Range(min=0, max=999999),
                                       metadata={"description": "Unique in the order"})
    offerId = fields.String(required=True, validate=validate.Length(min=1))
    quantity = fields.Integer(required=True, validate=validate.Range(min=1, max=MAX_QUANTITY))
    subscriptionId = fields.String(metadata={"description": "Required on RENEWAL lines; ignored on others"})
    currencyCode = fields.String(validate=_CURRENCY_CODE, metadata={"description": "ISO 4217; the order's when absent"})
    deploymentId = fields.String()


class CreateOrderRequestSchema(Schema):
    """What a client sends; fields of the order resource it read back are accepted and ignored."""

    orderType = fields.String(required=True, validate=validate.OneOf(CREATE_ORDER_TYPES))
    externalReferenceId = fields.String(validate=_EXTERNAL_REFERENCE,
                                        metadata={"description": 'At most 35 characters, none of <>"[]'})
    referenceOrderId = fields.String(metadata={"description": "Required on RETURN; empty otherwise"})
    currencyCode = fields.String(validate=_CURRENCY_CODE,
                                 metadata={"description": "ISO 4217; here or on every line, the same everywhere"})
    customerId = fields.String(metadata={"description": "Accepted when equal to the path's"})
    lineItems = fields.List(fields.Nested(LineItemRequestSchema), required=True,
                            validate=validate.Length(min=1, max=499), metadata={"description": "1 to 499 lines"})


class CreatedLineItemSchema(LineItemSchema):
    status = fields.String(required=True, metadata={"description": "1002, or empty on a PREVIEW"})


class CreatedOrderSchema(OrderSchema):
    """An order as placed (status 1002) or previewed (orderId and status empty)."""

    orderId = fields.String(required=True, metadata={"description": "Empty on a PREVIEW"})
    orderType = fields.String(required=True, validate=validate.OneOf(CREATE_ORDER_TYPES))
    status = fields.String(required=True, metadata={"description": "1002, or empty on a PREVIEW"})
    lineItems = fields.List(fields.Nested(CreatedLineItemSchema), required=True)


class UpdateOrderRequestSchema(Schema):
    externalReferenceId = fields.String(required=True, validate=_EXTERNAL_REFERENCE,
                                        metadata={"description": 'At most 35 characters, none of <>"[]'})


class WriteQuerySchema(Schema):
    fetch_price = fields.Boolean(
        truthy={"true"}, falsy={"false"}, data_key="fetch-price", metadata={"description": "Accepted; no prices"}
    )
