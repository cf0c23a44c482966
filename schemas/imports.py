"""Records of an import file (JSON Lines): resellers, customers and orders."""
from __future__ import annotations

import re
import unicodedata
from datetime import datetime
from collections.abc import Callable
from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate, validates_schema

from schemas.enums import STATUSES, STORED_ORDER_TYPES
from schemas.order_requests import MAX_EXTERNAL_REFERENCE
from schemas.orders import MAX_QUANTITY

MAX_CUSTOMER_ID = 40
_CREATION = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z", re.ASCII)

MAX_ID = 255
# An id is printed, logged and sent back in paths and headers: no control character or line separator, no
# white space at either end (Unicode's included: " P1", "P1\u00a0" and "P1" would look alike in every
# listing), and no format character (Unicode's Cf: zero-width, bidirectional, soft hyphen, tags), which shows
# nothing or turns the text around; but the zero-width (non-)joiner, which Persian words and emoji need.
_CONTROLS = "\x00-\x1f\x7f-\x9f\u2028\u2029"
_EDGES = re.compile(rf"\A[^\s{_CONTROLS}](?:[^{_CONTROLS}]*[^\s{_CONTROLS}])?\Z")
_JOINERS = frozenset("\u200c\u200d")
_ID_RULE = "an id has no control characters (nor invisible or bidirectional ones), and no white space at either end"


def is_id(text: str) -> bool:
    """Whether `text` may be an id (or a partner's name): the rule above, at any length. A joiner stands
    between two characters that show; alone, at an end or doubled it would only hide."""
    shown = [char not in _JOINERS and unicodedata.category(char) != "Cf" for char in text]
    if not _EDGES.fullmatch(text) or not all(shown[0:1] + shown[-1:]):
        return False
    return all(shown[at] or (text[at] in _JOINERS and shown[at - 1] and shown[at + 1]) for at in range(len(text)))


def _valid_id(text: str) -> None:
    if not is_id(text):
        raise ValidationError(_ID_RULE)


def _valid_reseller_or_none(text: str) -> None:
    if text:  # "": the customer's
        _valid_id(text)


def _id_of(max_chars: int) -> list[Callable[[str], Any]]:
    return [validate.Length(min=1, max=max_chars), _valid_id]


_id = _id_of(MAX_ID)


def _creation_date(value: str) -> None:
    """Zulu time, whole or fractional seconds (the fraction is dropped: the API has whole seconds)."""
    try:
        if not _CREATION.fullmatch(value):
            raise ValueError
        datetime.strptime(value[:19], "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        raise ValidationError("Use YYYY-MM-DDTHH:MM:SSZ (UTC).") from None


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class ResellerRecordSchema(_Strict):
    type = fields.String(required=True)
    resellerId = fields.String(required=True, validate=_id)
    partnerId = fields.String(required=True, validate=_id)
    name = fields.String(load_default="")


class _IsoDate(fields.Date):
    """YYYY-MM-DD exactly: strptime also takes "2026-2-8", and digits of other scripts ("２０２６")."""

    _SHAPE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(format="%Y-%m-%d", **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, str) or not self._SHAPE.fullmatch(value):
            raise self.make_error("invalid", input=value, obj_type=self.OBJ_TYPE)
        return super()._deserialize(value, attr, data, **kwargs)


class CustomerRecordSchema(_Strict):
    type = fields.String(required=True)
    customerId = fields.String(required=True, validate=_id_of(MAX_CUSTOMER_ID))
    resellerId = fields.String(required=True, validate=_id)
    companyName = fields.String(load_default="")
    cotermDate = _IsoDate(load_default=None, allow_none=True)


class _Links(Schema):
    class Meta:
        unknown = EXCLUDE


class PromotionRecordSchema(_Strict):
    code = fields.String(required=True)
    result = fields.String(required=True)


class LineItemRecordSchema(_Strict):
    extLineItemNumber = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=999999))
    offerId = fields.String(required=True, validate=validate.Length(min=1))
    quantity = fields.Integer(required=True, strict=True, validate=validate.Range(min=0, max=MAX_QUANTITY))
    subscriptionId = fields.String(load_default="")
    status = fields.String(load_default=None, validate=validate.OneOf(STATUSES))
    currencyCode = fields.String(load_default=None)
    deploymentId = fields.String(load_default=None)
    promotions = fields.List(fields.Nested(PromotionRecordSchema), load_default=None)
    links = fields.Nested(_Links, load_default=None)


class OrderRecordSchema(_Strict):
    type = fields.String(required=True)
    orderId = fields.String(required=True, validate=_id)
    customerId = fields.String(required=True, validate=_id_of(MAX_CUSTOMER_ID))
    resellerId = fields.String(load_default="", validate=_valid_reseller_or_none)
    orderType = fields.String(required=True, validate=validate.OneOf(STORED_ORDER_TYPES))
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    creationDate = fields.String(required=True, validate=_creation_date)
    externalReferenceId = fields.String(load_default="", validate=validate.Length(max=MAX_EXTERNAL_REFERENCE))
    referenceOrderId = fields.String(load_default="")
    currencyCode = fields.String(load_default="")
    source = fields.String(load_default="API")
    lineItems = fields.List(fields.Nested(LineItemRecordSchema), required=True, validate=validate.Length(min=1))
    links = fields.Nested(_Links, load_default=None)

    @validates_schema
    def _unique_lines(self, data: dict[str, Any], **kwargs: Any) -> None:
        numbers = [line["extLineItemNumber"] for line in data["lineItems"]]
        if len(numbers) != len(set(numbers)):
            raise ValidationError("extLineItemNumber values must be unique in an order", "lineItems")
