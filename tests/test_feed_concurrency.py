"""The feed's guarantee under load: two gateway processes on one database, concurrent writers creating and
changing orders, and readers following cursors the whole time see every event exactly once, each order's
events in the order its changes committed."""
from __future__ import annotations

import asyncio
import itertools
import os
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from conftest import process_headers, seed_with_cli, server_process

FEED = "/v3/order-events"
ORDERS = "/v3/customers/C1/orders"
WRITERS = 8
SECONDS = float(os.environ.get("FEED_CONCURRENCY_SECONDS", "20"))
CHANGES_PER_ORDER = 3
BODY = {"orderType": "NEW", "currencyCode": "USD",
        "lineItems": [{"extLineItemNumber": 1, "offerId": "OFFER-A", "quantity": 1}]}
_keys = itertools.count(1)


RESTARTS = 5


class Reader:
    """Follows the feed from a cursor, keeping (event id, order id, externalReferenceId) of every event."""

    def __init__(self, http: aiohttp.ClientSession, headers: dict[str, str], cursor: str | None = None) -> None:
        self.http, self.headers, self.cursor = http, headers, cursor
        self.events: list[tuple[str, str, str]] = []

    async def step(self) -> int:
        query = "?limit=100" + (f"&cursor={self.cursor}" if self.cursor else "")
        async with self.http.get(FEED + query, headers=self.headers) as response:
            assert response.status == 200, await response.text()
            page = await response.json()
        assert urlsplit(page["links"]["next"]["uri"]).path == FEED
        self.events.extend((e["eventId"], e["orderId"], e["order"]["externalReferenceId"]) for e in page["items"])
        self.cursor = page["cursor"]
        return int(page["count"])

    async def drain(self) -> None:
        while await self.step():
            pass


async def write(http: aiohttp.ClientSession, partner: dict[str, str], stop: float, placed: list[str]) -> None:
    """Places orders and changes each a few times, one change after another, until `stop`."""
    while time.monotonic() < stop:
        headers = await process_headers(http, partner, f"w-{next(_keys)}")
        async with http.post(ORDERS, json=BODY, headers=headers) as response:
            assert response.status == 201, await response.text()
            order_id = (await response.json())["orderId"]
        placed.append(order_id)
        for change in range(1, CHANGES_PER_ORDER + 1):
            headers["X-Correlation-Id"] = f"w-{next(_keys)}"
            async with http.patch(f"{ORDERS}/{order_id}", json={"externalReferenceId": f"v{change}"},
                                  headers=headers) as response:
                assert response.status == 200, await response.text()


async def test_every_event_exactly_once_in_commit_order(db_url: str, tmp_path: Any) -> None:
    partner = seed_with_cli(db_url, tmp_path)
    with server_process(db_url) as first, server_process(db_url) as second:
        async with aiohttp.ClientSession(first) as a, aiohttp.ClientSession(second) as b:
            headers = await process_headers(a, partner, "reader")
            follower = Reader(a, headers)
            restarts: list[Reader] = []
            placed: list[str] = []
            stop = time.monotonic() + SECONDS

            async def follow() -> None:
                saved: list[tuple[str | None, int]] = [(None, 0)]
                while time.monotonic() < stop:
                    await follower.step()
                    saved.append((follower.cursor, len(follower.events)))
                    if len(restarts) < RESTARTS and len(saved) % 40 == 0:  # later, someone resumes from here
                        cursor, seen = saved[len(saved) // 2]  # one given a while ago
                        restarts.append(Reader(b, headers, cursor))
                        restarts[-1].events = follower.events[:seen]
                    await asyncio.sleep(0.02)

            writers = [write(a if n % 2 else b, partner, stop, placed) for n in range(WRITERS)]
            await asyncio.wait_for(asyncio.gather(follow(), *writers), SECONDS + 60)
            await follower.drain()
            for reader in restarts:
                await reader.drain()
            complete = Reader(b, headers)
            await complete.drain()

    ids = [event_id for event_id, _, _ in complete.events]
    assert len(ids) == len(set(ids)) == len(placed) * (1 + CHANGES_PER_ORDER)
    assert follower.events == complete.events  # none skipped, none twice, in the same order
    assert restarts and all(reader.events == complete.events for reader in restarts)
    by_order: dict[str, list[str]] = {}
    for _, order_id, reference in complete.events:
        by_order.setdefault(order_id, []).append(reference)
    assert all(refs == ["", "v1", "v2", "v3"] for refs in by_order.values())
    assert len(placed) > 50  # the load was real
