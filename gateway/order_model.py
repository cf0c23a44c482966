"""The order domain: statuses, types, the order record and its wire rendering."""
from __future__ import annotations

import dataclasses
import functools
import random
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

import orjson


STATUS_COMPLETE = "1000"
STATUS_PENDING = "1002"
STATUS_CANCELLED = "1008"
# Failed or cancelled: such a RETURN gives nothing back.
INACTIVE_STATUSES = frozenset({"1004", "1008", "1020", "1022", "1024", "1026"})
SOURCE_API = "API"
ORDER_ID_DIGITS = 10
# Ids identify, they do not protect (every read checks the partner's scope): a generator seeded once from
# the system's entropy is enough, and costs no system call per order as secrets' would.
_ids = random.Random()


@dataclasses.dataclass(frozen=True)
class Promotion:
    code: str
    result: str


@dataclasses.dataclass(frozen=True)
class LineItem:
    ext_line_item_number: int
    offer_id: str
    quantity: int
    subscription_id: str = ""
    status: str = STATUS_PENDING
    currency_code: str = ""
    deployment_id: str | None = None
    promotions: tuple[Promotion, ...] | None = None

    def resource(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "extLineItemNumber": self.ext_line_item_number,
            "offerId": self.offer_id,
            "quantity": self.quantity,
            "subscriptionId": self.subscription_id,
            "status": self.status,
            "currencyCode": self.currency_code,
        }
        if self.deployment_id is not None:
            out["deploymentId"] = self.deployment_id
        if self.promotions is not None:
            out["promotions"] = [{"code": p.code, "result": p.result} for p in self.promotions]
        return out


@dataclasses.dataclass(frozen=True)
class Order:
    order_id: str
    customer_id: str
    reseller_id: str
    order_type: str
    status: str
    created: int  # seconds since the epoch, UTC; the API has whole-second creation dates
    line_items: tuple[LineItem, ...]
    external_reference_id: str = ""
    reference_order_id: str = ""
    currency_code: str = ""
    source: str = SOURCE_API

    def resource(self) -> dict[str, Any]:
        return {
            "orderId": self.order_id,
            "customerId": self.customer_id,
            "externalReferenceId": self.external_reference_id,
            "orderType": self.order_type,
            "referenceOrderId": self.reference_order_id,
            "currencyCode": self.currency_code,
            "creationDate": format_time(self.created),
            "status": self.status,
            "source": self.source,
            "lineItems": [line.resource() for line in self.line_items],
            "links": {"self": link(order_uri(self.customer_id, self.order_id))},
        }

    def render(self) -> bytes:
        """The order resource as JSON bytes: stored beside the order so reads never re-encode it. Encoded
        once per record: a write stores it, answers with it and puts it in its event."""
        return self._rendered

    @functools.cached_property
    def _rendered(self) -> bytes:
        return orjson.dumps(self.resource())


def format_time(epoch_seconds: int) -> str:
    """`YYYY-MM-DDTHH:MM:SSZ`, the year in four digits however small (strftime's %Y drops leading zeros)."""
    return datetime.fromtimestamp(int(epoch_seconds), timezone.utc).replace(tzinfo=None).isoformat() + "Z"


def link(uri: str) -> dict[str, Any]:
    return {"uri": uri, "method": "GET", "headers": []}


def orders_uri(customer_id: str) -> str:
    return f"/v3/customers/{quote(customer_id, safe='')}/orders"


def order_uri(customer_id: str, order_id: str) -> str:
    return f"{orders_uri(customer_id)}/{quote(order_id, safe='')}"


def new_order_id() -> str:
    """A random 10-digit id (no leading zero); the database's primary key catches the rare collision."""
    low = 10 ** (ORDER_ID_DIGITS - 1)
    return str(low + _ids.randrange(9 * low))


def new_subscription_id() -> str:
    return str(10**7 + _ids.randrange(9 * 10**7))
