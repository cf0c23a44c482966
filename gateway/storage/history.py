"""Reads behind order history and details: scopes, the per-customer index, bodies, and SQL paging for
customers whose index is not cached."""
from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from gateway.storage.db import Db, fetch_in, padded
from gateway.storage.types import CustomerScope, HistoryConditions, IndexRow

Window = tuple[int | None, int | None]  # inclusive bounds on creation, whole seconds; None: unbounded

async def customer_scope(db: Db, customer_id: str, partner_id: str) -> CustomerScope | None:
    """The customer as the partner sees it; None when it cannot."""
    return (await customer_scopes(db, [(customer_id, partner_id)])).get((customer_id, partner_id))


CUSTOMER_SCOPES = """
    SELECT c.customer_id, r.partner_id, c.coterm_date, c.version
    FROM customers c JOIN resellers r ON r.reseller_id = c.reseller_id
    WHERE c.customer_id IN ({marks})
"""


async def customer_scopes(db: Db, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], CustomerScope]:
    """`customer_scope` of several (customer id, partner id) pairs in one statement read by key: those found."""
    wanted = set(keys)
    # A NUL matches nothing stored (and one would make the backend refuse the whole statement).
    customer_ids = sorted({customer_id for customer_id, _ in keys if "\x00" not in customer_id})
    if not customer_ids:
        return {}
    rows = await fetch_in(db, CUSTOMER_SCOPES, padded(customer_ids), by_key=True)
    return {(customer_id, partner_id): CustomerScope(customer_id, coterm_date, int(version))
            for customer_id, partner_id, coterm_date, version in rows if (customer_id, partner_id) in wanted}


ORDER_INDEX = """
    SELECT o.created, o.order_id, o.order_type, o.status, o.reseller_id, o.reference_order_id,
           o.external_reference_id
    FROM orders o JOIN resellers r ON r.reseller_id = o.reseller_id
    WHERE o.customer_id = ? AND r.partner_id = ?
"""
ORDER_INDEX_LINES = """
    SELECT l.order_id, l.offer_id, l.subscription_id
    FROM line_items l JOIN orders o ON o.order_id = l.order_id
    WHERE o.customer_id = ?
"""


async def order_index(db: Db, customer_id: str, partner_id: str) -> list[IndexRow]:
    """Every order of the customer that the partner can see."""
    lines = await db.fetch(ORDER_INDEX_LINES, (customer_id,))
    return _index_rows(await db.fetch(ORDER_INDEX, (customer_id, partner_id)), lines)


ORDER_INDEX_OF = ORDER_INDEX + " AND o.order_id IN ({marks})"
ORDER_INDEX_LINES_OF = "SELECT order_id, offer_id, subscription_id FROM line_items WHERE order_id IN ({marks})"


async def order_index_of(db: Db, customer_id: str, partner_id: str, order_ids: Sequence[str]) -> list[IndexRow]:
    """The index rows of some of the customer's orders (those the partner can see)."""
    lines = await fetch_in(db, ORDER_INDEX_LINES_OF, order_ids, by_key=True)
    return _index_rows(await fetch_in(db, ORDER_INDEX_OF, order_ids, customer_id, partner_id, by_key=True), lines)


def _index_rows(orders: list[Any], lines: list[Any]) -> list[IndexRow]:
    offers: dict[str, list[str]] = {}
    subscriptions: dict[str, list[str]] = {}
    for order_id, offer_id, subscription_id in lines:
        offers.setdefault(order_id, []).append(sys.intern(offer_id))
        if subscription_id:
            subscriptions.setdefault(order_id, []).append(subscription_id)
    # Interned: a customer's orders share a handful of types, statuses, resellers and offers.
    return [
        IndexRow(
            int(created), order_id, sys.intern(order_type), sys.intern(status), sys.intern(reseller_id), reference,
            external, tuple(dict.fromkeys(offers.get(order_id, ()))),
            tuple(dict.fromkeys(subscriptions.get(order_id, ()))),
        )
        for created, order_id, order_type, status, reseller_id, reference, external in orders
    ]


ORDER_BODIES = "SELECT order_id, body FROM orders WHERE order_id IN ({marks})"


async def order_bodies(db: Db, order_ids: Sequence[str]) -> dict[str, bytes]:
    return {order_id: bytes(body) for order_id, body in await fetch_in(db, ORDER_BODIES, order_ids, by_key=True)}


ORDER_BODY = """
    SELECT o.body FROM orders o
    JOIN resellers r ON r.reseller_id = o.reseller_id
    JOIN customers c ON c.customer_id = o.customer_id
    JOIN resellers cr ON cr.reseller_id = c.reseller_id
    WHERE o.order_id = ?1 AND o.customer_id = ?2 AND r.partner_id = ?3 AND cr.partner_id = ?3
"""


async def order_body(db: Db, customer_id: str, order_id: str, partner_id: str) -> bytes | None:
    """Both the customer (through its reseller) and the order (through the reseller it was placed through)
    must belong to the partner."""
    rows = await db.fetch_by_key(ORDER_BODY, (order_id, customer_id, partner_id))
    return bytes(rows[0][0]) if rows else None


ORDER_COUNT = "SELECT count(*) FROM orders o JOIN resellers r ON r.reseller_id = o.reseller_id WHERE {where}"
# The index (customer_id, created DESC, order_id DESC, reseller_id) gives this order without sorting, and
# skips without reading the table; the page's bodies are read afterwards, by id.
ORDER_PAGE = """
    SELECT o.order_id FROM orders o JOIN resellers r ON r.reseller_id = o.reseller_id WHERE {where}
    ORDER BY o.created DESC, o.order_id DESC LIMIT ? OFFSET ?
"""
# Each filter's condition; a repeatable one is an IN list, and an offer or subscription matches any line.
FILTER_CONDITIONS = {
    "customer": "o.customer_id = ?",
    "partner": "r.partner_id = ?",
    "order_types": "o.order_type IN ({marks})",
    "statuses": "o.status IN ({marks})",
    "offer_ids": "EXISTS (SELECT 1 FROM line_items l WHERE l.order_id = o.order_id AND l.offer_id IN ({marks}))",
    "subscription_ids": (
        "EXISTS (SELECT 1 FROM line_items l WHERE l.order_id = o.order_id AND l.subscription_id IN ({marks}))"
    ),
    "reference_order_id": "o.reference_order_id = ?",
    "external_reference_id": "o.external_reference_id = ?",
    "reseller_id": "o.reseller_id = ?",
    "low": "o.created >= ?",
    "high": "o.created <= ?",
}
FILTERS = ("order_types", "statuses", "offer_ids", "subscription_ids", "reference_order_id",
           "external_reference_id", "reseller_id")


def _where(customer_id: str, partner_id: str, conditions: HistoryConditions, window: Window) -> tuple[str, list[Any]]:
    terms: list[tuple[str, Any]] = [("customer", customer_id), ("partner", partner_id), ("low", window[0]),
                                    ("high", window[1])]
    terms += [(name, getattr(conditions, name)) for name in FILTERS]
    sql: list[str] = []
    params: list[Any] = []
    for name, value in terms:
        if value is None or value == frozenset():
            continue
        values = sorted(value) if isinstance(value, frozenset) else [value]
        sql.append(FILTER_CONDITIONS[name].format(marks=",".join("?" * len(values))))
        params.extend(values)
    return " AND ".join(sql), params


async def count_orders(db: Db, customer_id: str, partner_id: str, conditions: HistoryConditions,
                       window: Window) -> int:
    where, params = _where(customer_id, partner_id, conditions, window)
    rows = await db.fetch(ORDER_COUNT.format(where=where), params)
    return int(rows[0][0]) if rows else 0  # no rows: a value PostgreSQL cannot hold, which matches nothing


async def page_bodies(db: Db, customer_id: str, partner_id: str, conditions: HistoryConditions, window: Window,
                      offset: int, limit: int) -> list[bytes]:
    where, params = _where(customer_id, partner_id, conditions, window)
    order_ids = [row[0] for row in await db.fetch(ORDER_PAGE.format(where=where), [*params, limit, offset])]
    bodies = await order_bodies(db, order_ids)
    return [bodies[order_id] for order_id in order_ids if order_id in bodies]
