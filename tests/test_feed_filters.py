"""The change feed's filters, followed by cursors to the end: every combination answers exactly the
partner's unfiltered feed filtered by hand, in full pages, however the matching events interleave."""
from __future__ import annotations

import itertools
import string
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from aiohttp.test_utils import TestClient
from conftest import customer_record, order_record, partner_headers

from gateway.http_limits import MAX_TARGET_BYTES
from schemas.events import EventPageSchema

FEED = "/v3/order-events"
START = datetime.now(timezone.utc) - timedelta(days=1)
CUSTOMERS = ("C1", "C3", "C4")


def _order(n: int, **fields: Any) -> dict[str, Any]:
    created = (START + timedelta(seconds=n)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return order_record(str(5_000_000_100 + n), CUSTOMERS[n % 3], created, **fields)


@pytest.fixture
async def events(partners: dict[str, Any], load: Any) -> None:
    """P1's customers C1, C3 and C4, whose events of every type interleave; and an event of P2's C2."""
    await load([customer_record("C3", "R1"), customer_record("C4", "R1"),
                order_record("5000000099", "C2", START.strftime("%Y-%m-%dT%H:%M:%SZ"))])
    await load([_order(n) for n in range(18)])  # order.created, by turns C1, C3, C4
    # order.status_changed for even n, order.updated for n = 1, 5, 9, 13, 17: in n's order
    await load([_order(n, status="1004") if n % 2 == 0 else _order(n, external_reference_id=f"X{n}")
                for n in range(18) if n % 2 == 0 or n % 4 == 1])
    await load([_order(n) for n in range(18, 24)])  # order.created again, after the others


async def read(client: TestClient, credential: Any, query: str) -> dict[str, Any]:
    response = await client.get(f"{FEED}?{query}", headers=await partner_headers(client, credential))
    assert response.status == 200, await response.text()
    page = dict(await response.json())
    assert not EventPageSchema().validate(page)
    return page


async def follow(client: TestClient, credential: Any, query: str, limit: int) -> list[dict[str, Any]]:
    """Every event of the query from the start, following links.next until an empty page; every page
    before the last is full."""
    pages = []
    page = await read(client, credential, f"{query}&limit={limit}" if query else f"limit={limit}")
    while page["items"]:
        pages.append(page["items"])
        page = await read(client, credential, urlsplit(page["links"]["next"]["uri"]).query)
    assert all(len(items) == limit for items in pages[:-1])
    return [event for items in pages for event in items]


def by_hand(events: list[dict[str, Any]], customers: set[str], types: set[str]) -> list[dict[str, Any]]:
    return [e for e in events if (not customers or e["customerId"] in customers) and (not types or e["type"] in types)]


@pytest.mark.usefixtures("events")
async def test_every_combination_of_filters_is_the_feed_filtered_by_hand(client: TestClient,
                                                                         partners: dict[str, Any]) -> None:
    everything = await follow(client, partners["P1"], "", 100)
    assert len(everything) == 18 + 9 + 5 + 6
    combinations: list[tuple[set[str], set[str]]] = [
        ({"C1", "C3"}, {"order.created", "order.status_changed"}),  # two customers and two types at once
        (set(), {"order.status_changed", "order.updated"}),
        ({"C4", "C2", "NOBODY"}, {"order.updated"}),  # P2's customer and an unknown one match nothing
        ({"C3", "C4", "NOBODY"}, set()),
        ({"C1"}, {"order.created", "order.status_changed", "order.updated"}),
        (set(CUSTOMERS), {"order.updated", "order.created"}),
    ]
    for (customers, types), limit in zip(combinations, itertools.cycle((1, 2, 3))):
        query = urlencode([*(("customer-id", c) for c in sorted(customers)), *(("type", t) for t in sorted(types))])
        expected = by_hand(everything, customers, types)
        assert expected, query
        assert await follow(client, partners["P1"], query, limit) == expected, (query, limit)


@pytest.mark.usefixtures("events")
async def test_as_many_customer_ids_as_a_request_holds(client: TestClient, partners: dict[str, Any]) -> None:
    """More values than one SQL UNION may hold on SQLite (500)."""
    pairs = (a + b for alphabet in (string.ascii_uppercase, string.ascii_lowercase)
             for a, b in itertools.product(alphabet, string.digits))
    customers = [*string.digits, *string.ascii_letters, *itertools.islice(pairs, 448)]
    assert len(set(customers)) == 510 and set(CUSTOMERS) <= set(customers)
    query = urlencode([*(("customer-id", c) for c in customers), ("type", "order.created"), ("type", "order.updated")])
    assert len(f"GET {FEED}?{query}&limit=5&cursor={'x' * 27} HTTP/1.1") < MAX_TARGET_BYTES
    everything = await follow(client, partners["P1"], "", 100)
    expected = by_hand(everything, set(customers), {"order.created", "order.updated"})
    assert len(expected) == 18 + 5 + 6
    assert await follow(client, partners["P1"], query, 5) == expected
