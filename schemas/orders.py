"""Order resource and order history page (the responses); the requests are in schemas.order_requests and
schemas.history."""
from __future__ import annotations

from marshmallow import Schema, fields, validate

from schemas.common import LinkSchema, SelfLinksSchema
from schemas.enums import CREATE_ORDER_TYPES, STATUSES, STORED_ORDER_TYPES
from schemas.history import MAX_LIMIT, MIN_LIMIT

MAX_QUANTITY = 2**31 - 1  # a 32-bit integer, as the document says and both storage backends keep


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
    limit = fields.Integer(required=True, validate=validate.Range(min=MIN_LIMIT, max=MAX_LIMIT),
                           metadata={"description": f"The limit applied (at most {MAX_LIMIT})"})
    items = fields.List(fields.Nested(OrderSchema), required=True)
    links = fields.Nested(PageLinksSchema, required=True)


class CreatedLineItemSchema(LineItemSchema):
    status = fields.String(required=True, metadata={"description": "1002, or empty on a PREVIEW"})


class CreatedOrderSchema(OrderSchema):
    """An order as placed (status 1002) or previewed (orderId and status empty)."""

    orderId = fields.String(required=True, metadata={"description": "Empty on a PREVIEW"})
    orderType = fields.String(required=True, validate=validate.OneOf(CREATE_ORDER_TYPES))
    status = fields.String(required=True, metadata={"description": "1002, or empty on a PREVIEW"})
    lineItems = fields.List(fields.Nested(CreatedLineItemSchema), required=True)
