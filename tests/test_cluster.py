"""Scale-out: gateway processes sharing one PostgreSQL behave as one gateway."""
from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from conftest import process_headers, seed_with_cli, server_process

BODY = {"orderType": "NEW", "currencyCode": "USD",
        "lineItems": [{"extLineItemNumber": 1, "offerId": "OFFER-A", "quantity": 1}]}


@pytest.fixture
def pg_url(db_url: str) -> str:
    if db_url.startswith("sqlite://"):
        pytest.skip("a cluster shares a PostgreSQL database; one SQLite file is one host's")
    return db_url


async def test_two_processes_make_one_order_of_a_hundred_duplicates(pg_url, tmp_path):
    partner = seed_with_cli(pg_url, tmp_path)
    with server_process(pg_url) as first, server_process(pg_url) as second:
        connector_a = aiohttp.TCPConnector(limit=0, force_close=True)
        connector_b = aiohttp.TCPConnector(limit=0, force_close=True)
        async with aiohttp.ClientSession(first, connector=connector_a) as a, \
                aiohttp.ClientSession(second, connector=connector_b) as b:
            headers = await process_headers(a, partner, "cluster-key")
            # A token issued by one process is accepted by the other.
            async with b.get("/v3/customers/C1/orders", headers=headers) as response:
                assert response.status == 200

            async def one(http: aiohttp.ClientSession) -> tuple[int, bytes, dict[str, str]]:
                async with http.post("/v3/customers/C1/orders", json=BODY, headers=headers) as response:
                    return response.status, await response.read(), dict(response.headers)

            answers = await asyncio.wait_for(
                asyncio.gather(*(one(a if n % 2 else b) for n in range(100))), timeout=120
            )
            async with a.get("/v3/customers/C1/orders", headers=headers) as response:
                history = await response.json()
    fresh = [answer for answer in answers if answer[0] == 201 and "Idempotent-Replayed" not in answer[2]]
    assert len(fresh) == 1
    for status, body, answer_headers in answers:
        if status == 201:
            assert body == fresh[0][1]
        else:
            assert status == 409 and json.loads(body)["code"] == "4122" and answer_headers["Retry-After"]
    assert history["totalCount"] == 1
