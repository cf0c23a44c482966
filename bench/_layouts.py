"""The other benchmark data sets, laid out for bench/_data.py's builders (same order generator, same loaders).

- whale_layout: one customer (no cotermDate) with WHALE_ORDERS orders over the last three years, one per
  distinct second, for bench/history.py: the customer that tests the history cache's default budget.
- mixed_layout: `customers` customers (no cotermDate, so every order is in the default window) of
  `per_customer` orders each over the last two years, for bench/mixed.py, which also creates orders for them.

Ids keep clear of the history layout's (customers 90xxxxxxxx/9100000000, orders 51xxxxxxxx and 6xxxxxxxxx)
so the data sets can never be confused with each other.
"""
from __future__ import annotations

import random
from collections.abc import Iterator

import _data
from gateway.order_model import Order

WHALE_CUSTOMER = "9200000000"
WHALE_RESELLER = "8200000000"
WHALE_ORDERS = 300_000
WHALE_DAYS = 3 * 365
WHALE_FIRST_ORDER = 5_200_000_000

MIXED_FIRST_CUSTOMER = 9_300_000_000
MIXED_FIRST_RESELLER = 8_300_000_000
MIXED_RESELLERS = 10
MIXED_DAYS = 2 * 365
MIXED_FIRST_ORDER = 7_000_000_000
DAY = 86400


def whale_layout(orders: int, anchor: int) -> _data.Layout:
    return _data.Layout(
        resellers=[(WHALE_RESELLER, _data.PARTNER_ID, "Whale Reseller")],
        customers=[(WHALE_CUSTOMER, WHALE_RESELLER, "Whale Customer Inc.", None)],
        orders=_whale_orders(orders, anchor),
        meta={"whaleCustomer": WHALE_CUSTOMER, "whaleOrders": orders},
    )


def _whale_orders(orders: int, anchor: int) -> Iterator[Order]:
    rng = random.Random(5)
    seconds = rng.sample(range(1, WHALE_DAYS * DAY), orders)
    seconds.sort(reverse=True)  # oldest first: ascending order ids are ascending creation times
    for n, ago in enumerate(seconds):
        yield _data._order(rng, str(WHALE_FIRST_ORDER + n), WHALE_CUSTOMER, WHALE_RESELLER, anchor - ago, n)


def mixed_customers(customers: int) -> list[str]:
    return [str(MIXED_FIRST_CUSTOMER + n) for n in range(customers)]


def mixed_layout(customers: int, per_customer: int, anchor: int) -> _data.Layout:
    resellers = [str(MIXED_FIRST_RESELLER + n) for n in range(MIXED_RESELLERS)]
    rows: list[tuple[str, str, str, str | None]] = [
        (customer_id, resellers[n % MIXED_RESELLERS], f"Mixed Customer {n}", None)
        for n, customer_id in enumerate(mixed_customers(customers))
    ]
    return _data.Layout(
        resellers=[(reseller_id, _data.PARTNER_ID, f"Mixed Reseller {n}") for n, reseller_id in enumerate(resellers)],
        customers=rows,
        orders=_mixed_orders(rows, per_customer, anchor),
        meta={"customerIds": [row[0] for row in rows], "ordersPerCustomer": per_customer},
    )


def _mixed_orders(customers: list[tuple[str, str, str, str | None]], per_customer: int,
                  anchor: int) -> Iterator[Order]:
    rng = random.Random(6)
    next_id = MIXED_FIRST_ORDER
    for customer_id, reseller_id, _, _ in customers:
        created = sorted(anchor - rng.randrange(1, MIXED_DAYS * DAY) for _ in range(per_customer))
        for n, when in enumerate(created):
            yield _data._order(rng, str(next_id), customer_id, reseller_id, when, n)
            next_id += 1
