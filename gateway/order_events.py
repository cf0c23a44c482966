"""Order events: what a change to an order was (created, status changed, updated), and the event's JSON.

Every write to orders hands its changes to `gateway.storage.changes.record_changes`, which asks `events_of`
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


def _other_fields(resource: Mapping[str, Any]) -> tuple[Any, ...]:
    """What an `order.updated` is about: everything but the statuses and subscriptions."""
    lines = resource.get("lineItems") or []
    return (
        {name: value for name, value in resource.items() if name not in ("status", "lineItems")},
        [{name: value for name, value in line.items() if name not in ("status", "subscriptionId")} for line in lines],
    )


def events_of(change: OrderChange, now: int) -> list[OrderEvent]:
    """The events of a change: none when the order is as it was (a write that changes nothing); both an
    `order.status_changed` and an `order.updated` when an import changed statuses and other fields at once,
    so that a reader of either type hears of it."""
    order, previous = change.order, change.previous
    if previous is None:
        return [_event(ORDER_CREATED, order, None, now)]
    current = order.resource()
    kinds = [kind for kind, differs in ((ORDER_STATUS_CHANGED, _statuses(previous) != _statuses(current)),
                                        (ORDER_UPDATED, _other_fields(previous) != _other_fields(current))) if differs]
    return [_event(kind, order, previous, now) for kind in kinds]


def _event(kind: str, order: Order, previous: Mapping[str, Any] | None, now: int) -> OrderEvent:
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
