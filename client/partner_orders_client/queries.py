"""The read operations' parameters: Python names in, the API's query parameters out, and the links its
pages carry to the next one."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypedDict

from partner_orders_client.errors import UnexpectedAnswer
from partner_orders_client.wire import QueryValue, path, with_query

ORDERS = ("v3", "customers")
EVENTS_PATH = "/v3/order-events"

Order = dict[str, Any]  # the order resource, as the API renders it
Event = dict[str, Any]  # one event of the change feed, with the order as of that change


class HistoryFilters(TypedDict, total=False):
    """Filters of a customer's order history. A sequence is ORed (`status=["1000", "1002"]`); different
    filters are ANDed. Dates are `date`s, aware `datetime`s, or the API's own strings."""

    order_type: str | Sequence[str]
    status: str | Sequence[str]
    offer_id: str | Sequence[str]
    subscription_id: str | Sequence[str]
    reference_order_id: str
    external_reference_id: str
    reseller_id: str
    start_date: str | date | datetime
    end_date: str | date | datetime
    fetch_price: bool
    limit: int  # orders per page (the gateway applies at most 100)


class EventFilters(TypedDict, total=False):
    customer_id: str | Sequence[str]
    event_type: str | Sequence[str]  # order.created, order.status_changed, order.updated
    limit: int  # events per page (the gateway applies at most 100)


# Python's names for the API's parameters; a name missing here is a caller's typo, refused before sending.
_HISTORY_PARAMETERS = {name: name.replace("_", "-") for name in HistoryFilters.__annotations__}
_EVENT_PARAMETERS = {"customer_id": "customer-id", "event_type": "type", "limit": "limit"}


@dataclass(frozen=True)
class Fetched:
    """A conditional read's outcome: the body and its `ETag`, or `not_modified` (the `304` to an
    `If-None-Match` naming the tag the caller holds) with no body and the same tag."""

    etag: str | None
    body: dict[str, Any] | None

    @property
    def not_modified(self) -> bool:
        return self.body is None


def order_path(customer_id: str, order_id: str | None = None) -> str:
    return path(*ORDERS, customer_id, "orders", *([order_id] if order_id is not None else []))


def history_target(customer_id: str, filters: HistoryFilters, offset: int | None = None) -> str:
    params = _renamed(filters, _HISTORY_PARAMETERS)
    params["offset"] = offset
    return with_query(order_path(customer_id), params)


def events_target(cursor: str | None, filters: EventFilters) -> str:
    params = _renamed(filters, _EVENT_PARAMETERS)
    params["cursor"] = cursor
    return with_query(EVENTS_PATH, params)


def next_link(page: dict[str, Any]) -> str | None:
    """The root-relative target of the page after this one, present exactly when there is one: the gateway
    decides, from the limit it applied and the total it counted, never the client from the one it asked.
    Only a root-relative link is followed: an absolute one would take the credentials to another host."""
    links = page.get("links")
    following = links.get("next") if isinstance(links, dict) else None
    uri = following.get("uri") if isinstance(following, dict) else None
    if uri is None:
        return None
    if not isinstance(uri, str) or not uri.startswith("/") or uri.startswith("//"):
        raise UnexpectedAnswer(f"links.next is not a root-relative link: {str(uri)[:200]!r}")
    return uri


def _renamed(filters: Any, names: dict[str, str]) -> dict[str, QueryValue]:
    unknown = sorted(set(filters) - set(names))
    if unknown:
        raise TypeError(f"unknown filter(s) {unknown}; known: {sorted(names)}")
    return {names[name]: value for name, value in filters.items()}
