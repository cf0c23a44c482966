"""The history cache never serves a stale page: a warm cache, then a change through every write path (the
API, the CLI, a completed RETURN, an import, another process), then a read that must see the change.
And the cache stays within its budget in bytes, whatever the orders hold."""
from __future__ import annotations

import asyncio
import gc
import tracemalloc
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from conftest import (
    UNLIMITED,
    cli,
    customer_record,
    order_record,
    partner_headers,
    process_headers,
    reseller_record,
    seed_with_cli,
    server_process,
)
from gateway.app import create_app
from gateway.keys import STORAGE
from gateway.settings import Settings
from gateway.storage import StorageUnavailable

ORDERS = "/v3/customers/C1/orders"


def recent(days_ago: int = 1) -> str:
    return (datetime.now(timezone.utc) - timedelta(days=days_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


async def history(client: Any, partner: Any, query: str = "") -> dict[str, Any]:
    response = await client.get(f"{ORDERS}?{query}", headers=await partner_headers(client, partner))
    assert response.status == 200, await response.text()
    return dict(await response.json())


def by_id(page: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["orderId"]: item for item in page["items"]}


async def seeded(make_partner: Any, load: Any, *records: dict[str, Any]) -> Any:
    partner = await make_partner("P1")
    await make_partner("P2")
    await load([reseller_record("R1", "P1"), reseller_record("R2", "P1"), reseller_record("R3", "P2"),
                customer_record("C1", "R1"), *records])
    return partner


async def place(client: Any, partner: Any, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(ORDERS, json=body, headers=await partner_headers(client, partner))
    assert response.status == 201, await response.text()
    return dict(await response.json())


NEW = {"orderType": "NEW", "currencyCode": "USD", "lineItems": [{"extLineItemNumber": 1, "offerId": "A", "quantity": 2}]}


async def test_a_placed_order_appears_at_once(client: Any, make_partner: Any, load: Any) -> None:
    partner = await seeded(make_partner, load, order_record("1000000001", "C1", recent(2)))
    assert (await history(client, partner))["totalCount"] == 1
    placed = await place(client, partner, NEW)
    page = await history(client, partner)
    assert [item["orderId"] for item in page["items"]] == [placed["orderId"], "1000000001"]
    assert (await history(client, partner, "status=1002"))["totalCount"] == 1


async def test_patch_changes_the_cached_page_and_its_filters(client: Any, make_partner: Any, load: Any) -> None:
    partner = await seeded(make_partner, load, order_record("1000000001", "C1", recent(), external_reference_id="old"))
    assert (await history(client, partner, "external-reference-id=old"))["totalCount"] == 1
    response = await client.patch(f"{ORDERS}/1000000001", json={"externalReferenceId": "new"},
                                  headers=await partner_headers(client, partner))
    assert response.status == 200
    assert (await history(client, partner, "external-reference-id=old"))["totalCount"] == 0
    page = await history(client, partner, "external-reference-id=new")
    assert by_id(page)["1000000001"]["externalReferenceId"] == "new"


async def test_cli_status_change_and_completed_return(client: Any, make_partner: Any, load: Any,
                                                      db_url: str) -> None:
    partner = await seeded(make_partner, load)
    original = await place(client, partner, NEW)
    cli(db_url, "orders", "set-status", original["orderId"], "1000")
    page = by_id(await history(client, partner))
    assert page[original["orderId"]]["status"] == "1000"
    subscription = page[original["orderId"]]["lineItems"][0]["subscriptionId"]
    assert subscription
    assert (await history(client, partner, f"subscription-id={subscription}"))["totalCount"] == 1
    returned = await place(client, partner, {**NEW, "orderType": "RETURN", "referenceOrderId": original["orderId"]})
    assert (await history(client, partner, "order-type=RETURN"))["totalCount"] == 1
    cli(db_url, "orders", "set-status", returned["orderId"], "1000")
    page = by_id(await history(client, partner))
    assert page[returned["orderId"]]["status"] == "1000"
    assert page[original["orderId"]]["lineItems"][0]["status"] == "1008"  # fully returned: cancelled


async def test_import_moving_a_reseller_to_another_partner(client: Any, make_partner: Any, load: Any) -> None:
    partner = await seeded(make_partner, load, order_record("1000000001", "C1", recent(2)),
                           order_record("1000000002", "C1", recent(1), reseller_id="R2"))
    assert (await history(client, partner))["totalCount"] == 2
    await load([reseller_record("R2", "P2")])
    assert list(by_id(await history(client, partner))) == ["1000000001"]
    await load([reseller_record("R2", "P1")])
    assert list(by_id(await history(client, partner))) == ["1000000002", "1000000001"]


async def test_import_replacing_an_order(client: Any, make_partner: Any, load: Any) -> None:
    partner = await seeded(make_partner, load, order_record("1000000001", "C1", recent(2), offers=["A"]))
    assert (await history(client, partner, "offer-id=A"))["totalCount"] == 1
    await load([order_record("1000000001", "C1", recent(3), offers=["B"])])
    assert (await history(client, partner, "offer-id=A"))["totalCount"] == 0
    assert (await history(client, partner, "offer-id=B"))["totalCount"] == 1


async def test_a_write_by_another_process(aiohttp_client: Any, db_url: str, tmp_path: Path) -> None:
    partner = seed_with_cli(db_url, tmp_path)
    settings = Settings(**UNLIMITED, database_url=db_url, credential_cache_seconds=0)
    client = await aiohttp_client(create_app(settings))
    with server_process(db_url) as base:
        async with aiohttp.ClientSession(base) as other:
            headers = await process_headers(other, partner, "first")
            async with client.get(ORDERS, headers=headers) as response:
                assert (await response.json())["totalCount"] == 0
            for n in range(3):
                async with other.post(ORDERS, json=NEW, headers={**headers, "X-Correlation-Id": f"k{n}"}) as placed:
                    assert placed.status == 201
                async with client.get(ORDERS, headers=headers) as response:
                    assert (await response.json())["totalCount"] == n + 1


BUDGET = 1024 * 1024
WIDE_LINES = 40  # lines per order: bodies of about 5 KB


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_cache_memory_stays_within_its_budget(aiohttp_client: Any, make_partner: Any, load: Any,
                                                    db_url: str) -> None:
    partner = await make_partner("P1")
    customers = [f"C{n}" for n in range(40)]
    records: list[dict[str, Any]] = [reseller_record("R1", "P1")]
    for customer in customers:
        records.append(customer_record(customer, "R1"))
        records += [
            order_record(f"{customer}-{n:04d}", customer, recent(1), offers=[f"OFFER-{n}-{i:02d}" * 3 for i in range(WIDE_LINES)])
            for n in range(30)
        ]
    await load(records)
    client = await aiohttp_client(create_app(Settings(**UNLIMITED, database_url=db_url, history_cache_bytes=BUDGET,
                                                      credential_cache_seconds=0)))
    headers = await partner_headers(client, partner)
    await client.get(f"/v3/customers/{customers[0]}/orders", headers=headers)  # first request: warm-up
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    served = 0
    # A plain session: the test client would keep every response it returned until the test ends.
    async with aiohttp.ClientSession(client.make_url("")) as session:
        for customer in customers:
            async with session.get(f"/v3/customers/{customer}/orders?limit=100", headers=headers) as response:
                page = await response.read()
            assert orjson.loads(page)["count"] == 30
            served += len(page)
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert served > 5 * BUDGET  # what an unbounded cache would have kept
    assert grown < BUDGET + 1024 * 1024, f"the cache grew by {grown} bytes with a budget of {BUDGET}"


class IndexLoads:
    """Counts the calls of the one storage call that reads a customer's whole index. `first_fails`: the first
    takes 0.2 s (the other readers arrive meanwhile, and wait for it), then fails as a busy database would."""

    def __init__(self, storage: Any, first_fails: bool = False) -> None:
        self.count = 0
        full_index = storage.order_index

        async def counted(customer_id: str, partner_id: str) -> Any:
            self.count += 1
            attempt = self.count
            rows = await full_index(customer_id, partner_id)
            if first_fails:
                await asyncio.sleep(0.2)
                if attempt == 1:
                    raise StorageUnavailable("busy")
            return rows

        storage.order_index = counted


async def test_an_uncached_customer_is_loaded_once_for_simultaneous_readers(client: Any, make_partner: Any,
                                                                           load: Any) -> None:
    partner = await seeded(make_partner, load, *(order_record(f"10000000{n:02d}", "C1", recent(2)) for n in range(50)))
    loads = IndexLoads(client.app[STORAGE])
    headers = await partner_headers(client, partner)
    pages = await asyncio.gather(*(client.get(ORDERS, headers=headers) for _ in range(20)))
    assert [page.status for page in pages] == [200] * 20
    assert loads.count == 1


async def test_a_cache_far_behind_the_journal_reloads_its_customer(client: Any, make_partner: Any,
                                                                    load: Any) -> None:
    """A cache a few writes behind refreshes just their orders; one more than 100 journal rows behind reloads
    the customer (on the reader's thread) instead of refreshing so many orders on the event loop."""
    partner = await seeded(make_partner, load, *(order_record(f"10000000{n:02d}", "C1", recent(2)) for n in range(5)))
    loads = IndexLoads(client.app[STORAGE])
    headers = await partner_headers(client, partner)

    async def total() -> int:
        page = await client.get(ORDERS, headers=await partner_headers(client, partner))
        return int((await page.json())["totalCount"])

    assert await total() == 5 and loads.count == 1
    for _ in range(3):
        await place(client, partner, NEW)
    assert await total() == 8 and loads.count == 1  # refreshed in place
    placed = await asyncio.gather(*(client.post(ORDERS, json=NEW, headers={**headers, "X-Correlation-Id": f"far-{n}"})
                                    for n in range(101)))
    assert [response.status for response in placed] == [201] * 101
    assert await total() == 109 and loads.count == 2  # reloaded


async def test_readers_waiting_for_a_load_that_fails_load_again_themselves(client: Any, make_partner: Any,
                                                                           load: Any) -> None:
    """The request that loads a customer's index fails alone (the database was busy for it); those that waited
    for its load try again, and one load serves them all."""
    partner = await seeded(make_partner, load, *(order_record(f"10000000{n:02d}", "C1", recent(2)) for n in range(50)))
    loads = IndexLoads(client.app[STORAGE], first_fails=True)
    headers = await partner_headers(client, partner)
    pages = await asyncio.gather(*(client.get(ORDERS, headers=headers) for _ in range(5)))
    assert sorted(page.status for page in pages) == [200, 200, 200, 200, 503]
    assert loads.count == 2


