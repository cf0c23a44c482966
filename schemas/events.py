"""The change feed GET /v3/order-events: its query, the FeedQuery the query loads, and the page it answers."""
from __future__ import annotations

import dataclasses
from typing import Any

from marshmallow import Schema, fields, post_load, validate
from multidict import MultiMapping

from schemas.common import LinkSchema
from schemas.enums import EVENT_TYPES, STATUSES
from schemas.history import DEFAULT_LIMIT, MAX_LIMIT, MIN_LIMIT, Count, QuerySchema
from schemas.orders import OrderSchema
from schemas.problems import MAX_STRING

# Replaced by each page's own in its links.
FEED_PAGING = ("cursor", "limit")


@dataclasses.dataclass(frozen=True)
class FeedQuery:
    cursor: str | None = None
    limit: int = DEFAULT_LIMIT
    customer_ids: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()
    # The client's parameters except paging, each (name, value) once, in the order sent: echoed in links.
    echo: tuple[tuple[str, str], ...] = ()


class FeedQuerySchema(QuerySchema):
    """Query of GET /v3/order-events."""

    REPEATABLE = frozenset({"customer-id", "type"})

    cursor = fields.String(
        data_key="cursor", validate=validate.Length(min=1, max=MAX_STRING),
        metadata={"description": "Where to resume: the `cursor` of an earlier answer; default: the oldest event kept"},
    )
    limit = Count(MIN_LIMIT, data_key="limit", metadata={
        "description": f"Events per page; above {MAX_LIMIT} becomes {MAX_LIMIT}. Default {DEFAULT_LIMIT}"})
    customer_ids = fields.List(
        fields.String(validate=validate.Length(min=1, max=MAX_STRING)), data_key="customer-id",
        metadata={"description": "Only this customer's events; repeatable, values are ORed"},
    )
    types = fields.List(
        fields.String(validate=validate.OneOf(EVENT_TYPES)), data_key="type",
        metadata={"description": "Only events of this type; repeatable, values are ORed"},
    )

    @post_load(pass_original=True)
    def _query(self, loaded: dict[str, Any], params: MultiMapping[str], **kwargs: Any) -> FeedQuery:
        return FeedQuery(
            cursor=loaded.get("cursor"),
            limit=min(loaded.get("limit", DEFAULT_LIMIT), MAX_LIMIT),
            customer_ids=frozenset(loaded.get("customer_ids", ())),
            types=frozenset(loaded.get("types", ())),
            echo=tuple(dict.fromkeys((name, value) for name, value in params.items() if name not in FEED_PAGING)),
        )


class EventSchema(Schema):
    eventId = fields.String(required=True, metadata={"description": "Unique; the webhook-id of its deliveries"})
    type = fields.String(required=True, validate=validate.OneOf(EVENT_TYPES))
    createdDate = fields.String(required=True, metadata={"example": "2026-11-29T10:00:00Z"})
    customerId = fields.String(required=True)
    orderId = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(STATUSES))
    previousStatus = fields.String(validate=validate.OneOf(STATUSES),
                                   metadata={"description": "On order.status_changed only"})
    order = fields.Nested(OrderSchema, required=True, metadata={"description": "The order as of this change"})


class FeedLinksSchema(Schema):
    self = fields.Nested(LinkSchema, required=True)
    next = fields.Nested(LinkSchema, required=True, metadata={"description": "Always present: the events after"})


class EventPageSchema(Schema):
    count = fields.Integer(required=True)
    limit = fields.Integer(required=True, validate=validate.Range(min=MIN_LIMIT, max=MAX_LIMIT))
    cursor = fields.String(required=True, metadata={"description": "Where to resume: the events after this page"})
    items = fields.List(fields.Nested(EventSchema), required=True)
    links = fields.Nested(FeedLinksSchema, required=True)
