"""Order events: what a change to an order was (created, status changed, updated), and the event's JSON.

Every write to orders hands its changes to `gateway.storage.changes.record_changes`, which asks `event_of`
what each change was and writes the event in the write's own transaction.
"""
from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from typing import Any

import orjson

from gateway.order_model import Order, format_time

ORDER_CREATED = "order.created"
ORDER_STATUS_CHANGED = "order.status_changed"
ORDER_UPDATED = "order.updated"


@dataclasses.dataclass(frozen=True)
class OrderChange:
    """An order as written, with its resource as it was before (None: it is new)."""

    previous: Mapping[str, Any] | None
    order: Order


@dataclasses.dataclass(frozen=True)
class OrderEvent:
    event_id: str
    type: str
    created: int
    order: Order
    body: bytes  # the event as the feed and the webhooks send it


def _statuses(resource: Mapping[str, Any]) -> tuple[Any, ...]:
    """What an `order.status_changed` is about: the order's status, and each line's status and subscription."""
    lines = resource.get("lineItems") or []
    return resource.get("status"), tuple(
        (line.get("extLineItemNumber"), line.get("status"), line.get("subscriptionId")) for line in lines
    )


def event_of(change: OrderChange, now: int) -> OrderEvent | None:
    """The event of a change; None when the order is as it was (a write that changes nothing)."""
    order, previous = change.order, change.previous
    if previous is None:
        kind = ORDER_CREATED
    else:
        current = order.resource()
        if previous == current:
            return None
        kind = ORDER_STATUS_CHANGED if _statuses(previous) != _statuses(current) else ORDER_UPDATED
    event_id = str(uuid.uuid4())
    head: dict[str, Any] = {
        "eventId": event_id,
        "type": kind,
        "createdDate": format_time(now),
        "customerId": order.customer_id,
        "orderId": order.order_id,
        "status": order.status,
    }
    if kind == ORDER_STATUS_CHANGED and previous is not None:
        head["previousStatus"] = previous.get("status")
    # The order's stored rendering, spliced in: the same bytes the history and the details serve.
    body = orjson.dumps(head)[:-1] + b',"order":' + order.render() + b"}"
    return OrderEvent(event_id, kind, now, order, body)
